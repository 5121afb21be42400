"""The flow's Kafka sink never drops a record without a word (no broker needed)."""

from __future__ import annotations

import pytest

from sinks.outputs.kafka_out import PRODUCER_CONFIG, CheckedKafkaSink


def test_producer_is_idempotent() -> None:
    # Retries after a broker restart must neither double a record nor reorder a key's records.
    assert PRODUCER_CONFIG["enable.idempotence"] == "true"


def test_a_record_that_cannot_be_delivered_stops_the_flow() -> None:
    # Nothing listens on port 1: every record times out, and the sink must say so.
    sink = CheckedKafkaSink(
        ["127.0.0.1:1"], "nowhere", {"message.timeout.ms": "300", "log_level": "0"}
    )
    part = sink.build("out", 0, 1)
    with pytest.raises(RuntimeError, match="2 records could not be written to Kafka topic"):
        part.write_batch([(b"k", b"v1"), (b"k", b"v2")])
    part.close()  # nothing is left: the failed records were reported once
