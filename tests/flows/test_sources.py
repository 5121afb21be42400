"""The sources' polls: one item per poll, of about `kafka_poll_bytes` (or `max_bytes`) at most."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from bytewax.connectors.kafka import KafkaSource
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaException, Producer, TopicPartition

import flows.sources
from flows.sources import (
    FETCH_BYTES,
    FETCH_WAIT_MS,
    IDLE_POLL,
    IDLE_POLL_MAX,
    MIN_QUEUE_KB,
    PREFETCH_KB,
    PollBudget,
    PollSource,
    RecordingSource,
    _PollPartition,
    _TunedKafkaSource,
    consumer_tuning,
    kafka_source,
    logical_start,
)
from sre_space.settings import Settings


@dataclass
class _Msg:
    value: bytes


class _Partition:
    """Hands out messages of given sizes, `_batch_size` per poll, as Bytewax's Kafka one does."""

    def __init__(self, sizes: list[int], batch_size: int) -> None:
        self.sizes = sizes
        self._batch_size = batch_size

    def next_batch(self) -> list[_Msg]:
        batch, self.sizes = self.sizes[: self._batch_size], self.sizes[self._batch_size :]
        return [_Msg(b"x" * n) for n in batch]

    def next_awake(self) -> datetime | None:
        return None  # as Bytewax's Kafka partition: poll again at once

    def close(self) -> None:
        pass


def test_polls_of_large_messages_shrink_to_the_byte_budget_and_grow_back() -> None:
    inner = _Partition([1000] * 9 + [100_000] * 20 + [1000] * 40, batch_size=8)
    polls: _PollPartition[Any, Any] = _PollPartition(inner, PollBudget(250_000))  # type: ignore[arg-type]
    sizes = [[len(m.value) for m in poll] for _ in range(11) for poll in polls.next_batch()]
    # One message first (its size unknown, a full count could be any size), then as many as fit.
    assert [len(p) for p in sizes] == [1, 8, 8, 2, 2, 2, 2, 2, 2, 2, 8]
    # The first large poll is over budget (the count came from small messages); the rest fit.
    assert all(sum(p) <= 250_000 for p in sizes[3:])
    assert sizes[-1] == [1000] * 8


def test_partitions_of_one_process_share_its_budget() -> None:
    budget = PollBudget(400_000)
    parts = [_Partition([10_000] * 400, batch_size=64) for _ in range(4)]
    polls: list[_PollPartition[Any, Any]] = [_PollPartition(p, budget) for p in parts]  # type: ignore[arg-type]

    def one_round(some: list[_PollPartition[Any, Any]]) -> list[int]:
        return [sum(len(m.value) for m in p.next_batch()[0]) for p in some]

    assert one_round(polls) == [10_000] * 4  # a message each first: its size unknown
    # The first to poll again takes what the others do not hold; then each comes to its share.
    assert one_round(polls) == [370_000, 100_000, 100_000, 100_000]
    assert one_round(polls) == [100_000] * 4
    # An idle partition's share goes to the busy ones; a closed one leaves the budget.
    parts[3].sizes = []
    assert polls[3].next_batch() == []
    assert one_round(polls[:3]) == [200_000, 130_000, 130_000]
    assert one_round(polls[:3]) == [140_000, 130_000, 130_000]
    polls[3].close()
    assert budget.allowance(polls[0]._key) == 400_000 - 260_000
    # One busy partition beside one that trickles (metrics beside spans) keeps nearly all of it.
    budget.leave(polls[1]._key)
    budget.record(polls[2]._key, 1_000)
    assert budget.allowance(polls[0]._key) == 399_000


def test_empty_polls_wait_longer_each_time_and_after_messages_not_at_all() -> None:
    inner = _Partition([10] * 3, batch_size=2)
    polls: _PollPartition[Any, Any] = _PollPartition(inner)  # type: ignore[arg-type]
    assert polls.next_batch() and polls.next_awake() is None
    assert polls.next_batch() and polls.next_awake() is None

    def empty_poll_waits(wait: timedelta) -> None:
        before = datetime.now(UTC)
        assert polls.next_batch() == []
        awake = polls.next_awake()
        assert awake is not None and before + wait <= awake <= datetime.now(UTC) + wait

    waits = [IDLE_POLL * 2**k for k in range(5)]
    assert waits[-1] == IDLE_POLL_MAX  # 20 ms doubled 4 times: 320 ms
    for wait in [*waits, IDLE_POLL_MAX, IDLE_POLL_MAX]:
        empty_poll_waits(wait)
    inner.sizes = [10]
    assert polls.next_batch() and polls.next_awake() is None
    empty_poll_waits(IDLE_POLL)


def test_bytewax_kafka_partition_still_polls_batch_size_messages() -> None:
    # The budget sets this attribute of the pinned Bytewax's partition; fail loudly if it goes.
    source = PollSource(KafkaSource(["127.0.0.1:9"], ["t"], tail=False, batch_size=64), 1 << 20)
    part = source.build_part("step", "0-t", None)
    try:
        assert part._max_messages == 64
        assert part._inner._batch_size == 1  # type: ignore[attr-defined]  # the first poll
    finally:
        part.close()


class _Offsets:
    """An admin client's `list_offsets`: records what was asked, answers `offset` (or fails)."""

    def __init__(self, offset: int | None) -> None:
        self.offset = offset
        self.asked: list[tuple[str, int, str]] = []

    def list_offsets(self, asked: dict[TopicPartition, Any], **_options: Any) -> Any:
        out = {}
        for tp, spec in asked.items():
            self.asked.append((tp.topic, tp.partition, type(spec).__name__))
            future: Future[Any] = Future()
            if self.offset is None:
                future.set_exception(KafkaException("no broker"))
            else:
                future.set_result(SimpleNamespace(offset=self.offset))
            out[tp] = future
        return out


def test_a_logical_start_is_asked_of_the_broker_as_the_partitions_offset() -> None:
    admin = _Offsets(17)
    assert logical_start(admin, "2-otlp-spans", OFFSET_BEGINNING) == 17  # type: ignore[arg-type]
    assert logical_start(admin, "0-otlp-spans", OFFSET_END) == 17  # type: ignore[arg-type]
    assert admin.asked == [("otlp-spans", 2, "EarliestSpec"), ("otlp-spans", 0, "LatestSpec")]
    # No answer: the consumer resolves the logical offset itself, as before.
    assert logical_start(_Offsets(None), "2-t", OFFSET_BEGINNING) is None  # type: ignore[arg-type]


def test_the_kafka_source_starts_a_partition_that_did_not_resume_at_a_real_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    def start(_admin: Any, part: str, _start: int) -> int:
        asked.append(part)
        return 17

    monkeypatch.setattr(flows.sources, "logical_start", start)
    source = _TunedKafkaSource(["127.0.0.1:9"], ["t"], False, OFFSET_BEGINNING)
    offsets = []
    for resume in (None, 42):  # a resumed offset is a real one already
        part = source.build_part("step", "2-t", resume)
        offsets.append(part._offset)
        part.close()
    assert offsets == [17, 42] and asked == ["2-t"]
    part = _TunedKafkaSource(["127.0.0.1:9"], ["t"], False, 5).build_part("step", "2-t", None)
    part.close()
    assert part._offset == 5 and asked == ["2-t"]  # an absolute start: nothing to ask


def test_an_offset_gone_before_it_is_fetched_restarts_from_the_end_the_flow_starts_from() -> None:
    # librdkafka's default would be the topic's end: a flow from the beginning would skip it all.
    for where, reset in (("beginning", "earliest"), ("end", "latest")):
        settings = Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9", kafka_starting_offset=where)
        config = kafka_source(settings).inner._add_config  # type: ignore[attr-defined]
        assert config["auto.offset.reset"] == reset


def test_a_recording_poll_stops_at_its_byte_budget(tmp_path) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_text("".join('{"resourceSpans": "' + "x" * 980 + '"}\n' for _ in range(10)))
    part = RecordingSource([path], batch=64, max_bytes=2500).build_part("step", str(path), None)
    polls = []
    with contextlib.suppress(StopIteration):
        while True:
            polls.append(len(part.next_batch()[0]))
    assert polls == [3, 3, 3, 1]
    assert part.snapshot() == 10


@pytest.mark.kafka
def test_the_kafka_source_lists_partitions_without_consumer_property_warnings(
    kafka_bootstrap: str, topic_factory: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    # Bytewax's listing gave its admin client the consumers' settings: librdkafka logged a
    # CONFWARN for each consumer-only one at every start of the flow.
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        spans_topic=topic_factory(3),
        metrics_topic=topic_factory(1),
    )
    parts = kafka_source(settings, tail=False, partitions=4).list_parts()
    assert sorted(parts) == sorted(
        [f"{i}-{settings.spans_topic}" for i in range(3)] + [f"0-{settings.metrics_topic}"]
    )
    assert "CONFWARN" not in capfd.readouterr().err
    # the consumers still get them
    kafka_source(settings, tail=False, partitions=4).build_part("s", parts[0], None).close()


@pytest.mark.kafka
def test_a_partition_starts_where_its_beginning_or_end_is_and_reads_from_there(
    kafka_bootstrap: str, topic_factory: Any, produce: Any
) -> None:
    settings = _fresh_topics(kafka_bootstrap, topic_factory)
    produce(settings.spans_topic, [(None, bytes([k])) for k in range(3)])
    read: dict[str, list[bytes | None]] = {}
    for where, offset in (("beginning", 0), ("end", 3)):
        source = kafka_source(settings.model_copy(update={"kafka_starting_offset": where}))
        part = source.build_part("s", f"0-{settings.spans_topic}", None)
        try:
            assert part._inner._offset == offset  # type: ignore[attr-defined]
            if where == "end":
                produce(settings.spans_topic, [(None, b"new")])
            read[where] = []
            deadline = time.monotonic() + 30
            while len(read[where]) < (3 if where == "beginning" else 1):
                assert time.monotonic() < deadline, read
                read[where] += [
                    getattr(m, "value", None) for poll in part.next_batch() for m in poll
                ]
        finally:
            part.close()
    assert read == {"beginning": [b"\x00", b"\x01", b"\x02"], "end": [b"new"]}


def test_the_consumers_share_the_prefetch_and_a_fetch_stays_within_half_a_queue() -> None:
    one, eight = consumer_tuning(2), consumer_tuning(8)  # spans and metrics: 1 and 7 partitions
    assert int(one["queued.max.messages.kbytes"]) * 2 == PREFETCH_KB
    assert int(one["fetch.message.max.bytes"]) == FETCH_BYTES  # under half of its 64 MiB
    queue_kb = int(eight["queued.max.messages.kbytes"])
    assert queue_kb == MIN_QUEUE_KB
    assert int(eight["fetch.message.max.bytes"]) == queue_kb * 1024 // 2
    assert eight["max.partition.fetch.bytes"] == eight["fetch.message.max.bytes"]


def _fresh_topics(bootstrap: str, topic_factory: Any) -> Settings:
    """Settings on the broker with a fresh one-partition spans and metrics topic."""
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        spans_topic=topic_factory(1),
        metrics_topic=topic_factory(1),
    )


@pytest.mark.kafka
def test_a_message_over_a_consumers_fetch_size_is_read_whole(
    kafka_bootstrap: str, topic_factory: Any, produce: Any
) -> None:
    # Among 16 partitions a consumer's queue is 16 MiB and its fetch 8 MiB; a 12 MB export
    # request still comes whole (librdkafka grows a fetch for a larger message), within budget.
    settings = _fresh_topics(kafka_bootstrap, topic_factory)
    sizes = [1000, 12_000_000, 1000, 3_000_000]
    produce(settings.spans_topic, [(None, bytes([k]) * n) for k, n in enumerate(sizes)])
    source = kafka_source(settings, tail=False, partitions=16)
    assert consumer_tuning(16)["fetch.message.max.bytes"] == str(8 * 2**20)
    part = source.build_part("s", f"0-{settings.spans_topic}", None)
    read: list[int] = []
    try:
        with contextlib.suppress(StopIteration):
            while len(read) < len(sizes):
                read.extend(
                    len(getattr(m, "value", b"")) for poll in part.next_batch() for m in poll
                )
    finally:
        part.close()
    assert read == sizes


@pytest.mark.kafka
def test_a_trickle_of_messages_is_read_in_a_few_polls(
    kafka_bootstrap: str, topic_factory: Any, produce: Any
) -> None:
    # A flow that keeps up polls what came since its last poll; the broker holds each fetch
    # (`FETCH_MIN_BYTES`, `FETCH_WAIT_MS`) so that a poll reads a quarter second of traffic, not
    # one message. 12 messages 25 ms apart (300 ms): without the hold, about 12 polls.
    settings = _fresh_topics(kafka_bootstrap, topic_factory)
    assert consumer_tuning(1)["fetch.wait.max.ms"] == str(FETCH_WAIT_MS)
    part = kafka_source(settings, tail=True).build_part("s", f"0-{settings.spans_topic}", None)
    polls: list[int] = []
    try:
        produce(settings.spans_topic, [(None, b"first")])
        deadline = time.monotonic() + 30
        while not part.next_batch() and time.monotonic() < deadline:  # the consumer is fetching
            time.sleep(0.002)

        def trickle() -> None:
            producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 0})
            for k in range(12):
                producer.produce(settings.spans_topic, bytes([k]) * 100)
                producer.flush(10)
                time.sleep(0.025)

        producer = threading.Thread(target=trickle)
        producer.start()
        deadline = time.monotonic() + 30
        while sum(polls) < 12 and time.monotonic() < deadline:
            polls += [len(poll) for poll in part.next_batch()]
            time.sleep(0.002)
        producer.join()
    finally:
        part.close()
    assert sum(polls) == 12
    assert len(polls) <= 4, polls
