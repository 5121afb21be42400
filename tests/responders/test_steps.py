"""The steps the loop builds for the machine: Memory's order of actions."""

from __future__ import annotations

from collections.abc import Sequence

from sinks.fixer.catalog import ActionRequest
from sre_space.responders.steps import memory_preference
from tests.fixer.helpers import INCIDENT


class _Memory:
    def rank_actions(self, fingerprint: str, proposed: Sequence[str]) -> list[str]:
        assert fingerprint == INCIDENT.fingerprint
        return [a for a in ("rollback", "restart") if a in proposed]  # "scale" failed before


def test_memory_preference_orders_and_drops_requests() -> None:
    prefer = memory_preference(_Memory())  # type: ignore[arg-type]
    restart = ActionRequest("restart", {"service": "checkout"})
    scale = ActionRequest("scale", {"service": "checkout"})
    rollbacks = [ActionRequest("rollback", {"to": v}) for v in ("1.4.1", "1.4.0")]
    requests = [restart, scale, *rollbacks]
    assert prefer(INCIDENT, requests) == [*rollbacks, restart]
