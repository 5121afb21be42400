"""The one writer of the incident tables: `incidents` (each incident's latest state, by id) and
`incident_events` (every event, the timeline, keyed by incident id).

Two processes write them, each only through this module: the flow (Scout's events, `StoreSink`)
and `sre-space responders` (the responders' moves, `LifecycleTracker`); in the demo they are two
threads with one handle each. Every call reads the stored latest state, applies the event
(`operators.scout.incidents.lifecycle.stored_after`) and writes both tables in one transaction
that holds the file's write lock from before the read (`Store.transaction`): the other process's
write lands wholly before or after, so a responder's move cannot copy a row Scout is replacing
(undoing Scout's update), nor Scout's event skip the settled check on a stale row. WAL lets the
dashboard, the drill and the responders read meanwhile. Timeline ids (`id|event|updated_at`) make
the flow's at-least-once replays and the responders' retried steps rewrite the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from operators.scout.incidents.lifecycle import responder_event, stored_after
from sinks.store.sqlite import Store
from sre_space.records import Incident
from sre_space.timeutil import ns_to_rfc3339


def record_events(store: Store, events: Iterable[Incident]) -> None:
    """Scout's incident events, in order: each joins the timeline and, unless a responder's
    settled state stands, becomes its incident's latest state."""
    with store.transaction():
        for event in events:
            _write(store, _latest(store, event.id), event)


def record_move(store: Store, incident_id: str, state: str, at: int) -> Incident | None:
    """A responder's move of the incident to `state` at event time `at` (ns); returns the event
    (None for an unknown incident, or one already in `state`)."""
    with store.transaction():
        latest = _latest(store, incident_id)
        event = None if latest is None else responder_event(latest, state, at)
        if event is not None:
            _write(store, latest, event)
        return event


def _latest(store: Store, incident_id: str) -> Incident | None:
    row = store.get("incidents", incident_id)
    return None if row is None else Incident.from_dict(row)


def _write(store: Store, latest: Incident | None, event: Incident) -> None:
    stored = stored_after(latest, event)
    if stored is not None:
        payload = stored.to_dict()
        store.upsert(
            "incidents",
            stored.id,
            payload,
            ts=ns_to_rfc3339(stored.opened_at),
            key=stored.fingerprint,
        )
    updated = ns_to_rfc3339(event.updated_at)
    timeline_id = f"{event.id}|{event.event}|{updated}"
    store.upsert("incident_events", timeline_id, event.to_dict(), ts=updated, key=event.id)
