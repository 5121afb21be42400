"""What a series' anomaly says: its record, its clear, its exemplars and its detail text."""

from __future__ import annotations

from collections.abc import Iterable

from operators.scout.detect.events import AnomalyCleared
from operators.scout.detect.persistence import Streak
from operators.scout.detect.saturation import TrendVerdict
from sre_space.records import Anomaly, SignalWindow
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339

QUANTILE_FIELDS = {"p50_ms", "p95_ms", "p99_ms", "max_ms"}
MAX_EXEMPLARS = 6


def anomaly_record(
    sig: SignalWindow,
    field: str,
    detector: str,
    aid: str,
    streak: Streak,
    exemplars: Iterable[list[str]],
    last: tuple[float, float],
    score: float,
    severity: str = "warning",
    detail: str = "",
) -> Anomaly:
    """The record of anomaly `aid` of a field: onset and windows from its streak, the recent
    windows' exemplar traces (deduplicated), the last (observed, expected) and score."""
    assert streak.onset is not None
    ids: list[str] = []
    for batch in exemplars:
        ids += [i for i in batch if i not in ids]
    observed, expected = last
    return Anomaly(
        id=aid,
        detector=detector,
        signal=field,
        kind=sig.kind,
        onset=streak.onset,
        observed=observed,
        expected=expected,
        score=round(score, 6),
        service=sig.service,
        operation=sig.operation,
        cuj=sig.cuj,
        metric=sig.metric,
        windows=streak.flagged_windows(),
        exemplar_trace_ids=ids[:MAX_EXEMPLARS],
        severity=severity,
        detail=detail or describe(sig, field, observed, expected),
    )


def cleared(sig: SignalWindow, aid: str, detector: str, field: str) -> AnomalyCleared:
    return AnomalyCleared(
        id=aid,
        detector=detector,
        signal=field,
        at=sig.window_end,
        service=sig.service,
        operation=sig.operation,
        cuj=sig.cuj,
        metric=sig.metric,
    )


def exemplars_of(sig: SignalWindow, field: str) -> list[str]:
    failing = list(sig.failing_trace_ids or [])
    slowest = list(sig.slowest_trace_ids or [])
    if field in QUANTILE_FIELDS:
        return slowest + failing
    return failing + slowest


def describe(sig: SignalWindow, field: str, observed: float, expected: float) -> str:
    _, service, name = sig.key
    where = "/".join(p for p in (service, name) if p)
    if field.startswith("step_conversion."):
        i = int(field.partition(".")[2])
        steps = sig.steps or []
        return (
            f"{where} funnel step {i + 1} of {len(steps)}: {observed:.4g} of the previous step "
            f"passed vs baseline {expected:.4g}"
        )
    return f"{where} {field}: {observed:.4g} vs baseline {expected:.4g}"


_FAR_S = 365 * 86_400.0


def trend_detail(sig: SignalWindow, verdict: TrendVerdict, t_ns: int) -> str:
    tte = verdict.time_to_exhaustion_s
    where = "/".join(p for p in (sig.service, sig.metric) if p)
    if tte is None:
        return f"{where}: utilization {verdict.level:.3f}, not rising"
    # A near-flat slope puts exhaustion past any date a clock can print.
    at = ns_to_rfc3339(t_ns + int(tte * NS_PER_S)) if tte < _FAR_S else "never (within a year)"
    fresh = (
        f" in {verdict.instances} container(s) started lately (z={verdict.z:.1f})"
        if verdict.instances and verdict.z is not None
        else ""
    )
    return (
        f"{where}: utilization {verdict.level:.3f} rising {verdict.slope_per_s * 60:.4f}/min"
        f"{fresh}; time_to_exhaustion_s={tte:.1f}; exhausts_at={at}"
    )
