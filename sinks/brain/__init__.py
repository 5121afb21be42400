"""Brain: deterministic root-cause analysis of traces, with an LLM that only narrates.

Modules, one job each:
- `config`: thresholds and weights (`DiagnosisConfig`).
- `loading`: recorded OTLP/JSON (or Jaeger API v3 output) into the span-column frame and metric samples.
- `structure`: vectorised span-tree facts (self time, critical path, error origins, call patterns).
- `traces`: what one trace says (`analyze_trace`).
- `population`: incident window against its baseline over many traces (`analyze_population`).
- `pinpoint`: attribute values that concentrate a service's failures or slowness.
- `resources`, `changes`: metric and change evidence.
- `pods`: a pod's CPU, memory or network series joined to the spans it served, scored by how much
  of the end-to-end change it explains.
- `rank`: evidence into ranked candidates with a fault class, confidence and abstention.
- `faults`: the fault classes and the typed actions each piece of evidence proposes.
- `engine`: the whole deterministic diagnosis (`analyze`, `diagnose`).
- `redact`, `narrate`: secret redaction and the LLM narrative.
- `jaeger`: traces from a Jaeger API v3 endpoint.
- `exemplars`: an incident's exemplar traces the span archive lacks, fetched from Jaeger.
- `scoring`: diagnoses against chaos recording labels (top-1 / top-3 / fault class).
- `cli`: `sre-space diagnose`.
"""
