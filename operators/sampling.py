"""Which spans the archive keeps: whole traces, chosen by trace id, by an error or by a slow span.

A trace is kept when its id falls in the sampled share (decided by the id's random bytes, so
every service and every batch agrees), or when any of its spans fails or is slow. Spans of one
trace arrive in different export requests, so `TraceSampler` holds each batch for a short
event-time wait before deciding: an error seen later in the wait still keeps the earlier spans.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from operators.otlp.spans import SpanBatch

Item = TypeVar("Item")
Mask = npt.NDArray[np.bool_]
Keys = npt.NDArray[np.uint64]


def trace_keys(batch: SpanBatch) -> Keys:
    """The trace id's last 8 bytes as a number: random by W3C trace-context, so a uniform key."""
    packed = batch.packed_ids
    joined = packed.trace if packed is not None else b"".join(batch.trace_id)
    if len(joined) != 16 * len(batch):
        joined = b"".join(t[-8:].rjust(16, b"\0") for t in batch.trace_id)
    return np.frombuffer(joined, dtype=">u8")[1::2].astype(np.uint64)


def sampled(keys: Keys, rate: float) -> Mask:
    """The deterministic share `rate` of trace keys."""
    if rate >= 1.0:
        return np.ones(len(keys), dtype=bool)
    return keys < np.uint64(int(rate * 2**64 - 1))


def notable(batch: SpanBatch, tail_quantile: float = 0.95) -> Mask:
    """Spans that keep their trace: failing ones and the batch's slow tail."""
    dur = batch.duration_ns
    if len(dur) == 0:
        return np.zeros(0, dtype=bool)
    return batch.is_error | (dur >= np.quantile(dur, tail_quantile))


def keep_mask(batch: SpanBatch, rate: float, tail_quantile: float = 0.95) -> Mask:
    """Within one batch: spans of sampled traces and of traces with a notable span here."""
    n = len(batch)
    if n == 0 or rate >= 1.0:
        return np.ones(n, dtype=bool)
    keys = trace_keys(batch)
    hot = np.isin(keys, keys[notable(batch, tail_quantile)])
    return sampled(keys, rate) | hot


@dataclass(frozen=True, slots=True)
class TailPolicy:
    """How long (event time) a batch waits for its traces' errors, and the memory bound."""

    rate: float
    wait_ns: int = 30 * 10**9
    max_pending_spans: int = 500_000


@dataclass(slots=True)
class _Pending(Generic[Item]):
    item: Item
    keys: Keys
    time_ns: int


class TraceSampler(Generic[Item]):
    """Decides batches whole-trace: `offer` a batch, get back the batches whose wait is over."""

    def __init__(self, policy: TailPolicy) -> None:
        self.policy = policy
        self._pending: deque[_Pending[Item]] = deque()
        self._pending_spans = 0
        # keys of traces with a notable span, one chunk per batch, kept for twice the wait so
        # that late spans of a notable trace are still kept
        self._hot: deque[tuple[int, Keys]] = deque()
        self._now_ns = 0

    def offer(
        self, item: Item, keys: Keys, notable: Mask, end_ns: npt.NDArray[np.int64]
    ) -> list[tuple[Item, Mask]]:
        """Hold `item` (spans with these trace keys); returns decided items with their keep mask."""
        if self.policy.rate >= 1.0:
            return [(item, np.ones(len(keys), dtype=bool))]
        if len(keys) == 0:
            return []
        # The median, not the newest span: one span from a skewed clock must not decide the rest.
        time_ns = int(np.median(end_ns))
        self._now_ns = max(self._now_ns, time_ns)
        if notable.any():
            self._hot.append((time_ns, np.unique(keys[notable])))
        self._pending.append(_Pending(item, keys, time_ns))
        self._pending_spans += len(keys)
        return self._release(self._now_ns - self.policy.wait_ns)

    def drain(self) -> list[tuple[Item, Mask]]:
        """Decide every held batch now (at the end of the input)."""
        return self._release(None)

    def _release(self, before_ns: int | None) -> list[tuple[Item, Mask]]:
        out: list[tuple[Item, Mask]] = []
        hot: Keys | None = None
        while self._pending and (
            before_ns is None
            or self._pending[0].time_ns <= before_ns
            or self._pending_spans > self.policy.max_pending_spans
        ):
            head = self._pending.popleft()
            self._pending_spans -= len(head.keys)
            if hot is None:
                hot = self._hot_keys()
            keep = sampled(head.keys, self.policy.rate) | np.isin(head.keys, hot)
            out.append((head.item, keep))
        return out

    def _hot_keys(self) -> Keys:
        forget = self._now_ns - 2 * self.policy.wait_ns
        while self._hot and self._hot[0][0] < forget:
            self._hot.popleft()
        if not self._hot:
            return np.empty(0, dtype=np.uint64)
        return np.concatenate([keys for _, keys in self._hot])
