"""Incident correlation: anomalies grouped into one incident per real problem, with a lifecycle.

- `correlator.Correlator`: the stateful grouping, recovery and reopening (one instance, one key);
  it drops anomalies under a silence or a maintenance window.
- `graph.CallGraph`: the service call graph learned from traces, with expiry.
- `lifecycle`: the one owner of the incident lifecycle: states, allowed transitions, and how an
  incident event is applied to the stored latest state.
- `config`: the `incidents:` section: grouping, recovery, cool-down, silences, maintenance windows.
"""
