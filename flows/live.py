"""A paced in-process source: any event-ordered generator of export requests, played against the
wall clock at a chosen speed-up (1 = real time, 60 = a simulated minute per second).

The demo and the fire drills feed the simulated shop through it, so the same flow that reads Kafka
runs embedded, with event time still coming from the data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from bytewax.inputs import DynamicSource, StatelessSourcePartition

from operators.otlp.messages import RawMessage, Signal

# (event time ns, signal, serialized export request); must come in event-time order
Emission = tuple[int, Signal, bytes]


class _Paced(StatelessSourcePartition[RawMessage]):
    def __init__(
        self,
        emissions: Iterator[Emission],
        speed: float,
        source: str,
        max_batch: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._it = emissions
        self._speed = speed
        self._source = source
        self._max_batch = max_batch
        self._offset = 0
        self._t0_wall: float | None = None
        self._t0_event: int | None = None
        self._pending: Emission | None = None
        self._awake: datetime | None = None

    def _due(self, event_ns: int) -> float:
        """Wall-clock seconds until the emission at `event_ns` is due."""
        assert self._t0_wall is not None and self._t0_event is not None
        target = self._t0_wall + (event_ns - self._t0_event) / 1e9 / self._speed
        return target - self._clock()

    def next_batch(self) -> list[RawMessage]:
        out: list[RawMessage] = []
        self._awake = None
        while len(out) < self._max_batch:
            item = self._pending if self._pending is not None else next(self._it, None)
            self._pending = None
            if item is None:
                if not out:
                    raise StopIteration()
                break
            event_ns, signal, value = item
            if self._t0_wall is None:
                self._t0_wall, self._t0_event = self._clock(), event_ns
            wait = self._due(event_ns)
            if wait > 0:
                self._pending = item
                self._awake = datetime.now(UTC) + timedelta(seconds=wait)
                break
            out.append(RawMessage(self._source, 0, self._offset, value, signal))
            self._offset += 1
        return out

    def next_awake(self) -> datetime | None:
        return self._awake


class PacedSource(DynamicSource[RawMessage]):
    """Plays `make_emissions()` on worker 0 at `speed` times real time (0 or less: flat out)."""

    def __init__(
        self,
        make_emissions: Callable[[], Iterator[Emission]],
        speed: float = 1.0,
        source: str = "live",
        max_batch: int = 64,
    ) -> None:
        self.make_emissions = make_emissions
        self.speed = speed if speed > 0 else float("inf")
        self.source = source
        self.max_batch = max_batch

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Paced:
        emissions = self.make_emissions() if worker_index == 0 else iter(())
        return _Paced(emissions, self.speed, self.source, self.max_batch)
