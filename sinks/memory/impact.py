"""The impact figures of a post-mortem: pure functions over the incident's records and signal
windows, also what the tests call to recompute a figure.

- impact interval: from the earliest anomaly onset (the incident's `opened_at` when there is none) to
  the incident's `recovered_at`, else the remediation's verification time, else `updated_at`;
- a window is "in the impact" when it overlaps that interval;
- failed requests: sum of `errors` of the span windows in the impact whose (service, operation) is
  an anomalous span key; when no span key is anomalous, of every span window given;
- CUJ conversions lost: sum over the CUJ windows in the impact of (baseline - observed conversion) x
  started, where the baseline is the CUJ conversion anomaly's `expected`, else completed / started of
  the windows before the impact; the net sum is floored at zero (noise cancels, a loss is never negative);
- error budget spent per SLO: bad events in the impact / ((1 - objective) x expected events in the SLO
  period), the traffic rate being extrapolated from every window of the SLO's keys given; bad events
  are counted as Scout's SLO burn counts them (`operators.scout.detect.budget`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from operators.scout.detect.budget import (
    Slo,
    budget_events,
    budget_spent,
    events_and_bad,
    matches,
)
from sinks.memory.records import BudgetSpent, Impact, Remediation
from sre_space.records import Anomaly, Incident, SignalWindow
from sre_space.timeutil import NS_PER_S


def impact_interval(
    incident: Incident, anomalies: Sequence[Anomaly], remediation: Remediation | None
) -> tuple[int, int, bool]:
    """(start, end, ongoing), ns: earliest onset to recovery (see the module docstring)."""
    start = min([a.onset for a in anomalies] + [incident.opened_at])
    if incident.recovered_at is not None:
        return start, incident.recovered_at, False
    if remediation is not None and remediation.verified and remediation.verified_at is not None:
        return start, remediation.verified_at, False
    return (
        start,
        incident.updated_at,
        incident.state not in ("resolved", "recovered"),
    )


def in_interval(w: SignalWindow, start: int, end: int) -> bool:
    """Whether a window overlaps [start, end) (ns)."""
    return w.window_start < end and w.window_end > start


def affected_span_keys(anomalies: Sequence[Anomaly]) -> set[tuple[str, str]]:
    """(service, operation) of every anomalous span key."""
    return {
        (a.service, a.operation)
        for a in anomalies
        if a.kind == "span" and a.service is not None and a.operation is not None
    }


def failed_requests(
    windows: Sequence[SignalWindow], anomalies: Sequence[Anomaly], start: int, end: int
) -> tuple[int, int]:
    """(requests, failed requests) of the affected span keys over the impact interval."""
    keys = affected_span_keys(anomalies)
    total = failed = 0
    for w in windows:
        if w.kind != "span" or not in_interval(w, start, end):
            continue
        if keys and (w.service, w.operation) not in keys:
            continue
        total += w.count
        failed += w.errors
    return total, failed


def conversions_lost(
    windows: Sequence[SignalWindow], anomalies: Sequence[Anomaly], start: int, end: int
) -> tuple[str | None, float | None, float | None, float | None]:
    """(cuj, conversions lost, baseline, observed) for the most affected CUJ; Nones when no CUJ."""
    best: tuple[str | None, float | None, float | None, float | None] = (None, None, None, None)
    # Whole journeys only: a journey's slices (`attributes`) count the same journeys again.
    whole = [w for w in windows if w.kind == "cuj" and w.cuj and not w.attributes]
    for cuj in sorted({w.cuj or "" for w in whole}):
        series = [w for w in whole if w.cuj == cuj]
        expected = [
            a.expected
            for a in anomalies
            if a.kind == "cuj" and a.cuj == cuj and a.signal == "conversion"
        ]
        if expected:
            baseline = expected[0]
        else:
            before = [w for w in series if w.window_end <= start and w.started]
            started = sum(w.started or 0 for w in before)
            if not started:
                continue
            baseline = sum(w.completed or 0 for w in before) / started
        during = [
            w
            for w in series
            if in_interval(w, start, end) and w.started and w.conversion is not None
        ]
        if not during:
            continue
        lost = sum((baseline - (w.conversion or 0.0)) * (w.started or 0) for w in during)
        started_during = sum(w.started or 0 for w in during)
        observed = sum((w.conversion or 0.0) * (w.started or 0) for w in during) / started_during
        lost = max(0.0, lost)
        if best[1] is None or lost > best[1]:
            best = (cuj, lost, baseline, observed)
    return best


def error_budget(
    slo: Slo, windows: Sequence[SignalWindow], start: int, end: int
) -> BudgetSpent | None:
    """Error budget spent by the impact against one SLO; None when no window matches it."""
    mine = [w for w in windows if matches(slo, w)]
    if not mine:
        return None
    span_s = (max(w.window_end for w in mine) - min(w.window_start for w in mine)) / NS_PER_S
    if span_s <= 0:
        return None
    counts = [events_and_bad(slo, w) for w in mine]
    allowance = budget_events(slo.objective, sum(e for e, _ in counts), span_s, slo.period_days)
    bad = sum(b for w, (_, b) in zip(mine, counts, strict=True) if in_interval(w, start, end))
    return BudgetSpent(
        slo=slo.name,
        objective=slo.objective,
        bad_events=bad,
        budget_events=allowance,
        spent_pct=budget_spent(bad, allowance, per=100.0),
        estimated=slo.type == "latency",
    )


def compute_impact(
    incident: Incident,
    anomalies: Sequence[Anomaly],
    remediation: Remediation | None,
    windows: Sequence[SignalWindow],
    slos: Sequence[Slo] = (),
) -> Impact:
    """Every impact figure of the post-mortem."""
    start, end, ongoing = impact_interval(incident, anomalies, remediation)
    requests, failed = failed_requests(windows, anomalies, start, end)
    cuj, lost, baseline, observed = conversions_lost(windows, anomalies, start, end)
    budgets = [b for b in (error_budget(s, windows, start, end) for s in slos) if b is not None]
    return Impact(
        start=start,
        end=end,
        duration_s=(end - start) / NS_PER_S,
        requests=requests,
        failed_requests=failed,
        conversions_lost=lost,
        conversion_baseline=baseline,
        conversion_observed=observed,
        cuj=cuj,
        error_budget=budgets,
        ongoing=ongoing,
    )


def first_restart(windows: Sequence[SignalWindow]) -> int | None:
    """Start (ns) of the first window where a restart counter went up, or None."""
    by_key: dict[tuple[str, str, str], list[SignalWindow]] = {}
    for w in windows:
        if w.kind == "metric" and w.metric and "restart" in w.metric and w.value is not None:
            by_key.setdefault(w.key, []).append(w)
    firsts = []
    for series in by_key.values():
        series.sort(key=lambda w: w.window_start)
        for prev, cur in itertools.pairwise(series):
            if (cur.value or 0) > (prev.value or 0):
                firsts.append(cur.window_start)
                break
    return min(firsts) if firsts else None
