"""Thresholds and weights of the Brain, in one place with their defaults and a `validate()`."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, get_type_hints

from pydantic import create_model

from sre_space.settings import FrozenModel

# The attributes whose values may concentrate failures or slowness: OpenTelemetry semantic
# conventions only (a site adds its own business attributes in its `diagnosis:` section).
# `service.version` is the contract's `service_version` column; `feature_flag` is built from
# `feature_flag` span events.
DEFAULT_PINPOINT_ATTRIBUTES: tuple[str, ...] = (
    "service.version",
    "k8s.pod.name",
    "service.instance.id",
    "http.route",
    "http.response.status_code",
    "rpc.grpc.status_code",
    "exception.type",
    "db.system",
    "server.address",
    "feature_flag",
)


@dataclass(frozen=True, slots=True)
class DiagnosisConfig:
    """Every knob of the deterministic analysis. Defaults are what the chaos suite is scored with."""

    # N+1: at least this many calls with the same (service, operation, target) under one parent,
    # and the calls overlap at most this much (1 - union/sum of durations) with durations summing
    # to about their wall window; more overlap, or different targets, is fan-out
    # (`structure.call_groups`).
    n_plus_one_min_count: int = 5
    n_plus_one_max_overlap: float = 0.2
    # A child "used up the caller's budget" when it lasts this share of its parent's duration.
    dominant_child_share: float = 0.7
    # Business failures: spans whose attribute has one of these values count as failures even when
    # the transport succeeded (HTTP 200 with a declined order). None by default: they are a
    # site's own attributes, set in its `diagnosis:` section.
    business_failures: dict[str, tuple[str, ...]] = field(default_factory=dict)
    pinpoint_attributes: tuple[str, ...] = DEFAULT_PINPOINT_ATTRIBUTES
    # Pinpoint attributes with these prefixes belong to the whole request: a span without the
    # value inherits its trace's (semantic-convention user and session ids; a site adds its own).
    trace_level_prefixes: tuple[str, ...] = ("enduser.", "user.", "session.")
    pinpoint_min_support: int = 5
    pinpoint_min_share: float = 0.5
    pinpoint_min_risk_ratio: float = 2.0
    # Evidence weights in the candidate score.
    weight_errors: float = 1.0
    weight_latency: float = 1.0
    weight_resources: float = 0.6
    weight_changes: float = 0.25
    weight_traffic: float = 0.35
    weight_attribute: float = 0.15
    weight_hops: float = 1.0
    weight_structure: float = 1.0
    # A candidate whose symptom parts (errors, latency, resources, traffic, hops, structure, pods)
    # sum below this gets nothing for its changes and attribute concentrations: they explain a
    # symptom, and a change or a concentration of a few ordinary failures is not one.
    min_symptom_score: float = 0.05
    # A pod whose CPU, memory or network moved with the latency it served (`pods`).
    weight_pods: float = 1.0
    # ... counts when its metric moved at least this share of a full move (CPU or network doubled,
    # memory up a quarter) beyond its peers'.
    pod_min_move: float = 0.25
    # A latency shift below this share of the baseline per-trace time is noise.
    min_latency_shift_ratio: float = 0.15
    min_error_excess_rate: float = 0.01
    # Abstain below this confidence, or with fewer incident traces than this.
    abstain_below: float = 0.35
    min_incident_traces: int = 20
    # A baseline with fewer traces than this is replaced (history before the window, or the
    # window's first quarter; the diagnosis says which).
    min_baseline_traces: int = 20
    # Change evidence counts when it happened at most this long before onset (or during the window).
    change_lookback_s: float = 1800.0
    # Resource thresholds (utilization is usage / limit).
    memory_high: float = 0.9
    cpu_high: float = 0.85
    pool_high: float = 0.95
    lag_growth: float = 3.0
    traffic_surge: float = 1.5
    example_traces: int = 3
    max_candidates: int = 5

    def validate(self) -> DiagnosisConfig:
        """Check ranges; the error names the field and the allowed range."""
        problems: list[str] = []
        for name in ("n_plus_one_min_count", "pinpoint_min_support", "example_traces"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)!r})")
        for name in ("n_plus_one_max_overlap", "dominant_child_share", "abstain_below"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be within [0, 1] (got {value!r})")
        if problems:
            message = "invalid diagnosis config: " + "; ".join(problems)
            raise ValueError(message)
        return self

    @classmethod
    def from_settings(cls, settings: Any = None) -> DiagnosisConfig:
        """From the pipeline config's `diagnosis:` section (packaged defaults merged with the file
        named by SRE_CONFIG); `settings` defaults to `load_settings()`."""
        if settings is None:
            from sre_space.settings import load_settings

            settings = load_settings()
        return cls.from_mapping(settings.pipeline.extra.get("diagnosis"))

    @classmethod
    def from_mapping(cls, data: dict[str, Any] | None) -> DiagnosisConfig:
        """Build from a config section (e.g. the pipeline config's `diagnosis:` extra section)."""
        if not data:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            message = f"unknown diagnosis config keys {unknown}; known keys: {sorted(known)}"
            raise ValueError(message)
        values = dict(data)
        if "business_failures" in values:
            values["business_failures"] = {
                k: tuple(v) for k, v in dict(values["business_failures"]).items()
            }
        for name in ("pinpoint_attributes", "trace_level_prefixes"):
            if name in values:
                values[name] = tuple(values[name])
        return replace(cls(), **values).validate()


def _section_model() -> type[FrozenModel]:
    # The typed config validates `diagnosis:` with this model, built from the dataclass's own
    # fields and defaults, so the keys and their types are written once.
    hints = get_type_hints(DiagnosisConfig)
    fields_: dict[str, Any] = {
        f.name: (hints[f.name], f.default if f.default is not MISSING else f.default_factory())  # type: ignore[operator]
        for f in fields(DiagnosisConfig)
    }
    return create_model("DiagnosisSection", __base__=FrozenModel, **fields_)


DiagnosisSection = _section_model()
