"""Collect a post-mortem's inputs from the SQLite store, for the responder's `postmortem` step.

The responder calls `postmortem(incident, outcome) -> str` with the outcome it decided (`{"result":
"resolved" | "reverted" | "no_change" | "error", "detail": ..., "pr_id": ...}`). Everything else is
read back from the store, in the shapes the other stages write:

- `actions` (key = incident id): the audit log, `AuditAction` rows;
- `pull_requests` (key = incident id): the Fixer's pull request records (`change` holds the planned
  manifest edit with `old_text` / `new_text`, from which the diff is rebuilt);
- `anomalies` (id = anomaly id) and `diagnoses` (id = incident id), when the flow stores them;
- `signals` (ts = window start, key = `kind|service|name`): the windows of the incident's keys from
  `before_s` before the onset (the baseline) to `after_s` after the end.

Rows that are missing are tolerated: the post-mortem then says what it does not know.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sinks.memory.records import Remediation
from sinks.store.sqlite import Store
from sre_space.records import (
    Anomaly,
    AuditAction,
    Diagnosis,
    Incident,
    SignalWindow,
)
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339, rfc3339_to_ns


class LearnInputs(NamedTuple):
    """Everything `Memory.learn` needs for one incident, in its order."""

    incident: Incident
    anomalies: list[Anomaly]
    diagnosis: Diagnosis | None
    remediation: Remediation | None
    audit: list[AuditAction]
    signals: list[SignalWindow]


def diagnosis_from_dict(data: Mapping[str, Any]) -> Diagnosis:
    """A Diagnosis with its nested candidates and evidence rebuilt (see `Diagnosis.from_dict`)."""
    return Diagnosis.from_dict(dict(data))


def _first(audit: Sequence[AuditAction], *actions: str) -> int | None:
    times = [a.at for a in audit if a.action in actions]
    return min(times) if times else None


def change_diff(change: Mapping[str, Any]) -> str:
    """The unified diff of a planned manifest change (`old_text` -> `new_text`)."""
    old, new = str(change.get("old_text", "")), str(change.get("new_text", ""))
    if not old and not new:
        return ""
    path = str(change.get("path", "manifest.yaml"))
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    return "".join(lines)


def remediation_from_pull_request(
    pr: Mapping[str, Any], audit: Sequence[AuditAction], outcome: Mapping[str, Any]
) -> Remediation:
    """The resolution record from the Fixer's pull request row, the audit log and the outcome."""
    change = dict(pr.get("change") or {})
    state = str(pr.get("state", "open"))
    result = str(outcome.get("result", "unknown"))
    merged = state in ("merged", "reverted") or bool(pr.get("merge_sha"))
    reverted = state == "reverted" or result == "reverted"
    merged_at = (_first(audit, "merge") or _first(audit, "deployed")) if merged else None
    verified: bool | None = None
    verified_at = None
    if merged and result == "resolved":
        verified, verified_at = True, _first(audit, "verified", "verify")
    elif merged and reverted:
        verified, verified_at = False, _first(audit, "revert")
    number = pr.get("number")
    return Remediation(
        action=str(pr.get("action") or change.get("action") or ""),
        service=str(pr.get("service") or change.get("service") or "") or None,
        params=dict(change.get("params") or {}),
        pr_id=str(number) if number is not None else None,
        pr_url=str(pr.get("url") or "") or None,
        commit_sha=pr.get("merge_sha") or None,
        diff=change_diff(change),
        opened_at=rfc3339_to_ns(pr["created_at"]) if pr.get("created_at") else None,
        merged=merged,
        merged_at=merged_at,
        verified=verified,
        verified_at=verified_at,
        verification=str(outcome.get("detail", "")),
        reverted=reverted,
        reverted_at=_first(audit, "revert") if reverted else None,
        escalated=result != "resolved",
    )


def _signal_rows(store: Store, since: int, until: int) -> list[dict[str, Any]]:
    return store.query("signals", since=ns_to_rfc3339(since), until=ns_to_rfc3339(until))


def gather(
    store: Store,
    incident: Incident,
    outcome: Mapping[str, Any],
    *,
    before_s: float = 300.0,
    after_s: float = 120.0,
) -> LearnInputs:
    """Read a post-mortem's inputs back from the store (see the module docstring)."""
    audit = [AuditAction.from_dict(r) for r in store.query("actions", key=incident.id)]
    anomalies = []
    for aid in incident.anomaly_ids:
        row = store.get("anomalies", aid)
        if row is not None:
            anomalies.append(Anomaly.from_dict(row))
    drow = store.get("diagnoses", incident.id)
    diagnosis = diagnosis_from_dict(drow) if drow is not None else None
    prs = store.query("pull_requests", key=incident.id)
    pr = max(prs, key=lambda r: rfc3339_to_ns(r["created_at"])) if prs else None
    remediation = remediation_from_pull_request(pr, audit, outcome) if pr is not None else None

    # The incident as it ends: the responder may hand it over still `verifying`.
    result = str(outcome.get("result", "unknown"))
    if result == "resolved" and incident.state not in ("resolved", "recovered"):
        incident = dataclasses.replace(incident, state="resolved")
    elif result != "resolved" and incident.state != "escalated":
        incident = dataclasses.replace(incident, state="escalated")

    onset = min([a.onset for a in anomalies] + [incident.opened_at])
    ends = [incident.recovered_at, incident.updated_at, *(a.at for a in audit)]
    end = max(t for t in ends if t is not None)
    since = onset - int(before_s * NS_PER_S)
    until = end + int(after_s * NS_PER_S)
    keys = {(a.kind, a.service or "", a.operation or a.cuj or a.metric or "") for a in anomalies}
    services = set(incident.services)
    signals = []
    for row in _signal_rows(store, since, until):
        w = SignalWindow.from_dict(row)
        # The anomalous keys, every span and metric series of the incident's services, and the
        # journeys (conversions lost are counted on them even when no CUJ anomaly fired).
        if (
            w.key in keys
            or w.kind == "cuj"
            or (w.service in services and w.kind in ("span", "metric"))
        ):
            signals.append(w)
    return LearnInputs(incident, anomalies, diagnosis, remediation, audit, signals)
