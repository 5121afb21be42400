"""Records to Kafka topics as JSON, keyed so one series always lands in one partition."""

from __future__ import annotations

from bytewax import operators as op
from bytewax.dataflow import Stream
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message

from sre_space.kafka import KafkaPublisher
from sre_space.records import DeadLetter, Record, SignalWindow

# Idempotence: a produce request retried after a lost acknowledgement (a broker restart, a
# dropped connection) is written once, and records of one key stay in order through retries
# (an incident's events rely on that). It implies acks=all and unlimited retries within
# message.timeout.ms.
PRODUCER_CONFIG = {
    "message.max.bytes": "20971520",
    "linger.ms": "20",
    "enable.idempotence": "true",
}


def record_key(record: Record) -> bytes:
    """The partitioning key: the series for signals, the origin for dead letters."""
    if isinstance(record, SignalWindow):
        return "|".join(record.key).encode()
    if isinstance(record, DeadLetter):
        return f"{record.source}|{record.partition}".encode()
    # Incidents and detections: by id, so one incident's events stay in order in one partition.
    return str(getattr(record, "id", "")).encode()


class _CheckedPartition(StatelessSinkPartition[tuple[bytes, bytes]]):
    def __init__(self, producer: KafkaPublisher, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._failed: list[str] = []

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failed.append(str(err))

    def write_batch(self, items: list[tuple[bytes, bytes]]) -> None:
        for key, value in items:
            self._producer.send(self._topic, value, key, on_delivery=self._on_delivery)
        self._flush()

    def _flush(self) -> None:
        # Blocks until every record is acknowledged or has failed for good (message.timeout.ms).
        self._producer.flush()
        if self._failed:
            failed, self._failed = self._failed, []
            message = (
                f"{len(failed)} records could not be written to Kafka topic {self._topic!r} "
                f"(first: {failed[0]}); stopping rather than losing them"
            )
            raise RuntimeError(message)

    def close(self) -> None:
        self._flush()


class CheckedKafkaSink(DynamicSink[tuple[bytes, bytes]]):
    """(key, value) pairs to one topic; a record that cannot be delivered stops the flow.

    Bytewax's KafkaSink produces without a delivery report, so a record that failed for good
    (the broker away longer than message.timeout.ms, a record over the size limit) was dropped
    without a word. Here the failure raises, and a flow with recovery resumes from its last
    snapshot and writes it again (at least once), instead of going on without it.
    """

    def __init__(
        self, brokers: list[str], topic: str, config: dict[str, str] | None = None
    ) -> None:
        self.brokers = brokers
        self.topic = topic
        self.config = {**PRODUCER_CONFIG, **(config or {})}

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CheckedPartition:
        return _CheckedPartition(KafkaPublisher(",".join(self.brokers), self.config), self.topic)


def to_kafka(step_id: str, up: Stream[Record], brokers: list[str], topic: str) -> None:
    """Serialise records as JSON and produce them to `topic`."""
    msgs = op.map(f"{step_id}_encode", up, lambda r: (record_key(r), r.to_json().encode()))
    op.output(step_id, msgs, CheckedKafkaSink(brokers, topic))
