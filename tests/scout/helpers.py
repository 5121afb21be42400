"""Small builders for detector tests: signals of one series at window i."""

from __future__ import annotations

from typing import Any

import numpy as np

from operators.scout.detect.events import AnomalyCleared, Detection
from sre_space.records import Anomaly, SignalWindow
from tests.scout.synth import at, window_bounds


def span(i: int, count: int, errors: int = 0, service: str = "svc", **kw: Any) -> SignalWindow:
    """A server span signal of `service` in window i."""
    start, end = window_bounds(i)
    return SignalWindow(
        kind="span",
        service=service,
        operation=kw.pop("operation", "GET /"),
        window_start=start,
        window_end=end,
        count=count,
        errors=errors,
        error_rate=errors / count if count else 0.0,
        span_kind=kw.pop("span_kind", "server"),
        **kw,
    )


def funnel(i: int, steps: list[int], level: str | None = None) -> SignalWindow:
    """The checkout journey's funnel in window i (steps[k]: journeys past step k), of one slice."""
    start, end = window_bounds(i)
    return SignalWindow(
        kind="cuj",
        cuj="checkout",
        window_start=start,
        window_end=end,
        steps=steps,
        started=steps[0],
        completed=steps[-1],
        count=steps[0],
        conversion=steps[-1] / steps[0] if steps[0] else None,
        attributes={"level": level} if level else None,
    )


def metric(i: int, name: str, value: float, service: str = "svc", **kw: Any) -> SignalWindow:
    """A metric signal in window i."""
    start, end = window_bounds(i)
    return SignalWindow(
        kind="metric",
        service=service,
        metric=name,
        window_start=start,
        window_end=end,
        value=value,
        **kw,
    )


def cuj(i: int, started: int, completed: int, name: str = "checkout") -> SignalWindow:
    """A journey signal in window i."""
    start, end = window_bounds(i)
    return SignalWindow(
        kind="cuj",
        cuj=name,
        window_start=start,
        window_end=end,
        started=started,
        completed=completed,
        count=started,
        conversion=completed / started if started else None,
    )


def anomaly(
    i: int,
    service: str | None,
    signal: str = "error_rate",
    *,
    id: str | None = None,
    detector: str = "significance",
    severity: str = "warning",
    kind: str = "span",
    cuj_name: str | None = None,
    metric_name: str | None = None,
) -> Detection:
    """A detection of an anomaly first seen at the end of window i."""
    aid = id or f"an-{service}-{signal}-{i}"
    a = Anomaly(
        id=aid,
        detector=detector,
        signal=signal,
        kind=kind,  # type: ignore[arg-type]
        onset=at(i),
        observed=1.0,
        expected=0.0,
        score=10.0,
        service=service,
        cuj=cuj_name,
        metric=metric_name,
        severity=severity,
    )
    return Detection(window_bounds(i)[1], a)


def cleared(i: int, aid: str, service: str | None = None) -> Detection:
    """A detection that anomaly `aid` cleared at the end of window i."""
    end = window_bounds(i)[1]
    return Detection(end, AnomalyCleared(id=aid, detector="x", signal="x", at=end, service=service))


def items(dets: list[Detection], cls: type) -> list[Any]:
    """The detections' items of one type."""
    return [d.item for d in dets if isinstance(d.item, cls)]


def daily_noise_burst(per_day: int, first: int, stop: int, seed: int, days: int = 10) -> np.ndarray:
    """Unit Gaussian noise over `days` days of `per_day` points, tripled at points
    [first, stop) of each day (a nightly batch job's wider noise)."""
    e = np.random.default_rng(seed).normal(0, 1.0, per_day * days)
    for d in range(days):
        e[d * per_day + first : d * per_day + stop] *= 3.0
    return e
