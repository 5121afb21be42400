"""The steps the loop builds for the machine: Scout's verdict and Memory's order of actions."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from sinks.store import Store
from sinks.store.incidents import record_events
from sre_space.records import ActionRequest
from sre_space.responders.steps import memory_preference, scout_health
from sre_space.timeutil import rfc3339_to_ns
from tests.fixer.helpers import INCIDENT


def test_scout_health_is_the_stored_state(tmp_path: Path) -> None:
    store = Store(tmp_path / "sre.db")
    health = scout_health(store)
    assert health(INCIDENT, rfc3339_to_ns("2026-01-05T00:12:00.000Z")) is None  # not stored yet
    record_events(store, [INCIDENT])
    sample = health(INCIDENT, rfc3339_to_ns("2026-01-05T00:12:00.000Z"))
    assert sample is not None and not sample.healthy and sample.detail == "Scout: incident open"
    recovered = dataclasses.replace(
        INCIDENT,
        state="recovered",
        event="recovered",
        recovered_at=rfc3339_to_ns("2026-01-05T00:13:00.000Z"),
        updated_at=rfc3339_to_ns("2026-01-05T00:14:00.000Z"),
    )
    record_events(store, [recovered])
    sample = health(INCIDENT, rfc3339_to_ns("2026-01-05T00:15:00.000Z"))
    assert sample is not None and sample.healthy
    assert (sample.window_end, sample.detail) == (
        rfc3339_to_ns("2026-01-05T00:15:00.000Z"),
        "Scout: incident recovered since 2026-01-05T00:13:00.000Z",
    )


class _Memory:
    def rank_actions(self, fingerprint: str, proposed: Sequence[str]) -> list[str]:
        assert fingerprint == INCIDENT.fingerprint
        return [a for a in ("rollback_version", "restart") if a in proposed]  # scaling failed


def test_memory_preference_orders_and_drops_requests() -> None:
    prefer = memory_preference(_Memory())  # type: ignore[arg-type]
    restart = ActionRequest("restart", "checkout")
    scale = ActionRequest("scale_replicas", "checkout")
    rollbacks = [
        ActionRequest("rollback_version", "checkout", {"to_version": v}) for v in ("1.4.1", "1.4.0")
    ]
    requests = [restart, scale, *rollbacks]
    assert prefer(INCIDENT, requests) == [*rollbacks, restart]
