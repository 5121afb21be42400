"""Responder: the persisted state machine end to end on a real git forge, and crash/resume."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sinks.fixer.fixer import Fixer
from sinks.fixer.forge import ForgeResult
from sinks.fixer.forge_local import LocalForge
from sinks.fixer.policy import Policy, PolicyConfig, VerificationConfig
from sinks.fixer.reconciler import ReconcileResult
from sinks.fixer.tracker import IssueRef, LocalTracker
from sinks.store.sqlite import Store
from sre_space.records import ActionRequest, Diagnosis, Incident
from sre_space.responders.machine import HealthSample, Progress, Responder, ResponderSteps
from sre_space.timeutil import rfc3339_to_ns

from .helpers import INCIDENT, diagnosis, git


class Crash(Exception):
    """A simulated process crash."""


def at(minute: int) -> int:
    return rfc3339_to_ns(f"2026-11-28T10:{minute:02d}:00.000Z")


@dataclass
class RecordingReconciler:
    applied: list[str] = field(default_factory=list)
    failures: int = 0

    def apply(self, commit_sha: str) -> ReconcileResult:
        self.applied.append(commit_sha)
        if self.failures > 0:
            self.failures -= 1
            return ReconcileResult(False, "rollout stuck")
        return ReconcileResult(True, f"applied {commit_sha[:8]}")


@dataclass
class World:
    """Everything a process holds; `restart()` builds fresh objects over the same store and repo."""

    repo: Path
    db: Path
    healthy: bool = True
    remediation: ActionRequest = field(
        default_factory=lambda: ActionRequest("rollback_version", "checkout")
    )
    approval: bool = False
    reconciler: RecordingReconciler = field(default_factory=RecordingReconciler)
    crash_step: str | None = None
    crash_in: str | None = None
    crashed: bool = False
    postmortems: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.restart()

    def policy(self) -> Policy:
        actions = ("rollback_version", "raise_memory_limit", "scale_replicas")
        return Policy(
            PolicyConfig(
                auto_merge=() if self.approval else actions,
                require_approval=actions if self.approval else (),
                verification=VerificationConfig(healthy_windows=3, deadline_minutes=10),
            )
        )

    def restart(self) -> None:
        self.store = Store(self.db)
        self.forge = LocalForge(self.repo, self.store)
        self.tracker = LocalTracker(self.store)
        self.fixer = Fixer(self.forge, self.store, self.policy())
        world = self

        class Crashing(Responder):
            def _save(self, progress: Progress) -> Progress:
                prev = self.get(progress.incident_id)
                if (
                    not world.crashed
                    and prev is not None
                    and prev.step == world.crash_step
                    and progress.step != world.crash_step
                ):
                    world.crashed = True
                    raise Crash(f"after {world.crash_step}")
                return super()._save(progress)

        orig_merge, orig_comment = self.forge.merge, self.tracker._create_comment

        def merge(pr_id: str, now: int) -> ForgeResult:
            result = orig_merge(pr_id, now)
            if world.crash_in == "merge" and not world.crashed:
                world.crashed = True
                raise Crash("after git merge")
            return result

        def comment(ref: IssueRef, body: str, when: str) -> None:
            orig_comment(ref, body, when)
            if world.crash_in == "comment" and not world.crashed:
                world.crashed = True
                raise Crash("after posting a comment")

        self.forge.merge = merge  # type: ignore[method-assign]
        self.tracker._create_comment = comment  # type: ignore[method-assign,assignment]
        steps = ResponderSteps(
            diagnose=self.diagnose,
            remediate=self.fixer.remediate,
            revert=self.fixer.revert,
            health=self.health,
            postmortem=self.postmortem,
        )
        self.responder = Crashing(
            self.store,
            steps,
            self.tracker,
            self.reconciler,
            verification=self.policy().config.verification,
        )

    def diagnose(self, incident: Incident) -> Diagnosis:
        d = diagnosis()
        cand = d.candidates[0]
        cand = type(cand).from_dict(
            {**cand.to_dict(), "evidence": cand.evidence, "actions": [self.remediation.to_dict()]}
        )
        return Diagnosis.from_dict({**d.to_dict(), "candidates": [cand]})

    def health(self, incident: Incident, now: int, applied_at: int) -> HealthSample:
        return HealthSample(window_end=now, healthy=self.healthy, detail="error rate vs baseline")

    def postmortem(self, incident: Incident, outcome: dict[str, Any]) -> str:
        self.postmortems.append(outcome)
        return f"# Post-mortem {incident.id}\n\nOutcome: {outcome['result']}"

    def drive(self, start: int = 0, limit: int = 40) -> Progress:
        self.responder.start(INCIDENT, at(start))
        minute = start
        p = self.responder.get(INCIDENT.id)
        assert p is not None
        while p.step != "done" and minute < start + limit:
            try:
                p = self.responder.run(INCIDENT.id, at(minute))
            except Crash:
                self.restart()  # a new process: same store file, same repository
                continue  # and the same event time again
            minute += 1
        return p


@pytest.fixture
def world(manifests_repo: Path, tmp_path: Path) -> World:
    return World(manifests_repo, tmp_path / "sre.db")


def comment_steps(world: World) -> list[str]:
    doc = world.tracker.issue_doc(INCIDENT.id)
    assert doc is not None
    return [c["body"].split("step=")[1].split(" -->")[0] for c in doc["comments"]]


def test_fix_that_works_is_merged_deployed_verified_and_closed(world: World) -> None:
    p = world.drive()
    assert p.step == "done" and p.data["outcome"]["result"] == "resolved"
    main = world.forge.head()
    assert world.reconciler.applied == [main]
    assert 'version: "1.4.1"' in (world.forge.read("services/checkout.yaml") or "")
    doc = world.tracker.issue_doc(INCIDENT.id)
    assert doc is not None and doc["state"] == "closed"
    assert doc["labels"] == ["sre-space", "incident", "state:resolved", "severity:critical"]
    assert comment_steps(world) == [
        "diagnosis",
        "pull_request:rollback_version",
        "verification:1",
        "postmortem",
    ]
    actions = [(a["actor"], a["action"]) for a in world.store.query("actions", key=INCIDENT.id)]
    for expected in [
        ("responder", "diagnosed"),
        ("fixer", "policy_auto_merge"),
        ("fixer", "merge"),
        ("responder", "deployed"),
        ("responder", "verified"),
    ]:
        assert expected in actions
    verify_rows = [
        a for a in world.store.query("actions", key=INCIDENT.id) if a["action"] == "verify_window"
    ]
    assert len(verify_rows) == 3 and all(r["inputs"]["healthy"] for r in verify_rows)


def test_fix_that_does_not_help_is_reverted_and_escalated(world: World) -> None:
    world.healthy = False
    p = world.drive()
    assert p.step == "done" and p.data["outcome"]["result"] == "reverted"
    log = git(world.repo, "log", "--format=%s", "main")
    assert log.splitlines()[0].startswith('Revert "Merge sre/inc-7/rollback_version')
    assert 'version: "1.4.2"' in (world.forge.read("services/checkout.yaml") or "")
    merge_sha, revert_sha = git(world.repo, "rev-parse", "main~1", "main").split()
    assert world.reconciler.applied == [merge_sha, revert_sha]
    doc = world.tracker.issue_doc(INCIDENT.id)
    assert doc is not None and doc["state"] == "open"
    assert "state:escalated" in doc["labels"] and "needs-human" in doc["labels"]
    assert comment_steps(world) == [
        "diagnosis",
        "pull_request:rollback_version",
        "verification:1",
        "escalation",
        "postmortem",
    ]
    pr = world.forge.get("inc-7/rollback_version")
    assert pr is not None and pr.state == "reverted" and "deadline" in (pr.revert_reason or "")
    assert world.postmortems[-1]["result"] == "reverted"


@pytest.mark.parametrize("healthy", [True, False], ids=["resolved", "reverted"])
@pytest.mark.parametrize(
    "crash",
    ["diagnose", "remediate", "deploy", "verify", "postmortem", "in:merge", "in:comment"],
)
def test_a_crash_at_any_step_resumes_without_duplicates(
    world: World, crash: str, healthy: bool
) -> None:
    world.healthy = healthy
    if crash.startswith("in:"):
        world.crash_in = crash[3:]
    else:
        world.crash_step = crash
    p = world.drive()
    assert world.crashed, "the crash point was never reached"
    assert p.step == "done"
    assert p.data["outcome"]["result"] == ("resolved" if healthy else "reverted")
    assert world.store.count("pull_requests") == 1
    refs = git(world.repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()
    assert sorted(refs) == ["main", "sre/inc-7/rollback_version"]
    assert git(world.repo, "rev-list", "--merges", "--count", "main").strip() == "1"
    reverts = git(world.repo, "log", "--format=%s", "main").count("Revert ")
    assert reverts == (0 if healthy else 1)
    steps = comment_steps(world)
    assert len(steps) == len(set(steps))
    issues = world.store.query("tracker", key="local-issue")
    assert len(issues) == 1
    assert len(set(world.reconciler.applied)) == (1 if healthy else 2)
    rows = world.store.query("actions", key=INCIDENT.id)
    keys = [(a["actor"], a["action"], a["inputs"].get("window_end")) for a in rows]
    assert len(keys) == len(set(keys))


def test_approval_waits_then_merges(world: World) -> None:
    world.approval = True
    world.restart()
    world.responder.start(INCIDENT, at(0))
    p = world.responder.run(INCIDENT.id, at(0))
    assert p.step == "remediate" and p.status == "waiting"
    assert "approval" in p.data["pending_reason"]
    doc = world.tracker.issue_doc(INCIDENT.id)
    assert doc is not None and "awaiting-approval" in doc["labels"]
    assert world.responder.run(INCIDENT.id, at(1)).step == "remediate"
    world.forge.approve("inc-7/rollback_version", "alice", at(2))
    p = world.responder.run(INCIDENT.id, at(2))
    assert p.step == "verify"
    assert world.forge.get("inc-7/rollback_version").approved_by == "alice"  # type: ignore[union-attr]


def test_refused_recommendation_escalates_without_a_change(world: World) -> None:
    world.remediation = ActionRequest("delete_namespace", "checkout", {"name": "prod"})
    p = world.drive()
    assert p.step == "done" and p.data["outcome"]["result"] == "no_change"
    assert "unknown action" in p.data["outcome"]["detail"]
    assert git(world.repo, "for-each-ref", "--format=%(refname:short)").split() == ["main"]
    assert comment_steps(world) == ["diagnosis", "escalation", "postmortem"]


def test_deploy_failures_revert_and_escalate(world: World) -> None:
    world.reconciler.failures = 10
    p = world.drive()
    assert p.step == "done" and p.data["outcome"]["result"] == "reverted"
    assert "deploy of" in p.data["outcome"]["detail"]
    pr = world.forge.get("inc-7/rollback_version")
    assert pr is not None and pr.state == "reverted"


def test_forge_errors_wait_then_escalate(world: World) -> None:
    from sinks.fixer.forge import ForgeError

    def broken(*args: object) -> object:
        raise ForgeError("GitHub open pull request failed (502): Bad Gateway")

    world.responder.steps = ResponderSteps(
        diagnose=world.diagnose,
        remediate=broken,  # type: ignore[arg-type]
        revert=world.fixer.revert,
        health=world.health,
        postmortem=world.postmortem,
    )
    world.responder.start(INCIDENT, at(0))
    p = world.responder.run(INCIDENT.id, at(0))
    assert p.step == "remediate" and p.status == "waiting" and "502" in p.data["last_error"]
    for minute in range(1, 5):
        p = world.responder.advance(INCIDENT.id, at(minute))
    assert p.step == "postmortem" and p.data["outcome"]["result"] == "error"
    errors = [
        a for a in world.store.query("actions", key=INCIDENT.id) if a["action"] == "step_error"
    ]
    assert len(errors) == 5


def test_approval_timeout_escalates_and_leaves_the_pr_open(world: World) -> None:
    world.approval = True
    world.restart()
    world.responder.start(INCIDENT, at(0))
    world.responder.run(INCIDENT.id, at(0))
    p = world.responder.run(INCIDENT.id, at(59))
    assert p.step == "remediate" and p.status == "waiting"
    p = world.responder.run(INCIDENT.id, rfc3339_to_ns("2026-11-28T11:00:00.000Z"))
    assert p.step == "done" and p.data["outcome"]["result"] == "approval_timeout"
    pr = world.forge.get("inc-7/rollback_version")
    assert pr is not None and pr.state == "open"


def test_recovery_before_any_change_closes_without_a_change(world: World) -> None:
    world.responder.start(INCIDENT, at(0))
    world.responder.advance(INCIDENT.id, at(0))  # diagnosed
    recovered = Incident.from_dict({**INCIDENT.to_dict(), "state": "recovered"})
    p = world.responder.observe(recovered, at(1))
    assert p is not None and p.step == "postmortem"
    p = world.responder.run(INCIDENT.id, at(1))
    assert p.step == "done" and p.data["outcome"]["result"] == "recovered_without_change"
    assert git(world.repo, "for-each-ref", "--format=%(refname:short)").split() == ["main"]
    doc = world.tracker.issue_doc(INCIDENT.id)
    assert doc is not None and doc["state"] == "closed"
