"""Record types that cross stage boundaries: what the flow emits and the responders consume.

Every record serialises to a JSON object carrying a versioned `schema` field, so topics and files
can evolve without breaking readers. Times inside records are event-time integer nanoseconds
since the epoch, truncated to the millisecond (the precision of their JSON form); the JSON carries
them as RFC 3339 UTC strings, the only format readers and the jsonl/SQLite history know.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal, Self, TypeVar

from sre_space.timeutil import NS_PER_MS, ns_to_rfc3339, rfc3339_to_ns

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

# Field metadata marking event time (ns, optional ns or a list of ns), RFC 3339 in JSON. Spelt
# `field(metadata=TIME)` rather than through a helper so type checkers still see the defaults.
TIME = {"time": True}


_TIME_NAMES: dict[type[Record], tuple[str, ...]] = {}


def _time_names(cls: type[Record]) -> tuple[str, ...]:
    names = _TIME_NAMES.get(cls)
    if names is None:
        names = _TIME_NAMES[cls] = tuple(f.name for f in fields(cls) if f.metadata.get("time"))
    return names


def _ms(ns: int) -> int:
    # The JSON form keeps milliseconds (`ns_to_rfc3339` truncates), so a record truncates too:
    # one built in-process then holds the same time as one read back from Kafka or a file.
    return ns - ns % NS_PER_MS


def _convert(value: Any, one: Callable[[Any], Any]) -> Any:
    """Apply `one` to a time value: a scalar, each item of a list, None left as is."""
    if value is None:
        return None
    if isinstance(value, list):
        return [one(v) for v in value]
    return one(value)


def _parse(value: int | str) -> int:
    return value if isinstance(value, int) else rfc3339_to_ns(value)


_ATOMS = (str, int, float, bool)
# The exact atom types: a set test of the types present settles most values at C speed; only a
# value holding some other type (a subclass of an atom, say) takes the isinstance walk.
_ATOM_TYPES = frozenset(_ATOMS)
_ATOM_OR_NONE_TYPES = _ATOM_TYPES | {type(None)}
_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _atoms(values: Any) -> bool:
    return set(map(type, values)) <= _ATOM_TYPES or all(isinstance(v, _ATOMS) for v in values)


def _atoms_or_none(values: Any) -> bool:
    return set(map(type, values)) <= _ATOM_OR_NONE_TYPES or all(
        v is None or isinstance(v, _ATOMS) for v in values
    )


def _flat_dict(record: Record, keep_none: bool = True) -> dict[str, Any] | None:
    """`asdict(record)` for a record whose fields are atoms, lists of atoms or dicts of atoms
    (signals, dead letters); None otherwise. asdict deep-copies through a generic recursion that
    cost more than the rest of writing a signal; for such fields a shallow copy is the same.
    Without `keep_none`, None-valued fields are left out (what `to_dict` then drops)."""
    names = _FIELD_NAMES.get(type(record))
    if names is None:
        names = _FIELD_NAMES[type(record)] = tuple(f.name for f in fields(record))
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(record, name)
        kind = type(value)
        if value is None:
            if keep_none:
                out[name] = None
        elif kind in _ATOM_TYPES or isinstance(value, _ATOMS):
            out[name] = value
        elif kind is list and _atoms(value):
            out[name] = list(value)
        elif kind is dict and _atoms(value) and _atoms_or_none(value.values()):
            out[name] = dict(value)
        else:
            return None
    return out


# What `json.dumps(..., separators=(",", ":"), sort_keys=True)` builds on every call, built once.
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class Record:
    """Base: JSON round trip with the schema tag; None-valued optional fields are omitted.

    Fields marked `TIME` hold ns (truncated to the millisecond on construction) and are RFC 3339
    strings in `to_dict`/`to_json`; `from_dict` parses those strings and accepts ns as well.
    A subclass whose stored rows always carried every field sets `keep_none`.
    """

    keep_none: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for name in _time_names(type(self)):
            object.__setattr__(self, name, _convert(getattr(self, name), _ms))

    def to_dict(self) -> dict[str, Any]:
        out = _flat_dict(self, self.keep_none)
        if out is None:
            out = asdict(self)
            if not self.keep_none:
                out = {k: v for k, v in out.items() if v is not None}
        for name in _time_names(type(self)):
            if name in out:
                out[name] = _convert(out[name], ns_to_rfc3339)
        return out

    def to_json(self) -> str:
        return _ENCODER.encode(self.to_dict())

    @classmethod
    def _init_args(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The constructor's arguments from a `to_dict` form: unknown keys dropped, times parsed."""
        times = _time_names(cls)
        names = {f.name for f in fields(cls)}
        return {k: _convert(v, _parse) if k in times else v for k, v in data.items() if k in names}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**cls._init_args(data))

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
    window_start: int = field(metadata=TIME)
    window_end: int = field(metadata=TIME)
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
    # one metric series of many (a gauge or sum per instance and point attributes): the
    # attributes that tell it apart, the instance's resource attribute (`k8s.pod.name`) included
    attributes: dict[str, str] | None = None
    # sums: "cumulative" (judged on the rate of `value`) or "delta" (`value` is the window's sum)
    temporality: str | None = None
    late: int = 0
    schema: str = SIGNAL_SCHEMA

    @property
    def key(self) -> tuple[str, str, str]:
        """(kind, service-or-empty, name) — the stable identity of the series.

        The name is the operation, journey or metric; a metric series with attributes is named
        `metric{k=v,...}` (sorted keys), so each series of a metric has a key of its own.
        """
        name = self.operation or self.cuj or self.metric or ""
        if self.attributes:
            name = series_name(name, self.attributes)
        return (self.kind, self.service or "", name)


def series_name(metric: str, attributes: Mapping[str, Any]) -> str:
    """`metric{k=v,...}` with sorted keys: one metric series' name (the plain name without any)."""
    if not attributes:
        return metric
    return metric + "{" + ",".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + "}"


@dataclass(frozen=True, slots=True)
class DeadLetter(Record):
    """An input that could not be decoded: why, and where the original bytes are."""

    reason: str
    source: str
    partition: int
    offset: int
    size: int
    payload_b64: str | None = None
    # recordings only: where the record (or the unreadable rest) starts in the decompressed file
    byte_offset: int | None = None
    schema: str = DEADLETTER_SCHEMA


@dataclass(frozen=True, slots=True)
class Anomaly(Record):
    """A detector's verdict that one signal of one key is abnormal."""

    id: str
    detector: str
    signal: str
    kind: SignalKind
    onset: int = field(metadata=TIME)
    observed: float
    expected: float
    score: float
    service: str | None = None
    operation: str | None = None
    cuj: str | None = None
    metric: str | None = None
    windows: list[int] = field(default_factory=list, metadata=TIME)
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
    opened_at: int = field(metadata=TIME)
    updated_at: int = field(metadata=TIME)
    services: list[str]
    severity: str
    anomaly_ids: list[str] = field(default_factory=list)
    recovered_at: int | None = field(default=None, metadata=TIME)
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
    # Unique within its candidate; the candidate's action requests cite evidence by it.
    id: str = ""
    # Structured facts the actions are built from (never parsed out of `description`): the change
    # (commit sha, new and previous version, feature flag key), the other service involved (the
    # caller whose calls timed out) and resource measures (`utilization`, `backlog`...).
    commit: str | None = None
    version: str | None = None
    previous_version: str | None = None
    flag: str | None = None
    peer: str | None = None
    measures: dict[str, float] | None = None


@dataclass(frozen=True, slots=True)
class ActionRequest(Record):
    """One remediation asked for: action, target service, typed parameters, the evidence behind it.

    Nothing in it is trusted until the Fixer's playbook planned it (`sre_space.actions` types it).
    """

    action: str
    service: str
    params: dict[str, str | int | float | bool] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)
    source: str = "brain"  # who asked: "brain", "memory", "operator"...

    def key(self) -> str:
        """A stable text form for logs and audit rows."""
        args = {"service": self.service, **self.params}
        return f"{self.action}({json.dumps(args, sort_keys=True, default=str)})"


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
    actions: list[ActionRequest] = field(default_factory=list)

    @property
    def action_names(self) -> list[str]:
        """The requested actions' names, in the order to try."""
        return [a.action for a in self.actions]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Inverse of `to_dict`, with evidence and actions rebuilt as records.

        Diagnoses stored before actions were typed carry `remediations`, bare action names: they
        are read as requests for the candidate's service without parameters.
        """
        evidence = [
            e if isinstance(e, Evidence) else Evidence.from_dict(e)
            for e in data.get("evidence", [])
        ]
        raw = data.get("actions")
        if raw is None:
            raw = [
                {"action": str(name), "service": data.get("service", "")}
                for name in data.get("remediations") or []
            ]
        actions = [a if isinstance(a, ActionRequest) else ActionRequest.from_dict(a) for a in raw]
        return cls(**{**cls._init_args(data), "evidence": evidence, "actions": actions})


def action_names(candidate: Mapping[str, Any]) -> list[str]:
    """The action names of a candidate's JSON form, typed (`actions`) or older (`remediations`)."""
    typed = candidate.get("actions")
    if typed is not None:
        return [str(a.get("action", "")) for a in typed]
    return [str(r) for r in candidate.get("remediations") or []]


@dataclass(frozen=True, slots=True)
class Diagnosis(Record):
    """The Brain's answer for one incident: ranked candidates, or an abstention."""

    incident_id: str
    window_start: int = field(metadata=TIME)
    window_end: int = field(metadata=TIME)
    baseline_start: int = field(metadata=TIME)
    baseline_end: int = field(metadata=TIME)
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
        return cls(**{**cls._init_args(data), "candidates": candidates})


@dataclass(frozen=True, slots=True)
class AuditAction(Record):
    """One automated decision, with its reason and inputs: the audit log's row."""

    at: int = field(metadata=TIME)
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
