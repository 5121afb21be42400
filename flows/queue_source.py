"""A Bytewax source fed by a thread: whatever another thread puts in a queue enters the flow.

The rig (`sre_space.harness.rig`, for `sre-space demo` and `sre-space drill` without a broker)
runs the simulated shop and the embedded dataflow on threads of their own; this is the seam
between them. `END` (None) in the queue ends the input.
"""

from __future__ import annotations

import queue
from datetime import UTC, datetime, timedelta

from bytewax.inputs import DynamicSource, StatelessSourcePartition

from operators.otlp.messages import RawMessage

END = None
_IDLE = timedelta(milliseconds=50)


class _Drain(StatelessSourcePartition[list[RawMessage]]):
    def __init__(self, q: queue.Queue[RawMessage | None], max_batch: int) -> None:
        self._q = q
        self._max = max_batch
        self._awake: datetime | None = None
        self._ended = False

    def next_batch(self) -> list[list[RawMessage]]:
        if self._ended:
            raise StopIteration()
        out: list[RawMessage] = []
        while len(out) < self._max:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is END:
                self._ended = True
                break
            out.append(item)
        # Nothing waiting: let Bytewax sleep a little instead of spinning.
        self._awake = None if out else datetime.now(UTC) + _IDLE
        # What was waiting is one item: the flow aggregates it as one poll.
        return [out] if out else []

    def next_awake(self) -> datetime | None:
        return self._awake


class QueueSource(DynamicSource[list[RawMessage]]):
    """Drains `q` on worker 0 until it yields `None`."""

    def __init__(self, q: queue.Queue[RawMessage | None], max_batch: int = 256) -> None:
        self.q = q
        self.max_batch = max_batch

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Drain:
        if worker_index != 0:
            empty: queue.Queue[RawMessage | None] = queue.Queue()
            empty.put(END)
            return _Drain(empty, self.max_batch)
        return _Drain(self.q, self.max_batch)
