"""SRE-Space's own health as signals: dead letters per window, watermark delay, consumer lag.

Dead letters carry no event time of their own (they could not be decoded), so they are counted in
the window of the newest event time seen when they arrived. A live run also calls `heartbeat`
on the wall clock: when no data arrives at all the watermark delay keeps growing and is reported
anyway, so a blind pipeline shows up as a signal instead of as silence. Replays never call it,
so they stay deterministic.
"""

from __future__ import annotations

from typing import Any

from sre_space.records import SignalWindow
from sre_space.timeutil import NS_PER_S


class PipelineHealth:
    """Per-window counts of decoded requests and dead letters, plus live freshness."""

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.max_event_ns = 0
        self.window: int | None = None
        self.requests = 0
        self.deadletters = 0
        # "topic:partition" -> the last offset read: consumer lag is the broker's end minus this
        self.positions: dict[str, int] = {}

    def on_decoded(
        self, max_event_ns: int, source: str = "", offset: int = -1
    ) -> list[SignalWindow]:
        """A request decoded, its newest event time; returns the windows this closed."""
        out = self._advance(max_event_ns)
        self.requests += 1
        self._seen(source, offset)
        return out

    def on_dead(self, source: str = "", offset: int = -1) -> list[SignalWindow]:
        """A dead letter, counted in the current window."""
        self.deadletters += 1
        self._seen(source, offset)
        return []

    def lag(self, end_offsets: dict[str, int]) -> int:
        """Records not yet read, given each partition's end offset (the next offset to write)."""
        return sum(max(0, end - self.positions.get(tp, -1) - 1) for tp, end in end_offsets.items())

    def _seen(self, source: str, offset: int) -> None:
        if source and offset >= 0:
            self.positions[source] = max(self.positions.get(source, -1), offset)

    def flush(self) -> list[SignalWindow]:
        """Close the current window (end of input)."""
        return self._emit()

    def heartbeat(self, now_ns: int, consumer_lag: int | None = None) -> list[SignalWindow]:
        """Live freshness at wall-clock `now_ns`: watermark delay and (Kafka) consumer lag."""
        window = now_ns // self.window_ns
        start, end = (
            window * self.window_ns,
            (window + 1) * self.window_ns,
        )
        # No data yet counts as infinitely stale only once something was seen; before that the
        # pipeline is merely starting.
        delay = (now_ns - self.max_event_ns) / NS_PER_S if self.max_event_ns else 0.0
        out = [
            SignalWindow(
                kind="pipeline",
                metric="watermark_delay_s",
                window_start=start,
                window_end=end,
                count=1,
                value=round(max(delay, 0.0), 3),
            )
        ]
        if consumer_lag is not None:
            out.append(
                SignalWindow(
                    kind="pipeline",
                    metric="consumer_lag",
                    window_start=start,
                    window_end=end,
                    count=1,
                    value=float(consumer_lag),
                )
            )
        return out

    def _advance(self, event_ns: int) -> list[SignalWindow]:
        window = event_ns // self.window_ns
        out: list[SignalWindow] = []
        if self.window is None:
            self.window = window
        elif window > self.window:
            out = self._emit()
            self.window = window
        self.max_event_ns = max(self.max_event_ns, event_ns)
        return out

    def _emit(self) -> list[SignalWindow]:
        if self.window is None or (self.requests == 0 and self.deadletters == 0):
            return []
        start = self.window * self.window_ns
        total = self.requests + self.deadletters
        sig = SignalWindow(
            kind="pipeline",
            metric="deadletters",
            window_start=start,
            window_end=start + self.window_ns,
            count=total,
            errors=self.deadletters,
            error_rate=round(self.deadletters / total, 6),
            value=float(self.deadletters),
        )
        self.requests = self.deadletters = 0
        return [sig]

    def snapshot(self) -> dict[str, Any]:
        """Plain data for Bytewax recovery."""
        return {
            "window_ns": self.window_ns,
            "max_event_ns": self.max_event_ns,
            "window": self.window,
            "requests": self.requests,
            "deadletters": self.deadletters,
            "positions": dict(self.positions),
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> PipelineHealth:
        """Rebuild from `snapshot()`."""
        out = cls(data["window_ns"])
        out.max_event_ns = data["max_event_ns"]
        out.window = data["window"]
        out.requests = data["requests"]
        out.deadletters = data["deadletters"]
        out.positions = dict(data.get("positions", {}))
        return out
