"""Incident correlation: anomalies grouped into one incident per real problem, with a lifecycle.

- `correlator.Correlator`: the stateful grouping, recovery and reopening (one instance, one key).
- `graph.CallGraph`: the service call graph learned from traces, with expiry.
- `lifecycle`: the allowed state transitions that later stages apply.
- `silences`: silences and maintenance windows from config.
"""
