"""Lifecycle states set by the responders, published as incident events.

Scout opens, updates and recovers incidents; the responders move them on (diagnosed, mitigating,
verifying, resolved, escalated). Each such move becomes an `Incident` event in the store (the
incident's latest state and its timeline) and, when a publisher is given, on `sre.incidents` and
`sre.actions`, so everyone downstream sees one lifecycle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from sinks.outputs.store_sink import record_rows
from sinks.store import Store
from sre_space.records import Incident, Record
from sre_space.timeutil import rfc3339_to_ns

Publish = Callable[[str, Record], None]


def incident_event(store: Store, incident_id: str, state: str, at: str) -> Incident | None:
    """Record `state` for the incident at event time `at`; returns the event (None if unknown)."""
    row = store.get("incidents", incident_id)
    if row is None:
        return None
    current = Incident.from_dict(row)
    if current.state == state:
        return None  # a retried step sets the same state again: no duplicate event
    event = dataclasses.replace(current, state=state, event=state, updated_at=rfc3339_to_ns(at))  # type: ignore[arg-type]
    for table, rid, payload, ts, key in record_rows(event):
        store.upsert(table, rid, payload, ts=ts, key=key)
    return event


class LifecycleTracker:
    """Wraps the Fixer's tracker: every `set_state` also becomes an incident event."""

    def __init__(
        self,
        inner: Any,
        store: Store,
        now: Callable[[], str | None],
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
        event = incident_event(self._store, incident_id, state, at)
        if event is not None and self._publish is not None:
            self._publish(self._topic, event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def kafka_publisher(bootstrap: str) -> Publish:
    """Records as JSON to Kafka topics, keyed by id (one incident's events stay in order)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})

    def publish(topic: str, record: Record) -> None:
        key = str(getattr(record, "id", "") or getattr(record, "incident_id", "") or "")
        producer.produce(topic, key=key.encode(), value=record.to_json().encode())
        # Events are rare (a few per incident): deliver each now rather than on a linger timer
        # that a stopping process may never reach.
        producer.flush(10)

    return publish
