"""The incident tables' one writer: lifecycle rules applied in order, atomically across processes."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from operators.scout.incidents.lifecycle import responder_event, stored_after
from sinks.store import Store
from sinks.store.incidents import record_events, record_move
from sre_space.records import Incident
from sre_space.timeutil import rfc3339_to_ns

T0 = rfc3339_to_ns("2026-01-05T00:10:00.000Z")


def _opened() -> Incident:
    return Incident(
        id="inc-1",
        fingerprint="checkout/saturation",
        state="open",
        opened_at=T0,
        updated_at=T0,
        services=["checkout"],
        severity="minor",
        summary="checkout memory",
    )


def _scout(base: Incident, event: str, state: str, at: int, **fields: object) -> Incident:
    return dataclasses.replace(base, event=event, state=state, updated_at=at, **fields)  # type: ignore[arg-type]


def test_a_responder_move_keeps_scouts_fields_and_a_retry_is_no_event() -> None:
    scout = dataclasses.replace(_opened(), services=["checkout", "payment"], severity="major")
    moved = responder_event(scout, "diagnosed", rfc3339_to_ns("2026-01-05T00:11:00.000Z"))
    assert moved is not None
    assert (moved.state, moved.event, moved.updated_at) == (
        "diagnosed",
        "diagnosed",
        rfc3339_to_ns("2026-01-05T00:11:00.000Z"),
    )
    assert dataclasses.replace(moved, state="open", event="opened", updated_at=T0) == scout
    assert responder_event(moved, "diagnosed", rfc3339_to_ns("2026-01-05T00:12:00.000Z")) is None


def test_scout_events_leave_a_settled_state_standing_except_a_reopen_of_a_resolved_one() -> None:
    opened = _opened()
    resolved = dataclasses.replace(opened, state="resolved", event="resolved")
    escalated = dataclasses.replace(opened, state="escalated", event="escalated")
    later = rfc3339_to_ns("2026-01-05T00:20:00.000Z")
    for event, state in (("updated", "open"), ("recovered", "recovered")):
        assert stored_after(resolved, _scout(opened, event, state, later)) is None
        assert stored_after(escalated, _scout(opened, event, state, later)) is None
    reopened = _scout(opened, "reopened", "open", later)
    assert stored_after(resolved, reopened) == reopened
    assert stored_after(escalated, reopened) is None
    diagnosed = dataclasses.replace(opened, state="diagnosed", event="diagnosed")
    assert stored_after(diagnosed, _scout(opened, "updated", "open", later)) is not None
    assert stored_after(None, opened) == opened


def test_events_of_one_batch_apply_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "sre.db")
    opened = _opened()
    record_events(store, [opened])
    record_move(store, opened.id, "resolved", rfc3339_to_ns("2026-01-05T00:20:00.000Z"))
    # The problem came back, then grew: the update follows the reopen, so it stands.
    reopened = _scout(opened, "reopened", "open", rfc3339_to_ns("2026-01-05T00:30:00.000Z"))
    grown = _scout(
        reopened, "updated", "open", rfc3339_to_ns("2026-01-05T00:31:00.000Z"), severity="major"
    )
    record_events(store, [reopened, grown])
    latest = store.get("incidents", opened.id)
    assert latest is not None and (latest["event"], latest["severity"]) == ("updated", "major")
    timeline = [e["event"] for e in store.query("incident_events", key=opened.id)]
    assert timeline == ["opened", "resolved", "reopened", "updated"]


def test_a_write_waits_for_the_other_processes_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path / "sre.db")
    record_events(store, [_opened()])
    other = sqlite3.connect(tmp_path / "sre.db", timeout=0.05, isolation_level=None)
    with store.transaction():
        assert store.get("incidents", "inc-1") is not None
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "sre.db")
    with pytest.raises(RuntimeError), store.transaction():
        store.upsert("incidents", "inc-9", {"id": "inc-9"})
        raise RuntimeError("crash between the read and the write")
    assert store.get("incidents", "inc-9") is None
    store.upsert("incidents", "inc-9", {"id": "inc-9"})  # the handle still writes on its own
    assert Store(tmp_path / "sre.db").get("incidents", "inc-9") == {"id": "inc-9"}
