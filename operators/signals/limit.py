"""A cap on metric series per service: a cardinality explosion is a pipeline signal, not an OOM.

Every admitted series costs a window and a detector downstream. A service that starts putting a
request id in a point attribute would create a series per request; past `max_series` the new
series' points are counted in the service's `metric_series_overflow` pipeline signal instead
(nothing is lost: every point is in some signal's count). A series unseen for `idle_ns` of event
time gives its place back, so pods that come and go over days do not exhaust the cap.
"""

from __future__ import annotations

from operators.signals.aggregate import SERIES_OVERFLOW
from operators.signals.partials import MetricPartial, Partial


class SeriesLimit:
    """The metric series admitted for one service (use one per service key)."""

    def __init__(self, max_series: int, idle_ns: int, window_ns: int) -> None:
        self.max_series = max_series
        self.idle_ns = idle_ns
        self.window_ns = window_ns
        self.seen: dict[str, int] = {}  # series key -> newest event time seen (ns)
        self.swept_ns = 0

    def admit(self, part: Partial) -> list[Partial]:
        """The partial itself when its series is admitted, else its overflow count."""
        if not isinstance(part, MetricPartial) or part.saturation or part.pipeline:
            return [part]  # bounded by the config, or already a count
        key, ts = part.key, part.max_ts_ns
        known = self.seen.get(key)
        if known is not None or self._room(ts):
            self.seen[key] = ts if known is None else max(known, ts)
            return [part]
        over = MetricPartial(
            part.service, SERIES_OVERFLOW, part.window, ts, "", False, pipeline=True
        )
        over.count(ts, part.n)
        return [over]

    def _room(self, ts: int) -> bool:
        if len(self.seen) < self.max_series:
            return True
        # Full: forget idle series, at most once per window so an explosion stays linear.
        if ts - self.swept_ns >= self.window_ns:
            self.swept_ns = ts
            cutoff = ts - self.idle_ns
            self.seen = {k: t for k, t in self.seen.items() if t >= cutoff}
        return len(self.seen) < self.max_series
