"""Records to Kafka topics as JSON, keyed so one series always lands in one partition."""

from __future__ import annotations

from bytewax import operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Stream

from sre_space.records import DeadLetter, Record, SignalWindow


def record_key(record: Record) -> bytes:
    """The partitioning key: the series for signals, the origin for dead letters."""
    if isinstance(record, SignalWindow):
        return "|".join(record.key).encode()
    if isinstance(record, DeadLetter):
        return f"{record.source}|{record.partition}".encode()
    # Incidents and detections: by id, so one incident's events stay in order in one partition.
    return str(getattr(record, "id", "")).encode()


def to_kafka(step_id: str, up: Stream[Record], brokers: list[str], topic: str) -> None:
    """Serialise records as JSON and produce them to `topic`."""
    msgs = op.map(
        f"{step_id}_encode",
        up,
        lambda r: KafkaSinkMessage(key=record_key(r), value=r.to_json().encode()),
    )
    kop.output(
        step_id,
        msgs,
        brokers=brokers,
        topic=topic,
        add_config={"message.max.bytes": "20971520", "linger.ms": "20"},
    )
