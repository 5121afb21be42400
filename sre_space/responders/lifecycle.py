"""The responders' lifecycle moves, published as incident events.

Scout opens, updates and recovers incidents; the responders move them on (diagnosed, mitigating,
verifying, resolved, escalated). Each such move becomes an `Incident` event in the store (the
incident's latest state and its timeline, through `sinks.store.incidents`) and, when a publisher
is given, on `sre.incidents`, so everyone downstream sees one lifecycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sinks.store import Store
from sinks.store.incidents import record_move
from sre_space.kafka import KafkaPublisher
from sre_space.records import Record

Publish = Callable[[str, Record], None]


class LifecycleTracker:
    """Wraps the Fixer's tracker: every `set_state` also becomes an incident event."""

    def __init__(
        self,
        inner: Any,
        store: Store,
        now: Callable[[], int | None],
        publish: Publish | None = None,
        topic: str = "sre.incidents",
    ) -> None:
        self._inner = inner
        self._store = store
        self._now = now
        self._publish = publish
        self._topic = topic

    def set_state(self, incident_id: str, state: str, *args: Any, **kwargs: Any) -> Any:
        result = self._inner.set_state(incident_id, state, *args, **kwargs)
        self._record(incident_id, state)
        return result

    def escalate(self, incident_id: str, *args: Any, **kwargs: Any) -> Any:
        result = self._inner.escalate(incident_id, *args, **kwargs)
        self._record(incident_id, "escalated")
        return result

    def close_with_postmortem(self, incident_id: str, *args: Any, **kwargs: Any) -> Any:
        result = self._inner.close_with_postmortem(incident_id, *args, **kwargs)
        # Closing follows a verified fix or an escalation; an escalated incident stays escalated.
        row = self._store.get("incidents", incident_id)
        if row is None or row.get("state") != "escalated":
            self._record(incident_id, "resolved")
        return result

    def _record(self, incident_id: str, state: str) -> None:
        at = self._now()
        if at is None:
            return
        event = record_move(self._store, incident_id, state, at)
        if event is not None and self._publish is not None:
            self._publish(self._topic, event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def kafka_publisher(bootstrap: str) -> Publish:
    """Records as JSON to Kafka topics, keyed by id (one incident's events stay in order)."""
    producer = KafkaPublisher(bootstrap)

    def publish(topic: str, record: Record) -> None:
        key = str(getattr(record, "id", "") or getattr(record, "incident_id", "") or "")
        producer.send(topic, record.to_json().encode(), key.encode())
        # Events are rare (a few per incident): deliver each now rather than on a linger timer
        # that a stopping process may never reach.
        producer.flush(10)

    return publish
