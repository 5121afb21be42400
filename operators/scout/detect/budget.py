"""SLO arithmetic shared by Scout's burn alerts, the post-mortem's error budget and the dashboard.

A signal window counts towards an objective when it matches it (`matches`); it then holds some
events and some bad events (`events_and_bad`):
- availability: `errors` of the matching span windows (server spans by default);
- latency: requests slower than `threshold_ms`, estimated from the window's quantiles (see
  `share_over_threshold`), times `count`;
- conversion: `started - completed` of the journey (journeys that did not finish).

From those: the burn rate `(bad / events) / (1 - objective)` (1 spends the budget exactly over the
period) and the budget of a period, `(1 - objective) x traffic rate x period`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field

from operators.otlp.span_kind import normalize_span_kind
from operators.scout.detect.config import DEFAULT_ALERTS, BurnAlert, SloSpec
from sre_space.records import SignalWindow


def matches(spec: SloSpec, w: SignalWindow) -> bool:
    """Whether a window counts towards an objective (a window without a span kind always does)."""
    if spec.type == "conversion":
        # the whole journey only: its slices (`attributes`) count the same journeys again
        return w.kind == "cuj" and w.cuj == spec.cuj and not w.attributes
    if w.kind != "span" or not w.service:
        return False
    if not spec.matches_service(w.service) or not spec.matches_operation(w.operation or ""):
        return False
    if w.span_kind is not None:
        return _normal_kind(w.span_kind) in _normal_kinds(tuple(spec.span_kinds))
    return True


# Every span window is matched against every objective: span kinds are normalised once each.
_normal_kind = lru_cache(maxsize=256, typed=True)(normalize_span_kind)


@lru_cache(maxsize=256, typed=True)
def _normal_kinds(kinds: tuple[str | int, ...]) -> frozenset[str]:
    return frozenset(normalize_span_kind(k) for k in kinds)


def subject(spec: SloSpec, w: SignalWindow) -> str:
    """What one instance of the objective measures: the journey, or the service."""
    return (w.cuj if spec.type == "conversion" else w.service) or ""


def share_over_threshold(
    p50: float | None, p95: float | None, p99: float | None, max_ms: float | None, threshold: float
) -> float:
    """Estimated share of requests slower than `threshold` from a window's quantiles.

    Interpolates the latency CDF linearly in log-latency between the known points (p50, 0.5),
    (p95, 0.95), (p99, 0.99), (max, 1.0). Below p50 nothing is known, so 0.5 is returned: a lower
    bound that is already far above any sane latency budget, so the SLO burns hard either way.
    """
    points = [(q, v) for q, v in ((0.5, p50), (0.95, p95), (0.99, p99), (1.0, max_ms)) if v]
    if not points:
        return 0.0
    if threshold < points[0][1]:
        return 1.0 - points[0][0]
    if threshold >= points[-1][1]:
        return 0.0 if points[-1][0] == 1.0 else 1.0 - points[-1][0]
    for (q_lo, v_lo), (q_hi, v_hi) in itertools.pairwise(points):
        if v_lo <= threshold < v_hi:
            frac = (math.log(threshold) - math.log(v_lo)) / (math.log(v_hi) - math.log(v_lo))
            return 1.0 - (q_lo + frac * (q_hi - q_lo))
    return 0.0


def events_and_bad(spec: SloSpec, w: SignalWindow) -> tuple[int, float]:
    """All events of a matching window (requests, or journeys started) and the bad ones."""
    if spec.type == "conversion":
        started = w.started or 0
        return started, float(started - min(w.completed or 0, started))
    if spec.type == "availability":
        return w.count, float(min(w.errors, w.count))
    assert spec.threshold_ms is not None
    share = share_over_threshold(w.p50_ms, w.p95_ms, w.p99_ms, w.max_ms, spec.threshold_ms)
    return w.count, w.count * share


def burn(events: float, bad: float, objective: float) -> float:
    """How many times faster than sustainable the error budget burns (0 without events)."""
    if events <= 0:
        return 0.0
    return (bad / events) / (1.0 - objective)


def budget_events(objective: float, events: float, span_s: float, period_days: float) -> float:
    """The error budget of a period in events: the traffic rate seen over `span_s` seconds,
    extrapolated to `period_days`, times the share allowed to be bad."""
    return (1.0 - objective) * (events / span_s) * period_days * 86_400


def budget_spent(bad: float, budget: float, *, per: float = 1.0) -> float:
    """The share of a budget that `bad` events spend, out of `per` (100: percent); 0 for none."""
    return per * bad / budget if budget > 0 else 0.0


def fast_burn_rate(alerts: Sequence[BurnAlert]) -> float:
    """The burn rate of the fastest paging rule (the page threshold), else of the fastest rule."""
    pages = [a.burn_rate for a in alerts if a.severity == "page"]
    return max(pages or [a.burn_rate for a in alerts])


class Slo(SloSpec):
    """A named objective whose error budget is counted over `period_days` (a `slos.objectives`
    entry as the post-mortem and the dashboard read it)."""

    name: str
    type: Literal["availability", "latency", "conversion"] = "availability"
    period_days: float = Field(30.0, gt=0)

    def __init__(self, name: str, objective: float, **fields: Any) -> None:
        # Positional like the objectives' table (name, objective); pydantic validates the rest.
        super().__init__(**{**fields, "name": name, "objective": objective})

    @classmethod
    def from_spec(
        cls,
        name: str,
        spec: SloSpec,
        *,
        alerts: Sequence[BurnAlert] = (),
        period_days: float = 30.0,
    ) -> Slo:
        """The objective `name` of a config; `alerts` stand in for rules it does not set itself."""
        fields = spec.model_dump(exclude={"objective", "alerts"})
        return cls(
            name,
            spec.objective,
            **fields,
            alerts=spec.alerts or tuple(alerts) or None,
            period_days=period_days,
        )

    @property
    def page_burn_rate(self) -> float:
        """The burn rate at which this objective pages (its fast-burn rule)."""
        return fast_burn_rate(self.alerts or DEFAULT_ALERTS)
