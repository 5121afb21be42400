"""The pipeline's own health in the dataflow: one stateful step over every request and dead letter.

Replays count dead letters per event-time window only. Live runs also wake on the wall clock every
window to report watermark delay and, over Kafka, consumer lag (probed from the broker here, in the
wiring layer, so the logic in `operators.signals.pipeline` stays free of I/O).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax import operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulLogic

from operators.otlp.messages import Decoded
from operators.signals.pipeline import PipelineHealth
from sre_space.records import DeadLetter, SignalWindow

# Returns each consumed "topic:partition"'s end offset, or None when the broker cannot be asked.
EndOffsets = Callable[[list[str]], dict[str, int] | None]
HEALTH_KEY = "pipeline"


def _max_event_ns(decoded: Decoded) -> int:
    if decoded.span_count():
        return decoded.end_range()[1]
    if decoded.metrics is not None and len(decoded.metrics):
        return max(decoded.metrics.ts_ns)
    return 0


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """What the health step needs of a request or dead letter: small, so cheap to route."""

    dead: bool
    where: str
    offset: int
    event_ns: int = 0


def health_event(item: Decoded | DeadLetter) -> HealthEvent:
    """Reduce a decoded request or a dead letter to its health event (batches never travel)."""
    if isinstance(item, DeadLetter):
        return HealthEvent(True, f"{item.source}:{item.partition}", item.offset)
    return HealthEvent(False, f"{item.source}:{item.partition}", item.offset, _max_event_ns(item))


class _HealthLogic(StatefulLogic[HealthEvent, SignalWindow, dict[str, Any]]):
    def __init__(self, health: PipelineHealth, live: bool, end_offsets: EndOffsets | None) -> None:
        self.health = health
        self.live = live
        self.end_offsets = end_offsets

    def on_item(self, value: HealthEvent) -> tuple[Iterable[SignalWindow], bool]:
        if value.dead:
            return self.health.on_dead(value.where, value.offset), StatefulLogic.RETAIN
        if not value.event_ns:
            return [], StatefulLogic.RETAIN
        return (
            self.health.on_decoded(value.event_ns, value.where, value.offset),
            StatefulLogic.RETAIN,
        )

    def on_notify(self) -> tuple[Iterable[SignalWindow], bool]:
        lag = None
        if self.end_offsets is not None and self.health.positions:
            ends = self.end_offsets(sorted(self.health.positions))
            lag = None if ends is None else self.health.lag(ends)
        now_ns = int(datetime.now(UTC).timestamp() * 1e9)
        return self.health.heartbeat(now_ns, lag), StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[SignalWindow], bool]:
        return self.health.flush(), StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if not self.live:
            return None
        return datetime.now(UTC) + timedelta(seconds=self.health.window_ns / 1e9)

    def snapshot(self) -> dict[str, Any]:
        return self.health.snapshot()


def build_health(
    decoded: Stream[Decoded],
    dead: Stream[DeadLetter],
    window_ns: int,
    *,
    live: bool,
    end_offsets: EndOffsets | None = None,
    awaited: tuple[str, ...] = (),
) -> Stream[SignalWindow]:
    """Pipeline signals (`kind="pipeline"`) from the decoded and dead-letter streams; `awaited`
    names topics whose windows wait for each other."""

    def builder(resume: dict[str, Any] | None) -> _HealthLogic:
        health = (
            PipelineHealth(window_ns, awaited=awaited)
            if resume is None
            else PipelineHealth.from_snapshot(resume, awaited=awaited)
        )
        return _HealthLogic(health, live, end_offsets)

    items = op.map("health_events", op.merge("health_in", decoded, dead), health_event)
    keyed = op.key_on("health_key", items, lambda _item: HEALTH_KEY)
    return op.map("health_unkey", op.stateful("health", keyed, builder), lambda kv: kv[1])
