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
