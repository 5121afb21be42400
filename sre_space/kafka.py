"""Producing to Kafka: the one producer wrapper behind the shop's OTLP, the flow's sinks and the
responders' events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message

Delivery = Callable[["KafkaError | None", "Message"], None]


class KafkaPublisher:
    """A producer that waits out a full local queue instead of failing, and serves deliveries."""

    def __init__(self, bootstrap: str, config: Mapping[str, Any] | None = None) -> None:
        # Imported here: the shop and the harnesses run without Kafka unless asked to publish.
        from confluent_kafka import Producer

        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 20, **(config or {})}
        )

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        on_delivery: Delivery | None = None,
    ) -> None:
        """Queue one message; blocks while the local queue is full (the broker is slow or away)."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                self._producer.poll(0.1)  # let deliveries drain, then retry
        self._producer.poll(0)

    def flush(self, timeout_s: float | None = None) -> int:
        """Wait for every queued message (at most `timeout_s`); how many are still queued."""
        remaining: int = (
            self._producer.flush() if timeout_s is None else self._producer.flush(timeout_s)
        )
        return remaining
