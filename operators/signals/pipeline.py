"""SRE-Space's own health as signals: dead letters per window, watermark delay, consumer lag.

A request is counted in the window of its newest event time. Dead letters carry no event time of
their own (they could not be decoded), so they are counted in the window of the newest event time
their topic had reached. A window is emitted once every `awaited` topic has moved past it (a
`SRE_DETERMINISTIC_CLOCK` run over Kafka: the figures do not depend on how the topics' polls
interleaved), else once the newest data has. A live run also calls `heartbeat`
on the wall clock: when no data arrives at all the watermark delay keeps growing and is reported
anyway, so a blind pipeline shows up as a signal instead of as silence. Replays never call it,
so they stay deterministic.
"""

from __future__ import annotations

from typing import Any

from operators.signals.progress import Progress
from sre_space.records import SignalWindow
from sre_space.timeutil import NS_PER_S


class PipelineHealth:
    """Per-window counts of decoded requests and dead letters, plus live freshness."""

    def __init__(self, window_ns: int, *, awaited: tuple[str, ...] = ()) -> None:
        """`awaited`: topics whose windows wait for each other (their first data included)."""
        self.window_ns = window_ns
        # per topic (a recording: per file), the newest event time its requests carried
        self.progress = Progress(awaited)
        # window -> [requests, dead letters], for windows not yet emitted
        self.open: dict[int, list[int]] = {}
        # the newest window emitted; later arrivals for it or before count in the next one
        self.emitted: int | None = None
        # "topic:partition" -> the last offset read: consumer lag is the broker's end minus this
        self.positions: dict[str, int] = {}

    def on_decoded(
        self, max_event_ns: int, source: str = "", offset: int = -1
    ) -> list[SignalWindow]:
        """A request decoded, its newest event time; returns the windows this closed."""
        self.progress.see(_topic(source), max_event_ns)
        self._count(max_event_ns // self.window_ns, 0)
        self._seen(source, offset)
        reached = self.progress.reached()
        assert reached is not None  # just seen
        return self._emit_before(reached // self.window_ns)

    def on_dead(self, source: str = "", offset: int = -1) -> list[SignalWindow]:
        """A dead letter, counted in the window of its topic's newest event time."""
        at = self.progress.newest.get(_topic(source), self.max_event_ns)
        self._count(at // self.window_ns if at else None, 1)
        self._seen(source, offset)
        return []

    @property
    def max_event_ns(self) -> int:
        """The newest event time any request carried (0 before any)."""
        return max(self.progress.newest.values(), default=0)

    def _count(self, window: int | None, dead: int) -> None:
        # No event time yet, or a window already emitted: the oldest window still open.
        if window is None or (self.emitted is not None and window <= self.emitted):
            placed = [k for k in self.open if k >= 0]
            window = min(placed) if placed else (None if self.emitted is None else self.emitted + 1)
        self.open.setdefault(-1 if window is None else window, [0, 0])[dead] += 1

    def lag(self, end_offsets: dict[str, int]) -> int:
        """Records not yet read, given each partition's end offset (the next offset to write)."""
        return sum(max(0, end - self.positions.get(tp, -1) - 1) for tp, end in end_offsets.items())

    def _seen(self, source: str, offset: int) -> None:
        if source and offset >= 0:
            self.positions[source] = max(self.positions.get(source, -1), offset)

    def flush(self) -> list[SignalWindow]:
        """Close every open window (end of input)."""
        return self._emit_before(None)

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

    def _emit_before(self, window: int | None) -> list[SignalWindow]:
        """The open windows before `window` (all if None), in order."""
        unplaced = self.open.pop(-1, None)
        if unplaced is not None:
            # dead letters before any event time: they join the first window seen
            first = min(self.open, default=None)
            if first is None:
                self.open[-1] = unplaced
            else:
                self.open[first] = [a + b for a, b in zip(self.open[first], unplaced, strict=True)]
        out: list[SignalWindow] = []
        for w in sorted(k for k in self.open if k >= 0 and (window is None or k < window)):
            requests, dead = self.open.pop(w)
            start = w * self.window_ns
            total = requests + dead
            out.append(
                SignalWindow(
                    kind="pipeline",
                    metric="deadletters",
                    window_start=start,
                    window_end=start + self.window_ns,
                    count=total,
                    errors=dead,
                    error_rate=round(dead / total, 6),
                    value=float(dead),
                )
            )
            self.emitted = w
        return out

    def snapshot(self) -> dict[str, Any]:
        """Plain data for Bytewax recovery."""
        return {
            "window_ns": self.window_ns,
            "newest": self.progress.snapshot(),
            "open": [[w, *c] for w, c in sorted(self.open.items())],
            "emitted": self.emitted,
            "positions": dict(self.positions),
        }

    @classmethod
    def from_snapshot(
        cls, data: dict[str, Any], *, awaited: tuple[str, ...] = ()
    ) -> PipelineHealth:
        """Rebuild from `snapshot()` (or from one of the single-window layout before it)."""
        out = cls(data["window_ns"], awaited=awaited)
        out.positions = dict(data.get("positions", {}))
        if "open" in data:
            out.progress.restore(data["newest"])
            out.open = {w: [r, d] for w, r, d in data["open"]}
            out.emitted = data["emitted"]
        elif data.get("window") is not None:
            out.progress.restore({"": data["max_event_ns"]})
            out.open = {data["window"]: [data["requests"], data["deadletters"]]}
            out.emitted = data["window"] - 1
        return out


def _topic(source: str) -> str:
    """ "topic:partition" -> topic: partitions of a topic are read alike, topics are not."""
    return source.rsplit(":", 1)[0]
