"""Lifecycle states set by the responders come back as incident events, once each."""

from __future__ import annotations

from pathlib import Path

from sinks.store import Store
from sinks.store.incidents import record_events, record_move
from sre_space.records import Incident, Record
from sre_space.responders.lifecycle import LifecycleTracker
from sre_space.timeutil import rfc3339_to_ns


class _Tracker:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def set_state(self, incident_id: str, state: str, extra: tuple[str, ...] = ()) -> None:
        self.calls.append((incident_id, state))

    def comment(self, incident_id: str, step: str, body: str) -> str:
        return f"{incident_id}:{step}"


def _store_with_incident(tmp_path: Path) -> Store:
    store = Store(tmp_path / "sre.db")
    inc = Incident(
        id="inc-1",
        fingerprint="checkout/saturation",
        state="open",
        opened_at=rfc3339_to_ns("2026-01-05T00:12:40.000Z"),
        updated_at=rfc3339_to_ns("2026-01-05T00:12:40.000Z"),
        services=["checkout"],
        severity="minor",
    )
    record_events(store, [inc])
    return store


def test_set_state_writes_the_event_and_publishes_it(tmp_path: Path) -> None:
    store = _store_with_incident(tmp_path)
    published: list[tuple[str, Record]] = []
    inner = _Tracker()
    clock = iter(
        rfc3339_to_ns(t)
        for t in (
            "2026-01-05T00:13:00.000Z",
            "2026-01-05T00:13:00.000Z",
            "2026-01-05T00:20:00.000Z",
        )
    )
    tracker = LifecycleTracker(
        inner, store, lambda: next(clock), lambda topic, rec: published.append((topic, rec))
    )
    tracker.set_state("inc-1", "diagnosed")
    tracker.set_state("inc-1", "diagnosed")  # a retried step: no second event
    tracker.set_state("inc-1", "resolved")
    assert inner.calls == [("inc-1", "diagnosed"), ("inc-1", "diagnosed"), ("inc-1", "resolved")]
    assert store.get("incidents", "inc-1")["state"] == "resolved"
    events = [e["event"] for e in store.query("incident_events", key="inc-1")]
    assert events == ["opened", "diagnosed", "resolved"]
    assert [(t, r.state) for t, r in published] == [  # type: ignore[attr-defined]
        ("sre.incidents", "diagnosed"),
        ("sre.incidents", "resolved"),
    ]
    assert tracker.comment("inc-1", "x", "y") == "inc-1:x"  # everything else passes through


def test_unknown_incident_is_ignored(tmp_path: Path) -> None:
    assert (
        record_move(
            Store(tmp_path / "sre.db"), "nope", "resolved", rfc3339_to_ns("2026-01-05T00:00:00Z")
        )
        is None
    )


def test_scout_events_do_not_undo_a_settled_incident(tmp_path: Path) -> None:
    import dataclasses

    from sinks.outputs.store_sink import StoreSink

    store = _store_with_incident(tmp_path)
    record_move(store, "inc-1", "escalated", rfc3339_to_ns("2026-01-05T00:30:00.000Z"))
    base = Incident.from_dict(store.get("incidents", "inc-1"))
    sink = StoreSink(tmp_path / "sre.db").build("store", 0, 1)
    later = dataclasses.replace(
        base,
        state="recovered",
        event="recovered",
        updated_at=rfc3339_to_ns("2026-01-05T00:31:00.000Z"),
    )
    sink.write_batch([later])
    assert store.get("incidents", "inc-1")["state"] == "escalated"
    reopened = dataclasses.replace(
        base, state="open", event="reopened", updated_at=rfc3339_to_ns("2026-01-05T00:40:00.000Z")
    )
    sink.write_batch([reopened])
    assert store.get("incidents", "inc-1")["state"] == "escalated"  # a person owns it now
    events = [e["event"] for e in store.query("incident_events", key="inc-1")]
    assert events == ["opened", "escalated", "recovered", "reopened"]
    # A resolved incident whose problem comes back is open again.
    record_move(store, "inc-1", "resolved", rfc3339_to_ns("2026-01-05T00:50:00.000Z"))
    again = dataclasses.replace(reopened, updated_at=rfc3339_to_ns("2026-01-05T00:55:00.000Z"))
    sink.write_batch([again])
    assert store.get("incidents", "inc-1")["state"] == "open"
