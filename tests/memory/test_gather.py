"""The responder's postmortem step: inputs read back from store rows shaped as the other stages write them."""

from __future__ import annotations

import dataclasses
from typing import Any

from sinks.memory.gather import diagnosis_from_dict, gather, remediation_from_pull_request
from sinks.memory.memory import Memory
from sinks.memory.postmortem import build_postmortem
from sinks.store.sqlite import Store
from sre_space.records import AuditAction, SignalWindow
from sre_space.timeutil import ns_to_rfc3339, rfc3339_to_ns
from tests.memory.synthetic import SLOS, Case, make_case

OLD = 'service: payment\nversion: "2.4.1"\nreplicas: 2\n'
NEW = 'service: payment\nversion: "2.4.0"\nreplicas: 2\n'


def _pr_row(c: Case, state: str) -> dict[str, Any]:
    """A pull request row as the Fixer's forge stores it (`sinks/fixer/forge.py`)."""
    r = c.remediation
    return {
        "id": f"{c.incident.id}/{r.action}",
        "forge": "local",
        "incident_id": c.incident.id,
        "action": r.action,
        "service": r.service,
        "branch": f"sre/{c.incident.id}",
        "title": f"{r.action} {r.service}",
        "body": "evidence...",
        "labels": ["sre-space"],
        "change": {
            "action": r.action,
            "service": r.service,
            "params": r.params,
            "path": f"services/{r.service}.yaml",
            "old_text": OLD,
            "new_text": NEW,
            "summary": "roll back",
        },
        "merge_mode": "auto_merge",
        "created_at": r.to_dict().get("opened_at"),
        "updated_at": r.to_dict().get("merged_at"),
        "state": state,
        "merge_sha": r.commit_sha,
        "number": int(r.pr_id or 0),
        "url": r.pr_url,
        "checks": [{"name": "schema", "ok": True, "detail": ""}],
    }


def _fill(store: Store, c: Case, state: str) -> None:
    for w in c.signals:
        kind, svc, name = w.key
        key = f"{kind}|{svc}|{name}"
        start = ns_to_rfc3339(w.window_start)
        store.upsert("signals", f"{key}|{start}", w.to_dict(), ts=start, key=key)
    # noise: another service in the same time range, and the incident's key a day earlier
    w0 = c.signals[0]
    noise = SignalWindow(
        kind="span",
        window_start=w0.window_start,
        window_end=w0.window_end,
        service="ads",
        operation="GET /ads",
        count=50,
        errors=50,
    )
    store.upsert(
        "signals",
        "span|ads|GET /ads|x",
        noise.to_dict(),
        ts=ns_to_rfc3339(w0.window_start),
        key="span|ads|GET /ads",
    )
    old = dataclasses.replace(
        w0,
        window_start=rfc3339_to_ns("2020-01-01T00:00:00.000Z"),
        window_end=rfc3339_to_ns("2020-01-01T00:00:10.000Z"),
        errors=999,
    )
    store.upsert("signals", "old", old.to_dict(), ts=ns_to_rfc3339(old.window_start), key="x")
    for a in c.anomalies:
        store.upsert("anomalies", a.id, a.to_dict(), ts=ns_to_rfc3339(a.onset), key=a.service or "")
    store.upsert(
        "diagnoses",
        c.incident.id,
        c.diagnosis.to_dict(),
        ts=ns_to_rfc3339(c.diagnosis.window_end),
        key=c.incident.id,
    )
    for i, act in enumerate(c.audit):
        store.upsert(
            "actions", f"audit:{i}", act.to_dict(), ts=ns_to_rfc3339(act.at), key=c.incident.id
        )
    store.upsert(
        "pull_requests",
        f"local:{c.incident.id}",
        _pr_row(c, state),
        ts=str(c.remediation.to_dict()["opened_at"]),
        key=c.incident.id,
    )


def test_postmortem_step_from_store_rows(memory: Memory) -> None:
    c = make_case("errors", 3)
    _fill(memory.store, c, "merged")
    handed_over = dataclasses.replace(c.incident, state="verifying")  # as the responder has it
    outcome = {
        "result": "resolved",
        "detail": "3 consecutive healthy windows (needed 3).",
        "pr_id": "x",
    }
    inputs = gather(memory.store, handed_over, outcome)
    assert inputs.incident.state == "resolved"
    assert sorted(inputs.signals, key=lambda w: (w.key, w.window_start)) == sorted(
        c.signals, key=lambda w: (w.key, w.window_start)
    )
    assert inputs.anomalies == c.anomalies
    assert inputs.diagnosis == c.diagnosis
    assert [a.action for a in inputs.audit] == [a.action for a in c.audit]

    text = memory.postmortem_step(handed_over, outcome)
    pm = memory.store.get("postmortems", c.incident.id)
    assert pm is not None and text.endswith(pm["markdown"])
    direct = build_postmortem(
        c.incident, c.anomalies, c.diagnosis, c.remediation, c.audit, c.signals, slos=SLOS
    )
    for figure in (
        "failed_requests",
        "requests",
        "conversions_lost",
        "duration_s",
        "time_to_detect_s",
    ):
        assert pm[figure] == getattr(direct, figure), figure
    assert pm["outcome"] == "verified" and pm["action"] == "rollback_version"
    md = pm["markdown"]
    assert (
        f"a/services/{c.remediation.service}.yaml" in md
        and '-version: "2.4.1"' in md
        and '+version: "2.4.0"' in md
    )
    assert "Verification passed at" in md and "3 consecutive healthy windows (needed 3)" in md
    assert str(c.remediation.pr_url) in md


def test_reverted_pull_request_becomes_an_avoided_action(memory: Memory) -> None:
    c = make_case("crashloop", 2, outcome="reverted")
    _fill(memory.store, c, "reverted")
    text = memory.postmortem_step(
        c.incident, {"result": "reverted", "detail": "signals not back by the deadline"}
    )
    assert "outcome **reverted**" in text
    assert memory.avoided_actions(c.incident.fingerprint) == [c.remediation.action]


def test_no_change_and_missing_rows_are_tolerated(memory: Memory) -> None:
    c = make_case("queue_lag", 2, outcome="escalated")
    text = memory.postmortem_step(c.incident, {"result": "no_change", "detail": "policy refused"})
    row = memory.store.get("postmortems", c.incident.id)
    assert row is not None and row["outcome"] == "escalated" and row["action"] == ""
    assert "No diagnosis was recorded" in text and "No automated remediation was applied" in text


def test_pull_request_mapping() -> None:
    c = make_case("oom", 1)
    audit = [
        AuditAction(rfc3339_to_ns("2026-11-18T00:00:05.000Z"), "fixer", "merge", "auto"),
        AuditAction(rfc3339_to_ns("2026-11-18T00:00:09.000Z"), "responder", "deployed", "ok"),
    ]
    r = remediation_from_pull_request(
        _pr_row(c, "merged"), audit, {"result": "error", "detail": "boom"}
    )
    assert r.merged and r.merged_at == rfc3339_to_ns("2026-11-18T00:00:05.000Z")
    assert r.verified is None and r.escalated and r.outcome == "escalated"
    open_pr = remediation_from_pull_request(
        {**_pr_row(c, "open"), "merge_sha": None}, [], {"result": "no_change"}
    )
    assert not open_pr.merged and open_pr.outcome == "escalated"
    assert diagnosis_from_dict(c.diagnosis.to_dict()) == c.diagnosis
