"""Whether a fix worked: the harm the incident's anomalies show is gone, and any backlog drained.

Scout's incident state is the first answer (recovered = every anomaly back within baseline). When
it is not recovered, what still holds it open is weighed, because two kinds of anomaly are not
harm that a fix can or should remove:
- a traffic surge (more requests than the baseline): demand; scaling serves it, nothing ends it;
- the latency of consumer spans of a service that reports a backlog: async work is felt as the
  backlog's delay, and one message's work time is not what a scale-up changes.
A backlog (`backlog_metrics` of the incident's services) is judged against its level before the
incident; while it drains, the time it needs at its current rate (`drain_eta_s`) lets the
responder extend the deadline. A resource the incident saw trend to its limit must also have
stopped climbing at anything near the pace it climbed at before the fix was applied: more headroom
for a leak clears Scout's trend without fixing anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from operators.scout.detect.events import signal_class
from sinks.store.sqlite import Store
from sinks.store.telemetry import metric_levels, span_kind
from sre_space.records import Anomaly, Incident
from sre_space.responders.machine import HealthSample
from sre_space.timeutil import NS_PER_S

HEALTHY_STATES = frozenset({"recovered", "resolved"})
# Queue depth (the `queue` saturation mapping) and consumer lag (semantic conventions).
BACKLOG_METRICS = ("queue", "messaging.kafka.consumer.lag", "kafka.consumer_group.lag")


@dataclass(frozen=True, slots=True)
class Backlog:
    """One backlog series: its level before the incident, now, and its drain rate (per second)."""

    service: str
    metric: str
    before: float
    now: float
    drain_per_s: float

    @property
    def drained(self) -> bool:
        """Back to its level before the incident (a message or a tenth of it over is noise)."""
        return self.now <= max(self.before * 1.1, self.before + 1.0)

    @property
    def eta_s(self) -> float | None:
        """Seconds until drained at the current rate; None when it is not draining."""
        if self.drained:
            return 0.0
        if self.drain_per_s <= 0:
            return None
        return (self.now - max(self.before * 1.1, self.before + 1.0)) / self.drain_per_s


def clear_slope(points: Sequence[tuple[int, float]]) -> float:
    """The least-squares slope (per second) of (ns, value) points, 0 unless beyond twice its
    standard error: a series that hovers on a plateau is neither draining nor climbing."""
    n = len(points)
    if n < 3:
        return 0.0
    xs = [t / NS_PER_S for t, _ in points]
    ys = [v for _, v in points]
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
    residual = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys, strict=True))
    se = (residual / (n - 2) / var) ** 0.5
    return slope if abs(slope) > 2 * se else 0.0


def _dropped(points: Sequence[tuple[int, float]], i: int) -> bool:
    """Point `i` fell by more than a fifth from the one before: a restart, not noise."""
    return points[i][1] < 0.8 * points[i - 1][1]


def _runs(points: Sequence[tuple[int, float]]) -> list[Sequence[tuple[int, float]]]:
    """The points split at each restart (a kill at the limit, or a rollout): each run is one
    climb from a fresh start."""
    cuts = [0, *(i for i in range(1, len(points)) if _dropped(points, i)), len(points)]
    return [points[a:b] for a, b in pairwise(cuts) if b > a]


def _climb_since_restart(points: Sequence[tuple[int, float]]) -> float | None:
    """The clear slope since the last restart, which starts the climb over; None until three
    points since show where it goes."""
    runs = _runs(points)
    if len(runs) > 1 and len(runs[-1]) < 3:
        return None
    return clear_slope(runs[-1]) if runs else 0.0


def _pace_before(points: Sequence[tuple[int, float]]) -> float:
    """The climb of the newest run with three points or more: a kill at the limit just before
    the fix leaves the pace of the climb it ended, not no pace at all."""
    return next((clear_slope(run) for run in reversed(_runs(points)) if len(run) >= 3), 0.0)


def drain_rate(points: Sequence[tuple[int, float]]) -> float:
    """How fast (per second) a series of (ns, value) points clearly falls; 0 when it does not."""
    return max(0.0, -clear_slope(points))


class IncidentHealth:
    """The verify step's verdict per window, from the store (Scout's incidents and signals)."""

    def __init__(
        self,
        store: Store,
        *,
        backlog_metrics: Sequence[str] = BACKLOG_METRICS,
        baseline_s: float = 600.0,
        rate_s: float = 60.0,
        climb_s: float = 180.0,
        climb_share: float = 0.25,
    ) -> None:
        self.store = store
        self.backlog_metrics = tuple(backlog_metrics)
        self.baseline_ns = round(baseline_s * NS_PER_S)
        self.rate_ns = round(rate_s * NS_PER_S)
        self.climb_ns = round(climb_s * NS_PER_S)
        self.climb_share = climb_share
        self._before: dict[str, dict[tuple[str, str], float]] = {}

    def __call__(self, incident: Incident, now: int, applied_at: int) -> HealthSample | None:
        """The verdict at `now` on a fix applied at `applied_at` (ns)."""
        row = self.store.get("incidents", incident.id)
        if row is None:
            return None
        current = Incident.from_dict(row)
        backlogs = self.backlogs(current, now)
        pending = [b for b in backlogs if not b.drained]
        etas = [b.eta_s for b in pending]
        eta = None if not pending or None in etas else max(e for e in etas if e is not None)
        lines = [
            f"{b.service} {b.metric} {b.now:g} (before {b.before:g}, draining"
            f" {b.drain_per_s:.3g}/s)"
            for b in pending
        ]
        climbing = self.climbing(current, now, applied_at)
        if current.state in HEALTHY_STATES and not pending and not climbing:
            since = f" since {row['recovered_at']}" if row.get("recovered_at") else ""
            return HealthSample(now, True, f"Scout: incident {current.state}{since}", 0.0)
        blocking = self.blocking(current, {b.service for b in backlogs}) + climbing
        healthy = not blocking and not pending
        if healthy:
            detail = "only demand or async work time still abnormal; harm and backlog gone"
        else:
            detail = "; ".join([*blocking, *lines])
        return HealthSample(now, healthy, detail[:500], eta)

    def blocking(self, incident: Incident, backlogged: set[str]) -> list[str]:
        """The incident's active anomalies that are harm a fix must remove, described."""
        out = []
        for aid in incident.anomaly_ids:
            if self.store.get("anomalies", f"{aid}|cleared") is not None:
                continue
            raw = self.store.get("anomalies", aid)
            if raw is None:
                out.append(f"anomaly {aid} (not in the store)")
                continue
            a = Anomaly.from_dict(raw)
            kind = signal_class(a)
            if kind == "traffic" and a.observed > a.expected:
                continue  # a surge of demand
            if (
                kind == "latency"
                and a.service in backlogged
                and a.operation
                and span_kind(self.store, a.service, a.operation) == "consumer"
            ):
                continue  # async work: judged by its backlog
            out.append(f"{a.service} {a.operation or a.metric or a.cuj} {a.signal} abnormal")
        return out

    def climbing(self, incident: Incident, now: int, applied_at: int) -> list[str]:
        """Resources the incident saw trend to their limit that still climb: more headroom only
        moves a leak's exhaustion past Scout's horizon, so a fix is not judged until it levels.

        Still climbing means at `climb_share` or more of the pace they climbed at before the fix
        was applied: fresh containers warming up or load drifting up move a series too, an order
        of magnitude slower than the leak that opened the incident. The pace is read from the
        store each time, so a responder that restarts mid-verification judges as before.
        """
        trending: set[tuple[str, str]] = set()
        for aid in incident.anomaly_ids:
            raw = self.store.get("anomalies", aid)
            if raw is None or raw.get("detector") != "saturation_trend":
                continue
            trending.add((str(raw.get("service") or ""), str(raw.get("metric") or "")))
        if not trending:
            return []
        services, metrics = {s for s, _ in trending}, {m for _, m in trending}
        # Points up to the apply are the old version's alone; a rollout after it may restart
        # the containers, and the new ones' climb is what is judged, not the reference.
        before = metric_levels(
            self.store, services, metrics, applied_at - self.climb_ns, applied_at + 1
        )
        levels = metric_levels(self.store, services, metrics, now - self.climb_ns, now + 1)
        out = []
        for (service, metric), points in sorted(levels.items()):
            if (service, metric) not in trending:
                continue
            slope = _climb_since_restart(points)
            pace = _pace_before(before.get((service, metric), []))
            if slope is None:
                out.append(f"{service} {metric} restarted lately; judging once it settles")
            elif slope > 0 and slope >= self.climb_share * pace:
                out.append(f"{service} {metric} still climbing ({slope * 60:.3g}/min)")
        return out

    def backlogs(self, incident: Incident, now: int) -> list[Backlog]:
        """Backlog series of the incident's services: level before it, now, and drain rate."""
        before = self._before.get(incident.id)
        if before is None:
            start = incident.opened_at - self.baseline_ns
            levels = metric_levels(
                self.store, incident.services, self.backlog_metrics, start, incident.opened_at
            )
            before = {k: max(v for _, v in pts) for k, pts in levels.items() if pts}
            self._before[incident.id] = before
        recent = metric_levels(
            self.store, incident.services, self.backlog_metrics, now - self.rate_ns, now + 1
        )
        out = []
        for (service, metric), points in sorted(recent.items()):
            if not points:
                continue
            level = before.get((service, metric), 0.0)
            out.append(Backlog(service, metric, level, points[-1][1], drain_rate(points)))
        return out
