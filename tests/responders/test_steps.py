"""The steps the loop builds for the machine: Memory's order of actions."""

from __future__ import annotations

from collections.abc import Sequence

from sre_space.records import ActionRequest
from sre_space.responders.steps import memory_preference
from tests.fixer.helpers import INCIDENT


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
