"""Config models for the `slos:` and `detection:` sections of the pipeline YAML.

`PipelineConfig` keeps unknown top-level sections in `extra`; `load_slos` and `load_detection`
validate them here and raise `ConfigError` naming the bad key (`slos.objectives.x.objective: ...`).
Durations are seconds (numbers) or strings with a unit: `500ms`, `30s`, `5m`, `1h`, `3d`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from operators.scout.detect.forecast import ForecastConfig
from sre_space.settings import FrozenModel, load_section
from sre_space.timeutil import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


# ---------------------------------------------------------------- SLOs


class BurnAlert(FrozenModel):
    """One multi-window burn-rate rule: fires when both windows burn at least `burn_rate`."""

    severity: Literal["page", "ticket"]
    long: Duration
    short: Duration
    burn_rate: float = Field(gt=0)

    @model_validator(mode="after")
    def _short_below_long(self) -> Self:
        if self.short >= self.long:
            raise ValueError(
                f"short window ({self.short}s) must be shorter than long ({self.long}s)"
            )
        return self


# The SRE Workbook's recommended set (chapter 5, "Multiwindow, Multi-Burn-Rate Alerts").
DEFAULT_ALERTS: tuple[BurnAlert, ...] = (
    BurnAlert(severity="page", long=3600, short=300, burn_rate=14.4),
    BurnAlert(severity="page", long=6 * 3600, short=1800, burn_rate=6.0),
    BurnAlert(severity="ticket", long=86400, short=2 * 3600, burn_rate=3.0),
    BurnAlert(severity="ticket", long=3 * 86400, short=6 * 3600, burn_rate=1.0),
)


class SloSpec(FrozenModel):
    """One declared SLO. Availability and latency get one instance per matching service."""

    type: Literal["availability", "latency", "conversion"]
    objective: float = Field(gt=0, lt=1)
    enabled: bool = True
    services: tuple[str, ...] = ("*",)
    operations: tuple[str, ...] = ("*",)
    # OTLP span kinds counted (server spans measure what callers see); a signal without
    # span_kind is counted too, so a flow that does not set it still gets SLOs.
    span_kinds: tuple[str, ...] = ("server",)
    threshold_ms: float | None = Field(None, gt=0)
    cuj: str | None = None
    alerts: tuple[BurnAlert, ...] | None = None
    min_events: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _needs(self) -> Self:
        if self.type == "latency" and self.threshold_ms is None:
            raise ValueError("a latency SLO needs threshold_ms")
        if self.type == "conversion" and not self.cuj:
            raise ValueError("a conversion SLO needs cuj (the journey name)")
        return self

    def matches_service(self, service: str) -> bool:
        """Whether this SLO covers `service` (glob patterns)."""
        return any(fnmatch.fnmatchcase(service, p) for p in self.services)

    def matches_operation(self, operation: str) -> bool:
        """Whether this SLO covers `operation` (glob patterns)."""
        return any(fnmatch.fnmatchcase(operation, p) for p in self.operations)


# One availability and one latency SLO per service, from server spans alone (OpenTelemetry span
# kinds and status), so any system gets burn-rate alerts out of the box. An objective the healthy
# system does not meet burns budget forever (a standing ticket, not a signal): a site file sets
# its own objectives, and a `conversion` SLO per journey it declares.
DEFAULT_OBJECTIVES: dict[str, SloSpec] = {
    "availability": SloSpec(type="availability", objective=0.995),
    "latency": SloSpec(type="latency", objective=0.95, threshold_ms=1000.0),
}


class SlosConfig(FrozenModel):
    """The `slos:` section."""

    # Durations of the alert windows are divided by time_scale: 60 runs an hour in a minute.
    time_scale: float = Field(1.0, gt=0)
    # Events needed in the long window before a rule may fire, so a handful of requests
    # cannot page (one error in 100 requests is a 10x burn of a 99.9% objective).
    min_events: int = Field(100, ge=0)
    # Evaluations with no rule firing before the SLO anomaly clears.
    clear_after: int = Field(3, ge=1)
    alerts: tuple[BurnAlert, ...] = DEFAULT_ALERTS
    objectives: dict[str, SloSpec] = Field(default_factory=lambda: dict(DEFAULT_OBJECTIVES))


# ---------------------------------------------------------------- detection


class Persistence(FrozenModel):
    """k of the last n evaluations of a series must be abnormal before it fires."""

    k: int = Field(2, ge=1)
    n: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _k_le_n(self) -> Self:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must not exceed n ({self.n})")
        return self


class BaselineConfig(FrozenModel):
    """Robust baseline: median and MAD over a trailing history of a series' own observations."""

    history: int = Field(360, ge=5)
    min_history: int = Field(18, ge=3)
    threshold: float = Field(5.0, gt=0)
    persistence: Persistence = Persistence()
    clear_after: int = Field(3, ge=1)
    # While an anomaly is active its series must come back well inside the thresholds to count
    # as normal: thresholds and minimum effects are multiplied by this (hysteresis, no flapping).
    hold_factor: float = Field(0.5, gt=0, le=1)
    # After this many abnormal observations in a row the new level is accepted as normal.
    relearn_after: int = Field(360, ge=1)
    hour_of_day: bool = False
    # A series silent for longer than this restarts its persistence count.
    max_gap: Duration = 600.0

    @model_validator(mode="after")
    def _min_le_history(self) -> Self:
        if self.min_history > self.history:
            raise ValueError(f"min_history ({self.min_history}) exceeds history ({self.history})")
        return self


class RatesConfig(FrozenModel):
    """Significance of rate changes (errors/count, completed/started) under the baseline rate."""

    alpha: float = Field(1e-4, gt=0, lt=1)
    # While an anomaly is active a window still counts as abnormal up to this p-value.
    alpha_hold: float = Field(0.05, gt=0, lt=1)
    # Low traffic: the window pooled with its predecessors (this many in all) is tested too, at
    # the stricter alpha_pooled, so a moderate drop at 20 journeys a window is still seen fast.
    pool_windows: int = Field(3, ge=1)
    alpha_pooled: float = Field(1e-5, gt=0, lt=1)
    # A longer pool (0: none) at a stricter level still, for drops too small for a few windows.
    long_pool_windows: int = Field(12, ge=0)
    alpha_long_pooled: float = Field(1e-6, gt=0, lt=1)
    # Trials in a window below which the window is not judged at all.
    min_trials: int = Field(5, ge=1)
    # Trials in the history before the baseline rate is trusted. 100 lets a small segment's
    # journey (2-3 a window) be judged after some 7 minutes; the minimum effects and the
    # strict alphas carry the rest of the uncertainty of a short history.
    min_history_trials: int = Field(100, ge=1)
    # After a change (a deploy or a flag flip) of a service on the series' journey, every window
    # since the change is pooled and tested at `alpha_change` for this many windows (0: off). A
    # significant pool fires at once: it is its own persistence, and a drop that starts with a
    # change is what a change-aware on-call looks at first (few tests per change: little risk).
    change_windows: int = Field(30, ge=0)
    alpha_change: float = Field(1e-4, gt=0, lt=1)
    # A journey's slices (`journeys.*.slice_by`) judged, the first seen; later ones are not (an
    # attribute of unbounded values would otherwise cost a detector per value).
    max_slices: int = Field(32, ge=0)


SeriesKind = Literal["span", "cuj", "metric", "pipeline", "*"]
# Fields with trials and successes: `step_conversion` is each funnel step's share of the step
# before it (judged per step), where a drop concentrated in one step stands out far better than
# in the end-to-end conversion, whose first steps carry most of the binomial noise.
BINOMIAL_FIELDS = ("error_rate", "conversion", "step_conversion")


class SeriesRule(FrozenModel):
    """Which field of which series is judged, how, in which direction, with what minimum effect.

    For each (series, field) the first matching rule wins: put narrower rules first.
    `field` is a SignalWindow field, or `rate` (per-second increase of a cumulative `value`).
    """

    kind: SeriesKind = "*"
    service: str = "*"
    name: str = "*"
    field: str
    enabled: bool = True
    test: Literal["robust", "binomial", "threshold"] = "robust"
    direction: Literal["up", "down", "both"] = "both"
    min_abs: float = Field(0.0, ge=0)
    min_rel: float = Field(0.0, ge=0)
    above: float | None = None
    # Robust rules only: an observation is abnormal only at or beyond this level (in the rule's
    # direction). Utilization that steps from 38% to 45% after a deploy is a change, not a
    # saturation: nobody is hurt until the resource nears its limit (trends have their own test).
    min_level: float | None = None
    # Robust rules on counts (requests, journeys started): the noise is at least Poisson's, so
    # the value must also be `threshold` sigmas out on the variance-stabilised Poisson scale,
    # however tight a short history's MAD happens to be.
    poisson: bool = False
    # Robust rules on latency quantiles: a quantile of tens of requests is set by its slowest one
    # or two, draws from a heavy (about lognormal) tail, so its noise is skewed up; the value must
    # also be `threshold` MADs out on the log scale, where that noise is about symmetric.
    log_scale: bool = False

    @model_validator(mode="after")
    def _checks(self) -> Self:
        if self.test == "threshold" and self.above is None:
            raise ValueError("a threshold rule needs `above`")
        if self.test == "binomial" and self.field not in BINOMIAL_FIELDS:
            raise ValueError(f"binomial tests apply to {', '.join(BINOMIAL_FIELDS)} only")
        if self.min_level is not None and self.test != "robust":
            raise ValueError("min_level applies to robust rules only")
        if self.poisson and self.test != "robust":
            raise ValueError("poisson applies to robust rules only")
        if self.log_scale and self.test != "robust":
            raise ValueError("log_scale applies to robust rules only")
        return self

    def matches(self, kind: str, service: str, name: str, field: str) -> bool:
        """Whether this rule applies to the series (globs on service and name)."""
        return (
            self.field == field
            and self.kind in ("*", kind)
            and fnmatch.fnmatchcase(service, self.service)
            and fnmatch.fnmatchcase(name, self.name)
        )


def _r(**kw: Any) -> SeriesRule:
    return SeriesRule(**kw)


DEFAULT_RULES: tuple[SeriesRule, ...] = (
    _r(kind="span", field="error_rate", test="binomial", direction="up", min_abs=0.02, min_rel=1.0),
    # The median doubling: most requests slower, seen at traffic where p95 says nothing yet.
    _r(kind="span", field="p50_ms", direction="up", min_abs=20.0, min_rel=1.0, log_scale=True),
    _r(kind="span", field="p95_ms", direction="up", min_abs=20.0, min_rel=0.5, log_scale=True),
    _r(kind="span", field="p99_ms", direction="up", min_abs=50.0, min_rel=0.5, log_scale=True),
    _r(kind="span", field="count", direction="both", min_abs=10.0, min_rel=0.5, poisson=True),
    _r(
        kind="cuj", field="conversion", test="binomial", direction="down", min_abs=0.05, min_rel=0.1
    ),
    _r(
        kind="cuj",
        field="step_conversion",
        test="binomial",
        direction="down",
        min_abs=0.05,
        min_rel=0.05,
    ),
    _r(kind="cuj", field="started", direction="both", min_abs=5.0, min_rel=0.5, poisson=True),
    _r(kind="metric", name="k8s.container.restarts", field="value", enabled=False),
    _r(kind="metric", name="k8s.container.restarts", field="rate", enabled=False),
    _r(kind="metric", name="memory", field="value", enabled=False),
    _r(kind="metric", name="cpu", field="value", enabled=False),
    _r(kind="metric", name="connection_pool", field="value", enabled=False),
    _r(
        kind="metric",
        field="utilization",
        direction="up",
        min_abs=0.05,
        min_rel=0.1,
        min_level=0.8,
    ),
    _r(kind="metric", field="rate", direction="both", min_abs=0.0, min_rel=0.5),
    _r(kind="metric", field="value", direction="both", min_abs=0.0, min_rel=0.5),
    _r(kind="pipeline", name="watermark_delay_s", field="value", test="threshold", above=60.0),
    # A service past metrics.series.max_per_service: a cardinality explosion, never normal.
    _r(
        kind="pipeline",
        name="metric_series_overflow",
        field="value",
        test="threshold",
        above=0.0,
    ),
    _r(
        kind="pipeline",
        name="consumer_lag",
        field="value",
        direction="up",
        min_rel=1.0,
        min_abs=1000,
    ),
    _r(kind="pipeline", field="value", direction="up", min_abs=5.0, min_rel=1.0),
)


class SaturationConfig(FrozenModel):
    """Trend to limit: a robust slope of utilization projected to `exhaustion_level`."""

    metrics: tuple[str, ...] = ("memory", "connection_pool")
    horizon: Duration = 900.0
    lookback: Duration = 300.0
    min_points: int = Field(6, ge=3)
    min_utilization: float = Field(0.3, ge=0)
    # Share of point pairs that must rise: a trend, not a wiggle.
    min_monotonic: float = Field(0.7, ge=0.5, le=1.0)
    exhaustion_level: float = Field(1.0, gt=0)
    # A drop of utilization by this much between two points is a restart: the fit starts over.
    reset_drop: float = Field(0.2, gt=0)
    # A deploy of the series' service starts the fit over at the deploy: a new version brings
    # new memory behaviour, and the flat points before it would hide a leak's slope for minutes.
    # Such an anchored fit needs fewer points but a steadier rise (a step up after a deploy is
    # not a leak), a rise of at least `anchored_noise_z` noise sigmas (sigma from the points
    # before the deploy), and no minimum utilization: exhaustion within the horizon is the test.
    anchor_on_deploy: bool = True
    anchored_min_points: int = Field(5, ge=3)
    anchored_min_monotonic: float = Field(0.9, ge=0.5, le=1.0)
    anchored_noise_z: float = Field(5.0, ge=0)
    # An anchored fit that passes fires at once: its points are its persistence.
    anchored_fires_at_once: bool = False
    # The newest half of an anchored fit's points must still climb at this share of its slope
    # (a warm-up levels off, a leak does not); 0: off.
    anchored_recent_ratio: float = Field(0.5, ge=0, le=1)
    # Containers that start while watched (a rollout's pods, a restarted container) are fitted
    # one by one from `instance_min_points` points on (after their first `instance_skip_points`,
    # taken while the working set still fills), with one slope common to them all; it fires at
    # once when that slope is `instance_z` standard errors above zero (noise from every
    # container's point-to-point changes) and exhaustion is within the horizon. Needs
    # per-instance utilization in the signals (`instances`); off with `per_instance: false`.
    per_instance: bool = True
    instance_skip_points: int = Field(1, ge=0)
    instance_min_points: int = Field(2, ge=2)
    instance_z: float = Field(3.5, gt=0)
    instance_stale: Duration = 60.0
    # k of the last n trend verdicts must be abnormal before the predictive anomaly fires.
    persistence: Persistence = Persistence()


class ChangesConfig(FrozenModel):
    """Change events: restarts from cumulative restart counters, deploys from span versions."""

    restart_metrics: tuple[str, ...] = ("k8s.container.restarts",)
    restart_anomaly: bool = True
    deploys: bool = True


class DetectionConfig(FrozenModel):
    """The `detection:` section."""

    baseline: BaselineConfig = BaselineConfig()
    rates: RatesConfig = RatesConfig()
    # Checked before `rules`, so a site narrows or widens the defaults without repeating them.
    overrides: tuple[SeriesRule, ...] = ()
    rules: tuple[SeriesRule, ...] = DEFAULT_RULES
    # Sums whose data says cumulative are judged on `rate`, never on `value`; these metric name
    # globs too (a cumulative count carried in a gauge, which its data cannot say).
    cumulative: tuple[str, ...] = ()
    saturation: SaturationConfig = SaturationConfig()
    changes: ChangesConfig = ChangesConfig()
    # The forecaster that judges metric series (operators/scout/detect/forecast.py).
    metrics: ForecastConfig = ForecastConfig()
    # An instance whose metric series sent nothing for this long (and for three of its report
    # intervals) is gone, as a rolled pod is: its series' anomalies clear (detect/instances.py).
    instance_gone: Duration = 60.0

    def rule_for(self, kind: str, service: str, name: str, field: str) -> SeriesRule | None:
        """The first matching enabled-or-not rule for a series field (None: not judged)."""
        for rule in (*self.overrides, *self.rules):
            if rule.matches(kind, service, name, field):
                return rule if rule.enabled else None
        return None

    def is_cumulative(self, name: str, temporality: str | None = None) -> bool:
        """Whether a metric series carries a cumulative sum: its data says so, or `cumulative`."""
        return temporality == "cumulative" or any(
            fnmatch.fnmatchcase(name, p) for p in self.cumulative
        )


def load_slos(extra: Mapping[str, Any]) -> SlosConfig:
    """The `slos:` section from `PipelineConfig.extra`; errors name the bad key."""
    return load_section(extra, "slos", SlosConfig)


def load_detection(extra: Mapping[str, Any]) -> DetectionConfig:
    """The `detection:` section from `PipelineConfig.extra`; errors name the bad key."""
    return load_section(extra, "detection", DetectionConfig)
