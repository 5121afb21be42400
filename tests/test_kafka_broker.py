"""The local broker from scripts/kafka works: real round trips, large messages, partitions."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.kafka

# The fixtures' shapes (see tests/conftest.py); conftest is not importable as a module.
TopicFactory = Callable[..., str]
Produce = Callable[..., list[tuple[int, int]]]
ConsumeAll = Callable[..., list[Any]]

TEN_MB = 10 * 1024 * 1024


def test_round_trip_keeps_bytes_and_offsets_including_a_10_mb_message(
    topic_factory: TopicFactory, produce: Produce, consume_all: ConsumeAll
) -> None:
    topic = topic_factory()
    # Random bytes: compression or a truncated copy could not pass for the real thing.
    big = random.Random(7).randbytes(TEN_MB)
    sent: list[tuple[bytes | None, bytes | None]] = [
        (b"first", b"\x00\x01binary\xff"),
        (None, big),
        (b"third", b""),
    ]

    delivered = produce(topic, sent)
    records = consume_all(topic, min_messages=3)

    assert delivered == [(0, 0), (0, 1), (0, 2)]
    assert [(r.partition, r.offset) for r in records] == [(0, 0), (0, 1), (0, 2)]
    assert records[0].key == b"first"
    assert records[0].value == b"\x00\x01binary\xff"
    assert records[1].key is None
    assert records[1].value is not None
    assert len(records[1].value) == TEN_MB
    assert hashlib.sha256(records[1].value).digest() == hashlib.sha256(big).digest()
    assert records[2].key == b"third"
    assert records[2].value == b""  # empty, not null


def test_multi_partition_topic_keeps_per_key_order(
    topic_factory: TopicFactory,
    produce: Produce,
    consume_all: ConsumeAll,
    kafka_admin: AdminClient,
) -> None:
    topic = topic_factory(partitions=4)
    keys = [f"trace-{i:02d}".encode() for i in range(24)]
    sent = [(key, f"{key.decode()}#{seq}".encode()) for seq in range(5) for key in keys]

    delivered = produce(topic, sent)
    pinned = produce(topic, [(b"pinned", b"p0"), (b"pinned", b"p1")], partition=3)
    records = consume_all(topic, min_messages=len(sent) + 2)

    partitions = kafka_admin.list_topics(topic=topic, timeout=10).topics[topic].partitions
    assert sorted(partitions) == [0, 1, 2, 3]
    assert len(records) == len(sent) + 2
    assert {partition for partition, _ in delivered} == {0, 1, 2, 3}, "keys should spread out"
    assert [partition for partition, _ in pinned] == [3, 3]

    # A key always lands in one partition, and its messages come back in the order sent.
    by_key: dict[bytes, list[tuple[int, bytes]]] = {}
    for record in records:
        assert record.key is not None and record.value is not None
        by_key.setdefault(record.key, []).append((record.partition, record.value))
    for key in keys:
        seen = by_key[key]
        assert len({partition for partition, _ in seen}) == 1, key
        assert [value for _, value in seen] == [f"{key.decode()}#{s}".encode() for s in range(5)]
    assert [value for _, value in by_key[b"pinned"]] == [b"p0", b"p1"]

    # Offsets are dense from 0 in every partition.
    for partition in range(4):
        offsets = [r.offset for r in records if r.partition == partition]
        assert offsets == list(range(len(offsets)))


def test_producing_to_a_missing_topic_creates_it_with_one_partition(
    kafka_admin: AdminClient, produce: Produce, consume_all: ConsumeAll
) -> None:
    # The flow's output topics (sre.signals, ...) may be written before anyone created them.
    topic = f"test-autocreate-{time.time_ns()}"
    try:
        assert produce(topic, [(b"k", b"v")]) == [(0, 0)]
        assert consume_all(topic, min_messages=1) == [(b"k", b"v", 0, 0)]
        assert len(kafka_admin.list_topics(topic=topic, timeout=10).topics[topic].partitions) == 1
    finally:
        kafka_admin.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)


def test_topics_from_the_factory_are_unique_and_ready(
    topic_factory: TopicFactory, kafka_admin: AdminClient
) -> None:
    first, second = topic_factory(), topic_factory(partitions=2)

    assert first != second
    topics = kafka_admin.list_topics(timeout=10).topics
    assert len(topics[first].partitions) == 1
    assert len(topics[second].partitions) == 2


def test_tests_using_the_broker_get_the_kafka_marker(
    request: pytest.FixtureRequest, kafka_bootstrap: str
) -> None:
    # own_markers holds what conftest's collection hook added, not this module's pytestmark.
    assert "kafka" in [marker.name for marker in request.node.own_markers]
    assert kafka_bootstrap
