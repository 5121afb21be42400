"""Degradation with audit: when the LLM or GitHub fails, the responder retries with backoff, then
carries on deterministically, and the audit log says what degraded and why.

LLM: down (connection refused), slow (every call times out), hostile (malformed JSON, a reply naming
things outside the evidence), through the real `openai` client. The diagnosis keeps its
deterministic summary, the Fixer still acts on the deterministic ranking, and the audit log has a
`narration_degraded` row with the reason.

GitHub (PyGithub against `tests.fixer.fake_github`): 5xx and rate limits on the pull request
are retried with backoff (Retry-After, X-RateLimit-Reset, exponential), then the step fails with the
reason in the audit log, waits, and escalates; when the tracker is down too, the escalation and the
post-mortem are still recorded in the audit log (outcome `degraded`) instead of looping.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sinks.brain.engine import Analysis, analyze
from sinks.brain.narrate import NarrationConfig, NarrationResult, narrate
from sinks.fixer.fixer import Fixer
from sinks.fixer.forge import Forge
from sinks.fixer.forge_github import GithubForge
from sinks.fixer.forge_local import LocalForge
from sinks.fixer.github_client import RetryPolicy, make_github
from sinks.fixer.policy import Policy, PolicyConfig
from sinks.fixer.reconciler import ReconcileResult
from sinks.fixer.tracker import GithubTracker, IncidentTracker, LocalTracker
from sinks.store.sqlite import Store
from sre_space.records import Diagnosis
from sre_space.responders.machine import HealthSample, Progress, Responder, ResponderSteps
from sre_space.timeutil import rfc3339_to_ns
from tests.brain import synth
from tests.brain.fake_llm import FakeLLM, Reply
from tests.fixer.fake_github import FakeGithub
from tests.fixer.helpers import SCHEMA, manifest

from .pipeline import CULPRIT, FAULT, INCIDENT, NOW, SEED, TRACES, gitops_repo, good_reply

pytestmark = pytest.mark.llm

KEY = "sk-test-degradation-0123456789"
TOKEN = "ghp_" + "Dg7k" * 9


@pytest.fixture(scope="module")
def analysis() -> Analysis:
    shop = synth.generate(FAULT, SEED, traces_per_window=TRACES)
    return analyze(
        shop.spans,
        synth.INCIDENT,
        synth.BASELINE,
        metrics=shop.metrics,
        commits=shop.commits,
        incident_id=INCIDENT.id,
    )


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    yield server
    server.close()


class Reconciled:
    """A reconciler that always deploys."""

    def apply(self, commit_sha: str) -> ReconcileResult:
        return ReconcileResult(True, f"applied {commit_sha[:8]}")


def build_responder(
    store: Store,
    forge: Forge,
    tracker: IncidentTracker,
    diagnosis: Diagnosis,
    narrate_step: Callable[[Diagnosis], Any] | None = None,
    max_step_attempts: int = 5,
) -> Responder:
    """A responder over a forge and tracker; the Brain's answer is fixed, health always good."""
    fixer = Fixer(forge, store, Policy(PolicyConfig(auto_merge=("rollback_version",))))
    steps = ResponderSteps(
        diagnose=lambda incident: diagnosis,
        remediate=fixer.remediate,
        revert=fixer.revert,
        health=lambda incident, now, applied_at: HealthSample(now, True, "back to baseline"),
        postmortem=lambda incident, outcome: f"# {incident.id}: {outcome['result']}",
        narrate=narrate_step,
    )
    return Responder(store, steps, tracker, Reconciled(), max_step_attempts=max_step_attempts)


def audit_rows(store: Store, action: str) -> list[dict[str, Any]]:
    return [r for r in store.query("actions", key=INCIDENT.id) if r["action"] == action]


# --- the LLM ------------------------------------------------------------------------------------


def _refused_url() -> str:
    """An OpenAI base URL on a local port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _unknown_trace_reply(a: Analysis) -> str:
    return good_reply(a).replace('"summary": "', '"summary": "See trace ' + "f" * 32 + ". ", 1)


LLM_FAILURES: dict[str, tuple[Callable[[FakeLLM, Analysis], str], list[float], str]] = {
    # name: (set the endpoint up and return its base URL, expected backoff sleeps, reason words)
    "down": (lambda llm, a: _refused_url(), [0.5, 1.0], "error after 3 attempt(s): APIConnection"),
    "slow": (
        lambda llm, a: (
            llm.replies.extend(Reply(good_reply(a), delay_s=1.0) for _ in range(3)),
            llm.base_url,
        )[1],
        [0.5, 1.0],
        "error after 3 attempt(s): APITimeoutError",
    ),
    "5xx": (
        lambda llm, a: (
            llm.replies.extend(Reply(status=503, raw="{}") for _ in range(3)),
            llm.base_url,
        )[1],
        [0.5, 1.0],
        "error after 3 attempt(s): InternalServerError",
    ),
    "malformed": (
        lambda llm, a: (llm.replies.append(Reply("{'summary': not json")), llm.base_url)[1],
        [],
        "rejected after 1 attempt(s): reply is not JSON",
    ),
    "out-of-evidence": (
        lambda llm, a: (llm.replies.append(Reply(_unknown_trace_reply(a))), llm.base_url)[1],
        [],
        "rejected after 1 attempt(s): unknown trace id",
    ),
}


@pytest.mark.parametrize("failure", list(LLM_FAILURES))
def test_llm_failure_degrades_to_the_deterministic_summary_and_is_audited(
    failure: str, analysis: Analysis, llm: FakeLLM, tmp_path: Path
) -> None:
    setup, backoff, reason = LLM_FAILURES[failure]
    base_url = setup(llm, analysis)
    config = NarrationConfig(base_url=base_url, api_key=KEY, timeout_s=0.3, backoff_s=0.5)
    sleeps: list[float] = []

    def narrate_step(d: Diagnosis) -> Any:
        return narrate(d, config, known_services=analysis.report.services, sleep=sleeps.append)

    store = Store(tmp_path / "sre.db")
    forge = LocalForge(gitops_repo(tmp_path), store)
    tracker = LocalTracker(store)
    responder = build_responder(store, forge, tracker, analysis.diagnosis, narrate_step)
    responder.start(INCIDENT, NOW)
    p = responder.run(INCIDENT.id, NOW)
    # Retried with exponential backoff where retrying helps, not at all where it does not.
    assert sleeps == backoff
    # The audit log says the narrative degraded, and why.
    (row,) = audit_rows(store, "narration_degraded")
    assert reason in row["reason"] and "deterministic summary stands" in row["reason"]
    assert row["outcome"] == "degraded" and row["actor"] == "responder"
    assert not audit_rows(store, "narrated")
    # Deterministic from there on: the summary is the diagnosis, and the Fixer acted on the ranking.
    assert p.data["diagnosis"].get("narrative") is None
    assert p.data["diagnosis"]["summary"] == analysis.diagnosis.summary
    assert p.step == "verify" and p.data["merge_sha"]
    pr = forge.get(f"{INCIDENT.id}/rollback_version")
    assert pr is not None and pr.state == "merged" and pr.service == CULPRIT
    doc = tracker.issue_doc(INCIDENT.id)
    assert (
        doc is not None and analysis.diagnosis.summary.splitlines()[0] in doc["comments"][0]["body"]
    )
    store.close()


def test_llm_recovering_within_its_retries_is_used_and_audited(
    analysis: Analysis, llm: FakeLLM, tmp_path: Path
) -> None:
    llm.replies += [Reply(status=502, raw="{}"), Reply(good_reply(analysis))]
    config = NarrationConfig(base_url=llm.base_url, api_key=KEY, timeout_s=2.0, backoff_s=0.5)
    sleeps: list[float] = []
    store = Store(tmp_path / "sre.db")
    responder = build_responder(
        store,
        LocalForge(gitops_repo(tmp_path), store),
        LocalTracker(store),
        analysis.diagnosis,
        lambda d: narrate(d, config, known_services=analysis.report.services, sleep=sleeps.append),
    )
    responder.start(INCIDENT, NOW)
    p = responder.run(INCIDENT.id, NOW)
    assert sleeps == [0.5] and len(llm.requests) == 2
    assert p.data["diagnosis"]["narrative"].startswith(f"{CULPRIT} runs out of memory")
    assert audit_rows(store, "narrated") and not audit_rows(store, "narration_degraded")
    store.close()


def test_a_narrator_that_raises_is_audited_and_does_not_stop_the_response(
    analysis: Analysis, tmp_path: Path
) -> None:
    def broken(d: Diagnosis) -> Any:
        raise RuntimeError("narrator bug")

    store = Store(tmp_path / "sre.db")
    responder = build_responder(
        store,
        LocalForge(gitops_repo(tmp_path), store),
        LocalTracker(store),
        analysis.diagnosis,
        broken,
    )
    responder.start(INCIDENT, NOW)
    p = responder.run(INCIDENT.id, NOW)
    (row,) = audit_rows(store, "narration_degraded")
    assert "RuntimeError: narrator bug" in row["reason"]
    assert p.step == "verify"
    store.close()


# --- GitHub -------------------------------------------------------------------------------------


@pytest.fixture
def github() -> Iterator[FakeGithub]:
    files = {
        f"services/{CULPRIT}.yaml": manifest(CULPRIT, **{'"1.4.1"': '"1.2.9"'}),
        "schema/service.schema.json": json.dumps(SCHEMA),
    }
    server = FakeGithub("acme", "gitops", files, TOKEN).start()
    server.push(
        f"services/{CULPRIT}.yaml",
        manifest(CULPRIT, **{'"1.4.1"': '"1.3.0"'}),
        "payment: deploy version 1.3.0",
    )
    yield server
    server.stop()


def _github_responder(
    github: FakeGithub, store: Store, sleeps: list[float], diagnosis: Diagnosis
) -> Responder:
    retry = RetryPolicy(
        attempts=3, base_delay_s=0.5, sleep=sleeps.append, clock=lambda: 1_800_000_000.0
    )
    gh = make_github(TOKEN, base_url=github.api, polite=False)
    forge = GithubForge(gh, "acme/gitops", store, retry=retry, secrets=[TOKEN])
    tracker = GithubTracker(store, gh, "acme/gitops", retry=retry, secrets=[TOKEN])
    return build_responder(store, forge, tracker, diagnosis, max_step_attempts=2)


GITHUB_FAILURES: dict[str, tuple[int, dict[str, str], str, list[float]]] = {
    # name: (status, headers, message, backoff sleeps of one step: 3 attempts)
    "502": (502, {}, "Bad Gateway", [0.5, 1.0]),
    "503": (503, {}, "Service Unavailable", [0.5, 1.0]),
    "429-retry-after": (429, {"Retry-After": "3"}, "Too Many Requests", [3.0, 3.0]),
    "403-rate-limit": (
        403,
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1800000007"},
        "API rate limit exceeded for user ID 1.",
        [7.0, 7.0],
    ),
}


@pytest.mark.parametrize("failure", list(GITHUB_FAILURES))
def test_github_failures_are_retried_then_escalated_with_the_reason_audited(
    failure: str, github: FakeGithub, analysis: Analysis, tmp_path: Path
) -> None:
    status, headers, message, backoff = GITHUB_FAILURES[failure]
    github.fail("POST", r"/pulls$", status, headers=headers, message=message, times=100)
    store = Store(tmp_path / "sre.db")
    sleeps: list[float] = []
    responder = _github_responder(github, store, sleeps, analysis.diagnosis)
    responder.start(INCIDENT, NOW)
    p = responder.run(INCIDENT.id, NOW)
    assert p.step == "remediate" and p.status == "waiting"
    assert sleeps == backoff  # one step: 3 attempts, the delays GitHub asked for or exponential
    (error,) = audit_rows(store, "step_error")
    assert f"GitHub open pull request failed ({status})" in error["reason"]
    assert message[:20] in error["reason"]
    p = responder.advance(INCIDENT.id, rfc3339_to_ns("2025-11-24T16:11:00.000Z"))
    assert p.step == "postmortem" and p.data["outcome"]["result"] == "error"
    assert len(audit_rows(store, "step_error")) == 2
    (escalation,) = audit_rows(store, "escalate")
    assert escalation["outcome"] == "done"
    assert (
        f"step remediate failed 2 times: GitHub open pull request failed ({status})"
        in (escalation["reason"])
    )
    # The person who gets the incident is told on the issue; no pull request was opened.
    (issue_number,) = [n for n, item in github.items.items() if item["kind"] == "issue"]
    assert "needs-human" in github.items[issue_number]["labels"]
    bodies = [c["body"] for c in github.comments.get(issue_number, [])]
    assert any("step=escalation" in b and "failed 2 times" in b for b in bodies)
    assert len(github.calls("POST", r"/pulls$")) == 2 * 3  # two steps, three attempts each
    assert TOKEN not in str(store.query("actions", key=INCIDENT.id))
    store.close()


def test_github_down_for_everything_still_ends_with_an_audited_escalation(
    github: FakeGithub, analysis: Analysis, tmp_path: Path
) -> None:
    store = Store(tmp_path / "sre.db")
    sleeps: list[float] = []
    responder = _github_responder(github, store, sleeps, analysis.diagnosis)
    responder.start(INCIDENT, NOW)  # the issue is open; then GitHub goes down
    for method in ("GET", "POST", "PUT", "PATCH"):
        github.fail(method, r".", 503, message="Service Unavailable", times=10_000)
    minutes = iter(range(11, 30))
    p: Progress | None = None
    for _ in range(12):
        p = responder.advance(
            INCIDENT.id, rfc3339_to_ns(f"2025-11-24T16:{next(minutes):02d}:00.000Z")
        )
        if p.step == "done":
            break
    assert p is not None and p.step == "done" and p.status == "done"
    assert p.data["outcome"]["result"] == "error"
    (escalation,) = audit_rows(store, "escalate")
    assert escalation["outcome"] == "degraded"
    assert "not posted: the tracker failed" in escalation["reason"]
    assert "503" in escalation["reason"]
    (unposted,) = audit_rows(store, "postmortem_not_posted")
    assert unposted["outcome"] == "degraded" and "503" in unposted["reason"]
    assert all(s <= 2.0 for s in sleeps) and sleeps[:2] == [0.5, 1.0]
    store.close()


def test_narration_result_degraded_reason() -> None:
    assert NarrationResult("ok", "x").degraded == ""
    assert NarrationResult("disabled", "x", "no API key configured").degraded == ""
    budget = replace(NarrationResult("budget_exhausted", "x", "spent"), attempts=[])
    assert (
        budget.degraded == "LLM narrative budget_exhausted: spent; the deterministic summary stands"
    )
