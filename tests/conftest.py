"""Shared fixtures: the real Kafka broker, a fresh topic per test, produce and consume helpers.

The broker comes from ``scripts/kafka/kafka up`` (``make test`` starts and stops it). Tests that
need it ask for ``kafka_bootstrap`` (directly or through the other fixtures) and are marked
``kafka`` automatically. Without a broker they fail with a hint; they never skip, because a
skipped integration test looks green in CI while proving nothing.

Fixtures are factories in the Quix Streams style: ``topic_factory(partitions=3)`` gives a new,
uniquely named topic that is deleted after the test, so tests never see each other's messages.

Only ``confluent_kafka``, ``pytest`` and the standard library are imported here, so that every
part of the project can use these fixtures without pulling in another part.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import NamedTuple

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

# The broker accepts messages up to 20 MiB (scripts/kafka/server.properties.in); clients are
# configured to match, so that 10 MB test messages go through.
MAX_MESSAGE_BYTES = 20 * 1024 * 1024

BROKER_HINT = (
    "KAFKA_BOOTSTRAP_SERVERS is not set, and this test needs the real Kafka broker. "
    "Run the suite with `make test` (it starts and stops the broker), or start one with "
    "`scripts/kafka/kafka up` and `export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092`."
)

_log = logging.getLogger("tests.kafka")


class Record(NamedTuple):
    """One message read back from a topic."""

    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


KeyValue = tuple[bytes | str | None, bytes | str | None]
TopicFactory = Callable[..., str]
Produce = Callable[..., list[tuple[int, int]]]
ConsumeAll = Callable[..., list[Record]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the broker (even through another fixture) with ``kafka``."""
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


def _client_config(bootstrap: str, **extra: object) -> dict[str, object]:
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        # librdkafka logs through Python logging (captured per test) instead of raw stderr.
        "logger": _log,
    }
    config.update(extra)
    return config


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The broker's ``host:port`` list from KAFKA_BOOTSTRAP_SERVERS; fails (never skips) without."""
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if not servers:
        pytest.fail(BROKER_HINT, pytrace=False)
    # One metadata round trip per session, so that a dead broker fails every Kafka test at once
    # with a clear message instead of each test timing out on its own.
    admin = AdminClient(_client_config(servers))
    try:
        metadata = admin.list_topics(timeout=15)
    except Exception as exc:
        message = (
            f"no Kafka broker answers on KAFKA_BOOTSTRAP_SERVERS={servers} ({exc}). "
            "Check it with `scripts/kafka/kafka status` and `scripts/kafka/kafka logs`."
        )
        pytest.fail(message, pytrace=False)
    if not metadata.brokers:
        pytest.fail(f"the cluster at {servers} lists no brokers", pytrace=False)
    return servers


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    """An AdminClient on the test broker, shared by the session."""
    return AdminClient(_client_config(kafka_bootstrap))


def _topic_name(test_name: str) -> str:
    # Topic names allow [a-zA-Z0-9._-] and 249 characters; test ids carry brackets and spaces.
    stem = re.sub(r"[^a-zA-Z0-9._-]+", "-", test_name).strip("-.")[:120] or "topic"
    return f"test-{stem}-{uuid.uuid4().hex[:10]}"


def _wait_for_topic(admin: AdminClient, topic: str, partitions: int, timeout: float) -> None:
    """Wait until metadata shows every partition of ``topic`` with a leader."""
    deadline = time.monotonic() + timeout
    last = "no metadata yet"
    while time.monotonic() < deadline:
        try:
            found = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
        except Exception as exc:  # a transient KafkaException; ask again
            last = str(exc)
        else:
            if found is not None and found.error is None:
                led = [p for p in found.partitions.values() if p.leader >= 0]
                if len(led) == partitions:
                    return
                last = f"{len(led)} of {partitions} partitions have a leader"
            elif found is not None:
                last = str(found.error)
        time.sleep(0.1)
    message = f"topic {topic!r} was not ready within {timeout:.0f} s: {last}"
    raise TimeoutError(message)


@pytest.fixture
def topic_factory(
    kafka_admin: AdminClient, request: pytest.FixtureRequest
) -> Iterator[TopicFactory]:
    """Create topics for this test; every topic it made is deleted at teardown.

    ``topic_factory(partitions=1, *, name=None, config=None, timeout=30.0) -> str`` returns the
    topic's name, unique per call unless ``name`` is given, once the topic is ready to use.
    """
    created: list[str] = []

    def factory(
        partitions: int = 1,
        *,
        name: str | None = None,
        config: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> str:
        topic = name or _topic_name(request.node.name)
        new = NewTopic(
            topic, num_partitions=partitions, replication_factor=1, config=dict(config or {})
        )
        futures = kafka_admin.create_topics(
            [new], operation_timeout=timeout, request_timeout=timeout
        )
        futures[topic].result(timeout=timeout)
        created.append(topic)
        _wait_for_topic(kafka_admin, topic, partitions, timeout)
        return topic

    yield factory

    if created:
        futures = kafka_admin.delete_topics(created, operation_timeout=30, request_timeout=30)
        for topic, future in futures.items():
            try:
                future.result(timeout=30)
            except Exception as exc:  # cleanup must not hide the test's own result
                _log.warning("could not delete test topic %s: %s", topic, exc)


def _as_bytes(data: bytes | str | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


@pytest.fixture
def produce(kafka_bootstrap: str) -> Produce:
    """Produce messages and wait until the broker has them all.

    ``produce(topic, [(key, value), ...], *, partition=None, headers=None, timeout=60.0)``
    returns the ``(partition, offset)`` of each message, in the order given. Keys and values are
    bytes (``str`` is encoded as UTF-8) or ``None``. Without ``partition``, the key picks it.
    """

    def _produce(
        topic: str,
        messages: Iterable[KeyValue],
        *,
        partition: int | None = None,
        headers: Mapping[str, bytes] | None = None,
        timeout: float = 60.0,
    ) -> list[tuple[int, int]]:
        producer = Producer(
            _client_config(
                kafka_bootstrap,
                **{
                    "message.max.bytes": MAX_MESSAGE_BYTES,
                    "enable.idempotence": True,
                    "linger.ms": 5,
                },
            )
        )
        items = list(messages)
        results: list[tuple[int, int] | None] = [None] * len(items)
        errors: list[str] = []

        def on_delivery(index: int) -> Callable[[KafkaError | None, Message], None]:
            def report(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    errors.append(f"message {index}: {err}")
                else:
                    results[index] = (msg.partition(), msg.offset())

            return report

        for index, (key, value) in enumerate(items):
            kwargs: dict[str, object] = {}
            if partition is not None:
                kwargs["partition"] = partition
            if headers:
                kwargs["headers"] = dict(headers)
            producer.produce(
                topic,
                key=_as_bytes(key),
                value=_as_bytes(value),
                on_delivery=on_delivery(index),
                **kwargs,
            )
            producer.poll(0)
        remaining = producer.flush(timeout)
        if errors or remaining:
            message = (
                f"producing to {topic!r} failed: {len(errors)} delivery errors "
                f"({'; '.join(errors[:5])}), {remaining} messages still queued after {timeout} s"
            )
            raise AssertionError(message)
        return [r for r in results if r is not None]

    return _produce


@pytest.fixture
def consume_all(kafka_bootstrap: str, kafka_admin: AdminClient) -> ConsumeAll:
    """Read every message of a topic from the beginning, across all its partitions.

    ``consume_all(topic, *, idle=2.0, timeout=60.0, min_messages=0) -> list[Record]`` reads until
    nothing new arrived for ``idle`` seconds (and at least ``min_messages`` were read), or until
    ``timeout`` seconds in all, then returns what it read as ``(key, value, partition, offset)``,
    sorted by partition and offset. It commits nothing: it uses no consumer group offsets.
    """

    def _consume_all(
        topic: str,
        *,
        idle: float = 2.0,
        timeout: float = 60.0,
        min_messages: int = 0,
    ) -> list[Record]:
        found = kafka_admin.list_topics(topic=topic, timeout=10).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            reason = "not in metadata" if found is None else (found.error or "no partitions")
            message = f"cannot read topic {topic!r}: {reason}"
            raise AssertionError(message)
        consumer = Consumer(
            _client_config(
                kafka_bootstrap,
                **{
                    # assign() reads without group membership; librdkafka still wants an id.
                    "group.id": f"tests-consume-all-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "receive.message.max.bytes": MAX_MESSAGE_BYTES * 3,
                    "fetch.max.bytes": MAX_MESSAGE_BYTES * 2,
                },
            )
        )
        records: list[Record] = []
        try:
            consumer.assign(
                [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(found.partitions)]
            )
            started = last_seen = time.monotonic()
            while True:
                now = time.monotonic()
                if now - started >= timeout:
                    break
                if len(records) >= min_messages and now - last_seen >= idle:
                    break
                wait = min(0.2, max(0.0, timeout - (now - started)))
                for msg in consumer.consume(num_messages=1000, timeout=wait):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            continue
                        message = f"error reading {topic!r}: {err}"
                        raise AssertionError(message)
                    records.append(Record(msg.key(), msg.value(), msg.partition(), msg.offset()))
                    last_seen = time.monotonic()
        finally:
            consumer.close()
        records.sort(key=lambda r: (r.partition, r.offset))
        return records

    return _consume_all


@pytest.fixture(autouse=True)
def _keep_main_module() -> Iterator[None]:
    """Put `__main__` back after each test: Streamlit's AppTest leaves the last page it ran there
    (also after a widget's `.run()`), and a process pool spawned later in this pytest process
    (the scored suite) would run that page in every worker and break."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main
