"""What the detectors emit besides `Anomaly`: change events, cleared anomalies, and the envelope.

Ids are hashes of what identifies the event in event time, so a replay gives identical ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from sre_space.records import TIME, Anomaly, Record
from sre_space.timeutil import ns_to_rfc3339

CHANGE_SCHEMA = "sre.change/v1"
ANOMALY_CLEARED_SCHEMA = "sre.anomaly_cleared/v1"

ChangeKind = Literal["deploy", "restart", "flag"]


@dataclass(frozen=True, slots=True)
class ChangeEvent(Record):
    """Something changed in the system at an event time: a deploy, a restart (crash), a flag flip.

    `before`/`after` hold the version or flag value (for restarts: the cumulative restart counts).
    The same change seen from several series has the same id, so consumers dedupe by id.
    """

    id: str
    change: ChangeKind
    service: str
    at: int = field(metadata=TIME)
    name: str = ""
    before: str | None = None
    after: str | None = None
    count: int = 1
    detail: str = ""
    schema: str = CHANGE_SCHEMA


@dataclass(frozen=True, slots=True)
class AnomalyCleared(Record):
    """The anomaly `id` is over: its series has been back within baseline for the clear count."""

    id: str
    detector: str
    signal: str
    at: int = field(metadata=TIME)
    service: str | None = None
    operation: str | None = None
    cuj: str | None = None
    metric: str | None = None
    schema: str = ANOMALY_CLEARED_SCHEMA


DetectedItem = Anomaly | AnomalyCleared | ChangeEvent


@dataclass(frozen=True, slots=True)
class Detection:
    """A detector output with the event time (window end) of the signal that produced it.

    The correlator orders its input by `at`, so the flow may interleave streams freely.
    """

    at: int
    item: DetectedItem


def stable_id(prefix: str, *parts: object) -> str:
    """A short deterministic id: `prefix-` plus 16 hex chars of SHA-256 over the parts."""
    text = "\x1f".join(str(p) for p in parts)
    return f"{prefix}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}"


def anomaly_id(key: tuple[str, str, str], detector: str, signal: str, onset: int) -> str:
    """Deterministic anomaly id from the series key, detector, signal and onset."""
    # Hashed in its RFC 3339 form, so ids stay those of the recorded history.
    return stable_id("an", *key, detector, signal, ns_to_rfc3339(onset))


# Signal classes: what kind of user-visible symptom a signal is; incident fingerprints use them.
_CLASS_BY_SIGNAL = {
    "error_rate": "errors",
    "errors": "errors",
    "availability": "errors",
    "p50_ms": "latency",
    "p95_ms": "latency",
    "p99_ms": "latency",
    "max_ms": "latency",
    "latency": "latency",
    "count": "traffic",
    "started": "traffic",
    "rate": "traffic",
    "conversion": "conversion",
    "step_conversion": "conversion",
    "completed": "conversion",
    "utilization": "saturation",
    "time_to_exhaustion": "saturation",
    "restarts": "crash",
}

_SATURATION_METRICS = {"memory", "cpu", "connection_pool", "queue", "messaging.kafka.consumer.lag"}


def signal_class(anomaly: Anomaly) -> str:
    """The symptom class of an anomaly: errors, latency, traffic, conversion, saturation, crash..."""
    if anomaly.kind == "pipeline":
        return "pipeline"
    if anomaly.detector == "slo_burn":
        # SLO anomalies name their SLO type in the signal: "slo:availability" etc.
        return _CLASS_BY_SIGNAL.get(anomaly.signal.removeprefix("slo:"), "slo")
    if anomaly.kind == "metric" and anomaly.metric in _SATURATION_METRICS:
        return "saturation"
    # Per-step fields are named `step_conversion.<i>`: the class is the field's.
    return _CLASS_BY_SIGNAL.get(anomaly.signal.partition(".")[0], "metric")
