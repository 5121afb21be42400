"""Record types that cross stage boundaries: what the flow emits and the responders consume.

Every record serialises to a JSON object carrying a versioned `schema` field, so topics and files
can evolve without breaking readers. Times inside records are RFC 3339 UTC strings (event time).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Self, TypeVar

SIGNAL_SCHEMA = "sre.signal/v1"
DEADLETTER_SCHEMA = "sre.deadletter/v1"
ANOMALY_SCHEMA = "sre.anomaly/v1"
INCIDENT_SCHEMA = "sre.incident/v1"
DIAGNOSIS_SCHEMA = "sre.diagnosis/v1"
ACTION_SCHEMA = "sre.action/v1"

SignalKind = Literal["span", "cuj", "metric", "pipeline"]
IncidentState = Literal[
    "open", "diagnosed", "mitigating", "verifying", "resolved", "escalated", "recovered"
]

R = TypeVar("R", bound="Record")


@dataclass(frozen=True, slots=True)
class Record:
    """Base: JSON round trip with the schema tag; None-valued optional fields are omitted."""

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, slots=True)
class SignalWindow(Record):
    """One key's aggregate over one event-time window.

    `kind` says which key fields are set: `span` -> service + operation, `cuj` -> cuj,
    `metric` -> service + metric, `pipeline` -> metric (SRE-Space's own health).
    """

    kind: SignalKind
    window_start: str
    window_end: str
    service: str | None = None
    operation: str | None = None
    cuj: str | None = None
    metric: str | None = None
    # span signals
    count: int = 0
    errors: int = 0
    error_rate: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    span_kind: str | None = None
    slowest_trace_ids: list[str] | None = None
    failing_trace_ids: list[str] | None = None
    versions: dict[str, int] | None = None
    # feature flags the series' server spans evaluated (OpenTelemetry `feature_flag` events):
    # key -> variant of the newest span in the window
    flags: dict[str, str] | None = None
    # cuj signals
    steps: list[int] | None = None
    started: int | None = None
    completed: int | None = None
    conversion: float | None = None
    # metric signals (gauges and sums; `value` is the last point in the window)
    value: float | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    limit: float | None = None
    utilization: float | None = None
    # saturation metrics: utilization per instance (pod), its last point in the window; the
    # saturation trend fits containers that start while watched on their own points
    instances: dict[str, float] | None = None
    unit: str | None = None
    late: int = 0
    schema: str = SIGNAL_SCHEMA

    @property
    def key(self) -> tuple[str, str, str]:
        """(kind, service-or-empty, operation/cuj/metric) — the stable identity of the series."""
        name = self.operation or self.cuj or self.metric or ""
        return (self.kind, self.service or "", name)


@dataclass(frozen=True, slots=True)
class DeadLetter(Record):
    """An input that could not be decoded: why, and where the original bytes are."""

    reason: str
    source: str
    partition: int
    offset: int
    size: int
    payload_b64: str | None = None
    schema: str = DEADLETTER_SCHEMA


@dataclass(frozen=True, slots=True)
class Anomaly(Record):
    """A detector's verdict that one signal of one key is abnormal."""

    id: str
    detector: str
    signal: str
    kind: SignalKind
    onset: str
    observed: float
    expected: float
    score: float
    service: str | None = None
    operation: str | None = None
    cuj: str | None = None
    metric: str | None = None
    windows: list[str] = field(default_factory=list)
    exemplar_trace_ids: list[str] = field(default_factory=list)
    severity: str = "warning"
    detail: str = ""
    schema: str = ANOMALY_SCHEMA


@dataclass(frozen=True, slots=True)
class Incident(Record):
    """One real problem: the anomalies that belong together, and its lifecycle state."""

    id: str
    fingerprint: str
    state: IncidentState
    opened_at: str
    updated_at: str
    services: list[str]
    severity: str
    anomaly_ids: list[str] = field(default_factory=list)
    recovered_at: str | None = None
    event: str = "opened"
    summary: str = ""
    schema: str = INCIDENT_SCHEMA


@dataclass(frozen=True, slots=True)
class Evidence(Record):
    """One fact behind a candidate: what was measured, baseline vs incident, example traces."""

    kind: str
    description: str
    baseline: float | None = None
    incident: float | None = None
    trace_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Candidate(Record):
    """A ranked root-cause hypothesis."""

    service: str
    fault_class: str
    score: float
    confidence: float
    operation: str | None = None
    attribute: str | None = None
    attribute_value: str | None = None
    evidence: list[Evidence] = field(default_factory=list)
    remediations: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Inverse of `to_dict`, with the evidence rebuilt as `Evidence` records."""
        evidence = [
            e if isinstance(e, Evidence) else Evidence.from_dict(e)
            for e in data.get("evidence", [])
        ]
        names = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in data.items() if k in names}, "evidence": evidence})


@dataclass(frozen=True, slots=True)
class Diagnosis(Record):
    """The Brain's answer for one incident: ranked candidates, or an abstention."""

    incident_id: str
    window_start: str
    window_end: str
    baseline_start: str
    baseline_end: str
    candidates: list[Candidate]
    abstained: bool = False
    summary: str = ""
    narrative: str | None = None
    schema: str = DIAGNOSIS_SCHEMA

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Inverse of `to_dict`, with candidates and their evidence rebuilt as records."""
        candidates = [
            c if isinstance(c, Candidate) else Candidate.from_dict(c)
            for c in data.get("candidates", [])
        ]
        names = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in data.items() if k in names}, "candidates": candidates})


@dataclass(frozen=True, slots=True)
class AuditAction(Record):
    """One automated decision, with its reason and inputs: the audit log's row."""

    at: str
    actor: str
    action: str
    reason: str
    incident_id: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    outcome: str = "done"
    schema: str = ACTION_SCHEMA


def read_jsonl(path: str, cls: type[R]) -> list[R]:
    """Read a JSON-lines file of records of one type."""
    with open(path, encoding="utf-8") as fh:
        return [cls.from_json(line) for line in fh if line.strip()]
