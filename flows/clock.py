"""The windows' event-time clock: a key's watermark follows the slowest input partition it hears.

Bytewax's `EventClock` keeps one watermark per key: the newest timestamp seen minus the lateness.
Over several Kafka partitions read side by side, one partition's poll moves that watermark past
what the others have not yet delivered, and their spans count as late (70% of them, catching up
a 4-partition backlog). Here each item carries its source ("topic:partition"); the watermark is
the slowest source's newest timestamp, as in Flink or Kafka Streams, with two bounds so that a
source that stops sending a key cannot hold it: never more than `max_skew` behind the newest
source, and in a live run the wall clock moves it on as `EventClock` does. Sources `awaited` (a
Kafka topic's partitions) count before they deliver, so the first poll of one partition cannot
make the others late. With one source this is `EventClock`, step for step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from bytewax.operators.windowing import Clock, ClockLogic

from sre_space.timeutil import ns_to_datetime

V = TypeVar("V")
UTC_MIN = datetime.min.replace(tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class AlignedClockState:
    """Per key: the newest event time per source, the watermark and when (system time) it moved."""

    newest: dict[str, int] = field(default_factory=dict)
    watermark_base: datetime = UTC_MIN
    system_time_of_base: datetime = UTC_MIN


@dataclass
class _AlignedLogic(ClockLogic[tuple[str, V], AlignedClockState], Generic[V]):
    clock: AlignedClock[V]
    state: AlignedClockState
    _system_now: datetime = UTC_MIN
    _started: float = 0.0

    def __post_init__(self) -> None:
        self._system_now = self.clock.now()
        if self.state.system_time_of_base <= UTC_MIN:
            self.state.system_time_of_base = self._system_now
        self._started = time.monotonic()

    def before_batch(self) -> None:
        # As EventClock: the system clock never goes back.
        self._system_now = max(self._system_now, self.clock.now())

    def on_item(self, value: tuple[str, V]) -> tuple[datetime, datetime]:
        source, item = value
        ts_ns = self.clock.ts_ns(item)
        newest = self.state.newest
        if ts_ns > newest.get(source, -1):
            newest[source] = ts_ns
        watermark = self._watermark()
        base = ns_to_datetime(self._aligned(source)) - self.clock.wait
        if base > watermark:
            self.state.watermark_base = base
            self.state.system_time_of_base = self._system_now
            watermark = base
        return ns_to_datetime(ts_ns), watermark

    def _aligned(self, source: str) -> int:
        """The slowest source's newest event time, at least `max_skew` behind the newest."""
        newest = self.state.newest
        lead = max(newest.values())
        slowest = min(newest.values())
        awaited = self.clock.awaited.get(source.rpartition(":")[0], ())
        if awaited and not self._startup_over():
            slowest = min(slowest, *(newest.get(s, 0) for s in awaited))
        return max(slowest, lead - self.clock.max_skew_ns)

    def _startup_over(self) -> bool:
        # Live, a partition that never sends this key must not hold it for `max_skew`: it is
        # awaited only for as long as a window waits for late data.
        return (
            not self.clock.deterministic
            and time.monotonic() - self._started > self.clock.wait.total_seconds()
        )

    def _watermark(self) -> datetime:
        return self.state.watermark_base + (self._system_now - self.state.system_time_of_base)

    def on_notify(self) -> datetime:
        self.before_batch()
        return self._watermark()

    def on_eof(self) -> datetime:
        return datetime.max.replace(tzinfo=UTC)

    def to_system_utc(self, timestamp: datetime) -> datetime | None:
        """When the wall clock moves the watermark to `timestamp` (as `_watermark` does), so the
        runtime wakes the key then; None when deterministic or before any watermark."""
        if self.clock.deterministic or self.state.watermark_base <= UTC_MIN:
            return None
        # Not `timestamp` itself (EventClock's default): a backlog's windows end in the past, so
        # every key with one open woke on every activation, and a worker waiting for another
        # process's data spun through them instead of sleeping.
        return self.state.system_time_of_base + (timestamp - self.state.watermark_base)

    def snapshot(self) -> AlignedClockState:
        return AlignedClockState(
            dict(self.state.newest), self.state.watermark_base, self.state.system_time_of_base
        )


@dataclass
class AlignedClock(Clock[tuple[str, V], AlignedClockState], Generic[V]):
    """Event time from `(source, item)` pairs; the watermark waits for the slowest source.

    `ts_ns` gives an item's event time in ns; `awaited` maps a topic to the sources ("topic:N")
    that count before they deliver. `deterministic` keeps the system clock out entirely (replays
    and backtests: same input, same output); otherwise it moves the watermark as in `EventClock`.
    """

    ts_ns: Callable[[V], int]
    wait: timedelta
    max_skew_ns: int
    awaited: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    deterministic: bool = False

    def now(self) -> datetime:
        """The system time that moves a live watermark (frozen when deterministic)."""
        return EPOCH if self.deterministic else datetime.now(UTC)

    def build(self, resume_state: Any) -> _AlignedLogic[V]:
        if isinstance(resume_state, AlignedClockState):
            state = resume_state
        elif resume_state is not None:  # an EventClock's, from a snapshot before this clock
            state = AlignedClockState(
                {}, resume_state.watermark_base, resume_state.system_time_of_max_event
            )
        else:
            state = AlignedClockState()
        return _AlignedLogic(self, state)
