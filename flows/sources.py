"""Inputs of the flow as streams of polls: each item is the list of RawMessages one poll read.

The aggregator's cost is mostly per (service, operation, window) group, so the flow aggregates a
poll's messages together (`operators.signals.batches`) instead of one export request at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

from bytewax import operators as op
from bytewax.connectors.kafka import (
    KafkaError,
    KafkaSource,
    KafkaSourceMessage,
    _KafkaSourcePartition,
    _list_parts,
)
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    IsolationLevel,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from flows.tuning import keep_thread_state, release_thread_state
from operators.otlp.messages import RawMessage, Signal, dead_letter
from operators.otlp.recording import iter_recording
from sre_space.records import DeadLetter
from sre_space.settings import POLL_BYTES, Settings

log = logging.getLogger(__name__)

# librdkafka pauses fetching for `fetch.queue.backoff.ms` (1 s by default) whenever its queue passes
# its bound; 10 ms lets the queue stay small without stalling the flow. Each partition gets its own
# consumer and queue: they share `PREFETCH_KB` (at least `MIN_QUEUE_KB` each), as 64 MB per
# partition held 4 x 64 MB on one process reading 4 partitions (bench.scaleout: 873 MiB peak RSS;
# 468 shared). A consumer's fetch in flight comes on top of its queue, so it is at most half the
# queue (and `FETCH_BYTES`): 4 partitions, 2M spans, 528 -> 460 MiB, the same CPU; a larger message
# is still fetched whole (librdkafka grows the fetch for it).
#
# A flow that keeps up with its input polls whatever arrived since its last poll, often one
# request, and a poll's fixed cost (the window fold, the partials, the archive's conversion) is
# then most of its CPU. The broker holds each fetch until `FETCH_MIN_BYTES` have come or
# `FETCH_WAIT_MS` has passed, so a live flow reads a quarter second of traffic per poll
# (`bench.live`, 40 requests of 512 spans a second: 14.1 to 14.5 -> 4.6 to 4.8 CPU-s per 1M
# spans; 200 of 64: 43.3 -> 7.3); a backlog's fetches are full at once and never wait.
FETCH_MIN_BYTES = 2**20
FETCH_WAIT_MS = 250
CONSUMER_TUNING = {
    "fetch.queue.backoff.ms": "10",
    "fetch.min.bytes": str(FETCH_MIN_BYTES),
    "fetch.wait.max.ms": str(FETCH_WAIT_MS),
}
PREFETCH_KB = 131_072
MIN_QUEUE_KB = 16_384
FETCH_BYTES = 20 * 2**20
# A partition's start offset (`logical_start`); the broker answers in milliseconds.
OFFSETS_TIMEOUT_S = 5.0


def consumer_tuning(partitions: int) -> dict[str, str]:
    """The consumer settings for a flow that reads `partitions` partitions in all."""
    queue_kb = max(MIN_QUEUE_KB, PREFETCH_KB // max(partitions, 1))
    fetch = str(min(FETCH_BYTES, queue_kb * 1024 // 2))
    return {
        **CONSUMER_TUNING,
        "queued.max.messages.kbytes": str(queue_kb),
        "fetch.message.max.bytes": fetch,
        "max.partition.fetch.bytes": fetch,
    }


X = TypeVar("X")
S = TypeVar("S")
# What the Kafka source yields per message: the message, or a consumer error.
KafkaItem = KafkaSourceMessage[bytes | None, bytes | None] | KafkaError[bytes | None, bytes | None]
# After a poll that found nothing, the next waits IDLE_POLL, then twice as long after each
# further empty poll, up to IDLE_POLL_MAX. Bytewax asks again at once and its Kafka partition
# waits 1 ms per poll: an idle live flow burnt 4% of a core on empty polls. 20 ms apart, 4.3 to
# 4.6% (`bench.live`); backing off, 2.8 to 3.7%, the rest Bytewax's worker loop, which parks 1 ms
# at a time. Both waits are far below a window's length.
IDLE_POLL = timedelta(milliseconds=20)
IDLE_POLL_MAX = timedelta(milliseconds=320)


class PollBudget:
    """The bytes of polls one process's partitions share: a partition's next poll may take the
    budget less the other partitions' latest polls (what they hold now), and at least an equal
    share among those not idle. N partitions then hold about one budget of polls, not N."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._latest: dict[int, int] = {}  # each partition's latest poll, bytes
        self._lock = threading.Lock()  # a process's worker threads share it

    def join(self) -> int:
        """A new partition's key."""
        with self._lock:
            key = max(self._latest, default=-1) + 1
            self._latest[key] = 0
            return key

    def leave(self, key: int) -> None:
        with self._lock:
            self._latest.pop(key, None)

    def record(self, key: int, size: int) -> None:
        """Partition `key` polled `size` bytes (0: an empty poll)."""
        with self._lock:
            self._latest[key] = size

    def allowance(self, key: int) -> int:
        """The bytes partition `key`'s next poll may take."""
        with self._lock:
            others = [size for k, size in self._latest.items() if k != key]
            busy = 1 + sum(1 for size in others if size)
            return max(self.total // busy, self.total - sum(others))


class _PollPartition(StatefulSourcePartition[list[X], S], Generic[X, S]):
    """A partition whose every non-empty batch becomes one item (the list itself), of about its
    `budget` allowance at most when the inner partition polls a message count (Bytewax's Kafka
    one); after empty polls the next is `IDLE_POLL` later, doubled per empty poll up to
    `IDLE_POLL_MAX`."""

    def __init__(
        self, inner: StatefulSourcePartition[X, S], budget: PollBudget | None = None
    ) -> None:
        keep_thread_state()
        self._inner = inner
        self._budget = budget
        self._key = budget.join() if budget is not None else 0
        # Bytewax 0.21's Kafka partition reads `_batch_size` messages per poll (the version is
        # pinned; tests/flows/test_sources.py fails if the attribute goes).
        self._max_messages: int | None = getattr(inner, "_batch_size", None)
        self._mean_size = 0.0  # of the latest non-empty poll's messages
        if budget is not None and self._max_messages is not None:
            # The first poll reads one message, whose size sets the next poll's count: a first
            # poll of `_max_messages` took all the consumer had prefetched meanwhile, in every
            # partition at once (4 partitions: 250 MiB of polls and their columns at start).
            inner._batch_size = 1  # type: ignore[attr-defined]
        self._idle_until: datetime | None = None
        self._idle_wait = IDLE_POLL

    def next_batch(self) -> list[list[X]]:
        if self._budget is not None and self._max_messages is not None and self._mean_size:
            # This poll's count from the latest's mean message size (export requests range from
            # kB to tens of MB; a poll of 64 large ones per partition held GBs at once), and
            # from what the other partitions hold now.
            fits = int(self._budget.allowance(self._key) // self._mean_size)
            self._inner._batch_size = max(1, min(self._max_messages, fits))  # type: ignore[attr-defined]
        batch = list(self._inner.next_batch())
        if self._budget is not None:
            size = sum(len(getattr(m, "value", None) or b"") for m in batch)
            self._budget.record(self._key, size)
            if batch:
                self._mean_size = max(size / len(batch), 1.0)
        if not batch:
            self._idle_until = datetime.now(UTC) + self._idle_wait
            self._idle_wait = min(2 * self._idle_wait, IDLE_POLL_MAX)
            return []
        self._idle_until = None
        self._idle_wait = IDLE_POLL
        return [batch]

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake() or self._idle_until

    def snapshot(self) -> S:
        return self._inner.snapshot()

    def close(self) -> None:
        if self._budget is not None:
            self._budget.leave(self._key)
        self._inner.close()
        release_thread_state()


class PollSource(FixedPartitionedSource[list[X], S], Generic[X, S]):
    """`inner` with each poll (a partition's batch) as one item; the same parts and resume state.
    `max_bytes` bounds the polls of all the partitions this process reads together (about: by
    each partition's previous poll's mean message size; `PollBudget`)."""

    def __init__(self, inner: FixedPartitionedSource[X, S], max_bytes: int | None = None) -> None:
        self.inner = inner
        self._budget = PollBudget(max_bytes) if max_bytes is not None else None

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(
        self, step_id: str, for_part: str, resume_state: S | None
    ) -> _PollPartition[X, S]:
        return _PollPartition(self.inner.build_part(step_id, for_part, resume_state), self._budget)


class _RecordingPartition(StatefulSourcePartition[list[RawMessage], int]):
    def __init__(
        self, path: str, signal: Signal, resume: int | None, batch: int, max_bytes: int
    ) -> None:
        keep_thread_state()
        self._offset = resume or 0
        if resume:
            log.info("resuming %s at record %d", path, resume)
        self._it: Iterator[RawMessage] = iter_recording(path, signal, start_offset=self._offset)
        self._batch = batch
        self._max_bytes = max_bytes

    def next_batch(self) -> list[list[RawMessage]]:
        out = []
        size = 0
        for msg in self._it:
            out.append(msg)
            size += len(msg.value)
            if len(out) >= self._batch or size >= self._max_bytes:
                break
        if not out:
            raise StopIteration()
        self._offset = out[-1].offset + 1
        return [out]

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        release_thread_state()


class RecordingSource(FixedPartitionedSource[list[RawMessage], int]):
    """One partition per file, `batch` records per item and at most about `max_bytes` (as a
    Kafka poll: 64 records of 8192 rich spans as JSON were 1.3 GB at once); the resume state is
    the next record's index."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        signal: Signal = "auto",
        batch: int = 64,
        max_bytes: int = POLL_BYTES,
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.signal: Signal = signal
        self.batch = batch
        self.max_bytes = max_bytes

    def list_parts(self) -> list[str]:
        return self.paths

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _RecordingPartition:
        return _RecordingPartition(for_part, self.signal, resume_state, self.batch, self.max_bytes)


def recording_input(
    flow: Dataflow, paths: Sequence[str | Path]
) -> tuple[Stream[list[RawMessage]], None]:
    """Recorded files as the flow's input."""
    return op.input("recordings", flow, RecordingSource(paths)), None


@operator
def _kafka_polls(step_id: str, flow: Dataflow, source: PollSource[Any, Any]) -> Stream[Any]:
    # The same step ids as `bytewax.connectors.kafka.operators.input`, so recovery state written
    # before polls were items still resumes.
    return op.input("kafka_input", flow, source)


class _TunedKafkaSource(KafkaSource):
    """Bytewax's Kafka source whose partition listing leaves out the consumers' settings: its
    admin client logged a librdkafka CONFWARN for each consumer-only property at every start."""

    def list_parts(self) -> list[str]:
        # The same listing as Bytewax 0.21's (its private helper, so the same part names and
        # topic auto-creation); tests/flows/test_sources.py fails if the pinned version drops it.
        return list(_list_parts(self._admin, self._topics))

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _KafkaSourcePartition:
        # Bytewax's partition starts at `resume_state` when one is given (the pinned version;
        # tests/flows/test_sources.py fails if that goes).
        if resume_state is None and self._starting_offset in (OFFSET_BEGINNING, OFFSET_END):
            resume_state = logical_start(self._admin, for_part, self._starting_offset)
        return super().build_part(step_id, for_part, resume_state)

    @cached_property
    def _admin(self) -> AdminClient:
        # One client for the listing and every partition this process builds: one connection.
        return AdminClient({"bootstrap.servers": ",".join(self._brokers)})


def logical_start(admin: AdminClient, part: str, start: int) -> int | None:
    """The offset where the logical `start` (beginning or end) of partition `part` ("N-topic")
    is now; None when the broker does not answer (the consumer then resolves it itself).

    A consumer resolves a logical offset with the partition's leader, which a new consumer does
    not know yet at Bytewax's assignment: it retried 500 ms later, so every partition of a flow
    that had not resumed read nothing for its first half second. Started at a real offset, it
    fetches as soon as it learns the leader.
    """
    index, topic = part.split("-", 1)
    spec = OffsetSpec.earliest() if start == OFFSET_BEGINNING else OffsetSpec.latest()
    try:
        futures = admin.list_offsets(
            {TopicPartition(topic, int(index)): spec},
            request_timeout=OFFSETS_TIMEOUT_S,
            # The consumer's own (librdkafka's default): its end is the last stable offset.
            isolation_level=IsolationLevel.READ_COMMITTED,
        )
        (found,) = [future.result() for future in futures.values()]
    except KafkaException:
        return None
    return int(found.offset)


def kafka_source(
    settings: Settings, *, tail: bool = True, partitions: int = 1
) -> PollSource[KafkaItem, Any]:
    """The OTLP topics' partitions, one item per poll; `partitions` (of both topics) share the
    consumers' prefetch budget."""
    start = OFFSET_BEGINNING if settings.kafka_starting_offset == "beginning" else OFFSET_END
    return PollSource(
        _TunedKafkaSource(
            settings.kafka_bootstrap_servers.split(","),
            [settings.spans_topic, settings.metrics_topic],
            tail,
            start,
            {
                **consumer_tuning(partitions),
                # An offset gone by the time it is fetched (retention deleted it) restarts from
                # the end the flow starts from, not from librdkafka's default, the topic's end.
                "auto.offset.reset": "earliest" if start == OFFSET_BEGINNING else "latest",
            },
            # Small batches keep partitions interleaved, so the windows' clock (which waits for
            # the slowest partition) holds few windows open while a backlog is read.
            settings.kafka_batch_size,
            raise_on_errors=False,
        ),
        max_bytes=settings.kafka_poll_bytes,
    )


def kafka_input(
    flow: Dataflow, settings: Settings, *, tail: bool = True, partitions: int = 1
) -> tuple[Stream[list[RawMessage]], Stream[DeadLetter]]:
    """The OTLP topics as the flow's input (one item per poll, `kafka_source`), plus consumer
    errors as dead letters."""
    signals: dict[str, Signal] = {settings.spans_topic: "traces", settings.metrics_topic: "metrics"}
    source = kafka_source(settings, tail=tail, partitions=partitions)
    polls: Stream[list[KafkaItem]] = _kafka_polls("kafka_in", flow, source)

    def raw_of(items: list[KafkaItem]) -> list[RawMessage]:
        return [
            RawMessage(
                m.topic or "",
                m.partition or 0,
                m.offset or 0,
                m.value or b"",
                signals.get(m.topic or "", "auto"),
            )
            for m in items
            if isinstance(m, KafkaSourceMessage)
        ]

    def errors_of(items: list[KafkaItem]) -> list[DeadLetter]:
        return [
            dead_letter(
                RawMessage(
                    e.msg.topic or "", e.msg.partition or 0, e.msg.offset or 0, e.msg.value or b""
                ),
                f"kafka consumer error: {e.err}",
            )
            for e in items
            if isinstance(e, KafkaError)
        ]

    raw = op.filter("kafka_some", op.map("kafka_raw", polls, raw_of), bool)
    return raw, op.flat_map("kafka_errs", polls, errors_of)


def kafka_end_offsets(settings: Settings) -> Callable[[list[str]], dict[str, int] | None]:
    """A probe of the broker's end offsets for "topic:partition" names (for consumer lag)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer: list[Consumer] = []

    def probe(names: list[str]) -> dict[str, int] | None:
        if not consumer:
            consumer.append(
                Consumer(
                    {
                        "bootstrap.servers": settings.kafka_bootstrap_servers,
                        "group.id": "sre-space-lag-probe",
                        "enable.auto.commit": False,
                    }
                )
            )
        out: dict[str, int] = {}
        try:
            for name in names:
                topic, _, part = name.rpartition(":")
                _low, high = consumer[0].get_watermark_offsets(
                    TopicPartition(topic, int(part)), timeout=2.0
                )
                out[name] = int(high)
        except (KafkaException, ValueError):
            return None  # no answer this time: report no lag rather than a wrong one
        return out

    return probe


def kafka_partitions(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The input topics' partitions as "topic:N" sources, per topic (none for a topic the broker
    does not know yet: its windows then wait only for partitions they have heard from)."""
    from confluent_kafka import KafkaException

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    try:
        meta = admin.list_topics(timeout=10)
    except KafkaException:
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for topic in (settings.spans_topic, settings.metrics_topic):
        found = meta.topics.get(topic)
        if found is not None and found.error is None:
            out[topic] = tuple(f"{topic}:{p}" for p in sorted(found.partitions))
    return out


def create_topics(bootstrap: str, topics: Sequence[str], partitions: int = 1) -> None:
    """Create the topics that do not exist yet (the flow's source lists partitions at start)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    for future in futures.values():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
