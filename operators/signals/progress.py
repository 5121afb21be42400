"""How far event time has got over inputs read at different paces (topics, kinds of signal).

Over Kafka each topic is read in polls of up to `kafka_batch_size` messages, and a poll of metric
exports every 10 s covers ten minutes where one of span exports every second covers one. What is
complete is decided by the slowest input (a low watermark, as in Flink or Timely), so in a replay
the verdicts do not depend on how the polls interleaved. An input that was declared but is silent,
or one that lags by more than `IDLE_NS`, stops holding the others back (Flink's idleness): a
system that sends no metrics is still judged, an hour of event time later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sre_space.timeutil import NS_PER_S

IDLE_NS = 3600 * NS_PER_S
# Lags beyond this are left to be stragglers: a key replaying an old backlog must not hold every
# verdict back for hours.
MAX_DISORDER_NS = 30 * 60 * NS_PER_S
# Disorder forgets by the event-time hour: its lag is the largest of this hour's and the last's.
DISORDER_BUCKET_NS = 3600 * NS_PER_S


@dataclass(slots=True)
class Progress:
    """The newest event time per input; `reached` is the slowest of the `awaited` inputs and any
    other seen, or with nothing awaited (one ordered input, or a live run) the newest."""

    awaited: tuple[str, ...] = ()
    newest: dict[str, int] = field(default_factory=dict)

    def see(self, source: str, event_ns: int) -> None:
        """`source` delivered data up to `event_ns`."""
        self.newest[source] = max(self.newest.get(source, 0), event_ns)

    def reached(self) -> int | None:
        """The event time every input has got to (None before any data)."""
        if not self.newest:
            return None
        leader = max(self.newest.values())
        if not self.awaited:
            return leader
        slowest = min([self.newest.get(s, 0) for s in self.awaited] + list(self.newest.values()))
        return max(slowest, leader - IDLE_NS)

    def snapshot(self) -> dict[str, int]:
        """Plain data for Bytewax recovery (what is awaited comes from the flow, not from here)."""
        return dict(self.newest)

    def restore(self, newest: dict[str, Any]) -> None:
        """Take back `snapshot()`."""
        self.newest = {str(k): int(v) for k, v in newest.items()}


@dataclass(slots=True)
class Disorder:
    """How far behind the newest event time closed windows still arrive, the largest lag over the
    last one to two hours of event time (capped at `MAX_DISORDER_NS`).

    Bytewax closes each key's windows when that key's own data moves on, and emits one poll's
    windows key by key: a poll of 64 metric exports, each holding every pod at one 10 s step,
    delivers the first pod's 64 windows before the second pod's first. Waiting this lag before
    judging a window keeps the later pods from arriving as stragglers (and looking gone).
    """

    hour: int = 0  # the event-time hour `current` covers
    current: int = 0  # the largest lag seen in that hour
    previous: int = 0  # the same for the hour before it

    def see(self, newest_ns: int, end_ns: int) -> None:
        """A window ending at `end_ns` arrived when the stream had reached `newest_ns`."""
        hour = newest_ns // DISORDER_BUCKET_NS
        if hour > self.hour:
            self.previous = self.current if hour == self.hour + 1 else 0
            self.hour, self.current = hour, 0
        lag = newest_ns - end_ns
        if 0 < lag <= MAX_DISORDER_NS:
            self.current = max(self.current, lag)

    @property
    def lag_ns(self) -> int:
        """The lag to wait for."""
        return max(self.current, self.previous)

    def snapshot(self) -> list[int]:
        """Plain data for Bytewax recovery."""
        return [self.hour, self.current, self.previous]

    @classmethod
    def restore(cls, data: list[Any] | None) -> Disorder:
        """Take back `snapshot()` (a snapshot without it starts afresh)."""
        return cls(*(int(v) for v in data)) if data else cls()
