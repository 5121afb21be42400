"""The Fixer's audit log: every automated decision as an `AuditAction` in the store's `actions` table.

Rows have deterministic ids (incident, step, decision key), so a step re-run after a crash rewrites
its row instead of adding a second one. An optional `emit` callback forwards each action to the
`sre.actions` topic (the lead wires the Kafka producer).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from sinks.fixer.pr_body import redact
from sinks.store.sqlite import Store
from sre_space.records import AuditAction
from sre_space.timeutil import ns_to_rfc3339


class AuditLog:
    """Writes audit actions; idempotent by (incident, key)."""

    def __init__(
        self,
        store: Store,
        *,
        actor: str = "fixer",
        emit: Callable[[AuditAction], None] | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.store = store
        self.actor = actor
        self.emit = emit
        self.secrets = secrets

    def record(
        self,
        *,
        at: int,
        action: str,
        reason: str,
        incident_id: str | None,
        key: str,
        inputs: dict[str, Any] | None = None,
        outcome: str = "done",
        actor: str | None = None,
    ) -> AuditAction:
        """Write one decision at event time `at` (ns); the same (incident, key) overwrites its
        earlier row."""
        row = AuditAction(
            at=at,
            actor=actor or self.actor,
            action=action,
            reason=redact(reason, self.secrets),
            incident_id=incident_id,
            inputs=inputs or {},
            outcome=outcome,
        )
        digest = hashlib.sha256(f"{incident_id}|{key}".encode()).hexdigest()[:24]
        self.store.upsert(
            "actions",
            f"audit:{digest}",
            row.to_dict(),
            ts=ns_to_rfc3339(row.at),
            key=incident_id or "",
        )
        if self.emit is not None:
            self.emit(row)
        return row

    def for_incident(self, incident_id: str) -> list[dict[str, Any]]:
        """The incident's audit rows, oldest first."""
        return self.store.query("actions", key=incident_id)
