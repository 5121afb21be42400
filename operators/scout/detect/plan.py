"""`FieldPlan`: which fields of a series' signals are judged, and by which test.

A `SeriesDetector` sees one series, whose rules and cumulativeness do not change from one window
to the next: the plan is worked out once and kept (looking the rules up per window was a
measurable share of a window of 50,000 series).
"""

from __future__ import annotations

from operators.scout.detect.config import DetectionConfig, SeriesRule
from sre_space.records import SignalWindow

# Fields judged per kind, in a fixed order so outputs are ordered the same on every replay.
FIELDS: dict[str, tuple[str, ...]] = {
    "span": ("error_rate", "p50_ms", "p95_ms", "p99_ms", "max_ms", "count"),
    "cuj": ("conversion", "started", "completed"),
    "metric": ("utilization", "value", "rate"),
    "pipeline": ("value",),
}

# What a plan depends on: (kind, service, name, metric, temporality, funnel steps).
PlanKey = tuple[str, str, str, str | None, str | None, int]


class FieldPlan:
    """The judged fields of one series shape, each with its rule and whether the forecaster
    judges it; and the series-level tests that apply."""

    __slots__ = ("cumulative", "fields", "key", "restarts", "saturation")

    def __init__(self, cfg: DetectionConfig, sig: SignalWindow, key: PlanKey, metric: str) -> None:
        kind, service, _, _, temporality, _ = key
        self.key = key
        # A cumulative sum: its `rate` is derived, and its `value` (it only grows) is not judged.
        self.cumulative = cfg.is_cumulative(sig.metric or "", temporality)
        self.restarts = kind == "metric" and metric in cfg.changes.restart_metrics
        self.saturation = kind == "metric" and metric in cfg.saturation.metrics
        fields: list[tuple[str, SeriesRule, bool]] = []
        for field in judged_fields(sig):
            if kind == "metric" and field == "value" and cfg.is_cumulative(metric, temporality):
                continue
            # Per-step funnel fields share one rule (`step_conversion`).
            rule = cfg.rule_for(kind, service, metric, field.partition(".")[0])
            if rule is None:
                continue
            forecast = (
                kind == "metric"
                and rule.test == "robust"
                and cfg.metrics.enabled
                and field in cfg.metrics.fields
            )
            fields.append((field, rule, forecast))
        self.fields = tuple(fields)


def plan_key(sig: SignalWindow, kind: str, service: str, name: str) -> PlanKey:
    """What the plan of a signal depends on, besides the config."""
    steps = len(sig.steps or ()) if kind == "cuj" else 0
    return (kind, service, name, sig.metric, sig.temporality, steps)


def judged_fields(sig: SignalWindow) -> tuple[str, ...]:
    """The judged fields of a signal: the kind's fields, plus each funnel step of a journey."""
    fields = FIELDS[sig.kind]
    steps = sig.steps or []
    if sig.kind == "cuj" and len(steps) > 2:
        # With two steps the only step conversion is the conversion itself.
        fields += tuple(f"step_conversion.{i}" for i in range(1, len(steps)))
    return fields
