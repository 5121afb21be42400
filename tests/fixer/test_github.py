"""GitHub forge and tracker through PyGithub against a local server that speaks GitHub's REST API.

Every request the server receives is checked: route, payload, the Authorization header, and that
the token appears nowhere else (bodies, comments, logs). Transient failures (5xx, rate limits) are
retried with backoff through an injected sleep, so the tests stay fast and deterministic.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sinks.fixer.fixer import Fixer
from sinks.fixer.forge import CheckResult, ForgeError
from sinks.fixer.forge_github import GithubForge
from sinks.fixer.github_client import RetryPolicy, make_github
from sinks.fixer.k8s.desired import RepositoryState
from sinks.fixer.playbook import Change, Playbook
from sinks.fixer.policy import Policy, PolicyConfig
from sinks.fixer.tracker import GithubTracker
from sinks.store.sqlite import Store
from sre_space.records import ActionRequest
from sre_space.timeutil import rfc3339_to_ns

from .fake_github import FakeGithub
from .helpers import INCIDENT, SCHEMA, diagnosis, manifest

TOKEN = "ghp_" + "Zq9x" * 9
REPO = "acme/gitops"
T0 = rfc3339_to_ns("2026-11-28T10:00:00.000Z")
POLICY_OK = CheckResult("policy", True, "raise_memory_limit may merge automatically")


@pytest.fixture
def fake() -> Iterator[FakeGithub]:
    files = {
        "services/checkout.yaml": manifest("checkout"),
        "services/cart.yaml": manifest("cart"),
        "schema/service.schema.json": json.dumps(SCHEMA),
    }
    server = FakeGithub("acme", "gitops", files, TOKEN).start()
    server.push(
        "services/checkout.yaml",
        manifest("checkout", **{'"1.4.1"': '"1.4.2"'}),
        "deploy checkout 1.4.2",
    )
    yield server
    server.stop()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def retry(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(
        attempts=4, base_delay_s=0.5, sleep=sleeps.append, clock=lambda: 1_800_000_000.0
    )


def forge_for(fake: FakeGithub, store: Store, retry: RetryPolicy, **kw: object) -> GithubForge:
    gh = make_github(TOKEN, base_url=fake.api, polite=False)
    return GithubForge(gh, REPO, store, retry=retry, secrets=[TOKEN], **kw)  # type: ignore[arg-type]


def plan(forge: GithubForge, action: str = "raise_memory_limit") -> Change:
    res = Playbook().plan(ActionRequest(action, "checkout"), forge, T0)
    assert res.change is not None, res.reason
    return res.change


def routes(fake: FakeGithub, start: int = 0) -> list[str]:
    out = []
    for r in fake.requests[start:]:
        path = r.path.removeprefix("/api/v3/repos/acme/gitops")
        out.append(f"{r.method} {path or '/'}")
    return out


def debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Capture everything, including PyGithub's request log (its logger defaults to INFO)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="github")


def assert_clean(fake: FakeGithub, caplog: pytest.LogCaptureFixture, store: Store) -> None:
    """Every request authenticated with the token; the token nowhere else."""
    assert fake.requests
    for r in fake.requests:
        assert r.headers.get("Authorization") in (f"token {TOKEN}", f"Bearer {TOKEN}"), r.path
        assert TOKEN not in json.dumps(r.body) and TOKEN not in r.path
    assert TOKEN not in caplog.text
    logged = [r for r in caplog.records if r.name.startswith("github.")]
    assert logged, "PyGithub's request log was not captured"
    assert any("Authorization" in r.getMessage() for r in logged)  # logged, but masked
    for table in ("pull_requests", "tracker", "actions"):
        assert TOKEN not in json.dumps(store.query(table))
    for comments in fake.comments.values():
        assert all(TOKEN not in c["body"] for c in comments)
    assert all(TOKEN not in (it["body"] or "") for it in fake.items.values())


def test_pull_request_flow_every_request_and_payload(
    fake: FakeGithub, store: Store, retry: RetryPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    debug_logs(caplog)
    forge = forge_for(fake, store, retry)
    change = plan(forge)
    main0 = fake.refs["main"]
    start = len(fake.requests)
    opened = forge.open_pull_request(
        "inc-7",
        change,
        title="[sre-space] raise checkout memory",
        body=f"evidence; leaked {TOKEN}",
        labels=["sre-space", "remediation"],
        merge_mode="auto_merge",
        now=T0,
    )
    assert opened.ok and opened.pr is not None
    pr = opened.pr
    branch = "sre/inc-7/raise_memory_limit"
    assert routes(fake, start) == [
        f"GET /git/ref/heads/{branch}",
        "GET /git/ref/heads/main",
        "POST /git/refs",
        "GET /contents/services/checkout.yaml",
        "GET /contents/services/checkout.yaml",
        "PUT /contents/services/checkout.yaml",
        "GET /pulls",
        "POST /pulls",
        "POST /issues/1/labels",
    ]
    reqs = fake.requests[start:]
    assert reqs[0].headers["Authorization"] == f"token {TOKEN}"
    assert reqs[2].body == {"ref": f"refs/heads/{branch}", "sha": main0}
    assert reqs[3].query == {"ref": [main0]}
    assert reqs[4].query == {"ref": [branch]}
    put = reqs[5].body
    assert put["branch"] == branch
    assert base64.b64decode(put["content"]).decode() == change.new_text
    assert put["sha"] == fake._content_json("services/checkout.yaml", change.old_text)["sha"]
    assert put["message"].startswith("[sre-space] raise checkout memory")
    assert reqs[6].query == {"state": ["all"], "head": [f"acme:{branch}"], "base": ["main"]}
    assert reqs[7].body["head"] == branch and reqs[7].body["base"] == "main"
    assert reqs[7].body["title"] == "[sre-space] raise checkout memory"
    assert "[REDACTED]" in reqs[7].body["body"]
    assert reqs[8].body == ["sre-space", "remediation"]
    assert pr.number == 1 and pr.url.endswith("/acme/gitops/pull/1")
    assert pr.base_sha == main0 and pr.head_sha == fake.refs[branch]

    start = len(fake.requests)
    checked = forge.run_checks(pr.id, POLICY_OK, T0)
    assert checked.ok, checked.reason
    assert routes(fake, start) == [
        "GET /pulls/1",
        "GET /pulls/1/files",
        "GET /contents/services/checkout.yaml",
        "GET /contents/services/checkout.yaml",
        "GET /contents/sre-space.gitops.yaml",  # no: the head is checked as service manifests
        "GET /contents/schema/service.schema.json",
        f"GET /commits/{pr.head_sha}",
        f"POST /statuses/{pr.head_sha}",
        f"POST /statuses/{pr.head_sha}",
        f"POST /statuses/{pr.head_sha}",
    ]
    assert [s["context"] for s in fake.statuses[pr.head_sha]] == [
        "sre-space/schema",
        "sre-space/scope",
        "sre-space/policy",
    ]
    assert all(s["state"] == "success" for s in fake.statuses[pr.head_sha])

    start = len(fake.requests)
    merged = forge.merge(pr.id, T0)
    assert merged.ok and merged.pr is not None
    assert routes(fake, start) == ["GET /pulls/1", "GET /pulls/1", "PUT /pulls/1/merge"]
    assert fake.requests[-1].body == {
        "merge_method": "merge",
        "commit_title": f"Merge {branch}: [sre-space] raise checkout memory",
        "commit_message": "SRE-Space-Incident: inc-7",
        "sha": pr.head_sha,
    }
    assert merged.pr.merge_sha == fake.refs["main"]
    assert fake.commits[fake.refs["main"]]["parents"] == [main0, pr.head_sha]
    assert "memory_limit_mib: 1024" in (fake.file("services/checkout.yaml") or "")
    n = len(fake.requests)
    assert forge.merge(pr.id, T0).reason == "already merged"
    assert len(fake.requests) == n  # the record answers; GitHub is not asked again

    start = len(fake.requests)
    reverted = forge.revert(pr.id, T0, "signals did not recover", RepositoryState(forge).undo)
    assert reverted.ok and reverted.pr is not None and reverted.pr.state == "reverted"
    revert_branch = "sre/inc-7/revert-raise_memory_limit"
    assert routes(fake, start) == [
        "GET /pulls",  # a revert that already landed is found, not made again
        # The inverse is planned on main's logical document and validated like any change.
        "GET /contents/sre-space.gitops.yaml",
        "GET /contents/services/checkout.yaml",
        "GET /contents/sre-space.gitops.yaml",
        "GET /contents/schema/service.schema.json",
        f"GET /git/ref/heads/{revert_branch}",
        "GET /git/ref/heads/main",
        "POST /git/refs",
        "GET /contents/services/checkout.yaml",
        "GET /contents/services/checkout.yaml",
        "PUT /contents/services/checkout.yaml",
        "GET /pulls",
        "POST /pulls",
        "POST /issues/2/labels",
        "GET /pulls/2",
        "PUT /pulls/2/merge",
    ]
    revert_pr = fake.requests[start + 12].body
    assert revert_pr["title"] == "Revert: [sre-space] raise checkout memory"
    assert "Reverts #1 because verification failed: signals did not recover" in revert_pr["body"]
    assert "<!-- sre-space:incident=inc-7 step=revert:raise_memory_limit -->" in revert_pr["body"]
    assert fake.file("services/checkout.yaml") == change.old_text
    assert reverted.pr.revert_number == 2 and reverted.pr.revert_sha == fake.refs["main"]
    assert_clean(fake, caplog, store)


def test_open_is_idempotent_and_adopts_what_a_crash_left(
    fake: FakeGithub,
    store: Store,
    retry: RetryPolicy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    debug_logs(caplog)
    forge = forge_for(fake, store, retry)
    change = plan(forge)
    kw = {"title": "t", "body": "b", "labels": ["sre-space"], "merge_mode": "auto_merge", "now": T0}
    first = forge.open_pull_request("inc-7", change, **kw)  # type: ignore[arg-type]
    n = len(fake.requests)
    again = forge.open_pull_request("inc-7", change, **kw)  # type: ignore[arg-type]
    assert again.pr == first.pr and len(fake.requests) == n
    # A new process whose store lost the record: branch, commit and PR exist on GitHub.
    fresh = forge_for(fake, Store(tmp_path / "fresh.db"), retry)
    start = len(fake.requests)
    adopted = fresh.open_pull_request("inc-7", change, **kw)  # type: ignore[arg-type]
    assert adopted.ok and adopted.pr is not None and first.pr is not None
    assert (adopted.pr.number, adopted.pr.head_sha, adopted.pr.base_sha) == (
        first.pr.number,
        first.pr.head_sha,
        first.pr.base_sha,
    )
    assert all(r.method == "GET" for r in fake.requests[start:]), routes(fake, start)
    assert len([i for i in fake.items.values() if i["kind"] == "pull"]) == 1
    assert_clean(fake, caplog, store)


def test_5xx_and_rate_limits_are_retried_with_backoff(
    fake: FakeGithub,
    store: Store,
    retry: RetryPolicy,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    debug_logs(caplog)
    forge = forge_for(fake, store, retry)
    change = plan(forge)
    fake.fail("GET", r"/git/ref/heads/main$", 502, times=2)
    fake.fail(
        "POST",
        r"/git/refs$",
        403,
        message="API rate limit exceeded for user ID 1.",
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1800000007"},
    )
    fake.fail("POST", r"/pulls$", 429, headers={"Retry-After": "3"})
    fake.fail("POST", r"/pulls$", 503, process=True)  # created, but the answer was lost
    res = forge.open_pull_request(
        "inc-7", change, title="t", body="b", labels=["sre-space"], merge_mode="auto_merge", now=T0
    )
    assert res.ok, res.reason
    assert sleeps == [0.5, 1.0, 7.0, 3.0, 1.0]
    assert len([i for i in fake.items.values() if i["kind"] == "pull"]) == 1
    assert len(fake.calls("POST", r"/git/refs$")) == 2
    assert "retry 1/3" in caplog.text
    assert_clean(fake, caplog, store)


def test_giving_up_raises_forge_error_without_the_token(
    fake: FakeGithub, store: Store, retry: RetryPolicy, sleeps: list[float]
) -> None:
    forge = forge_for(fake, store, retry)
    fake.fail("GET", r"/contents/", 500, times=10)
    with pytest.raises(ForgeError, match=r"GitHub get contents failed \(500\)") as info:
        forge.read("services/checkout.yaml")
    assert TOKEN not in str(info.value)
    assert sleeps == [0.5, 1.0, 2.0]
    sleeps.clear()
    fake.failures.clear()
    fake.fail("GET", r"/contents/", 422, message="Validation Failed")
    with pytest.raises(ForgeError, match="422"):
        forge.read("services/checkout.yaml")
    assert sleeps == []  # a client error is not retried


def test_auto_merge_is_enabled_through_graphql(
    fake: FakeGithub, store: Store, retry: RetryPolicy
) -> None:
    forge = forge_for(fake, store, retry, use_auto_merge=True)
    pr = forge.open_pull_request(
        "inc-7", plan(forge), title="t", body="b", labels=[], merge_mode="auto_merge", now=T0
    ).pr
    assert pr is not None
    forge.run_checks(pr.id, POLICY_OK, T0)
    res = forge.merge(pr.id, T0)
    assert not res.ok and "auto-merge enabled" in res.reason
    assert fake.automerge == ["PR_NODE_1"]
    gql = fake.calls("POST", r"^/api/graphql$")
    assert len(gql) == 1 and gql[0].body["variables"]["input"]["mergeMethod"] == "MERGE"
    forge.merge(pr.id, T0)
    assert len(fake.calls("POST", r"^/api/graphql$")) == 1  # enabled once
    # GitHub merges it later; the next call records the merge
    fake.handle("PUT", "/api/v3/repos/acme/gitops/pulls/1/merge", {}, {"merge_method": "merge"})
    assert forge.merge(pr.id, T0).reason == "merged (recovered)"


def test_approval_is_read_from_reviews(fake: FakeGithub, store: Store, retry: RetryPolicy) -> None:
    forge = forge_for(fake, store, retry)
    pr = forge.open_pull_request(
        "inc-7", plan(forge), title="t", body="b", labels=[], merge_mode="approval", now=T0
    ).pr
    assert pr is not None
    forge.run_checks(pr.id, CheckResult("policy", True, "needs approval"), T0)
    assert "approval" in forge.merge(pr.id, T0).reason
    fake.reviews[1] = [{"id": 1, "state": "APPROVED", "user": {"login": "alice"}}]
    merged = forge.merge(pr.id, T0)
    assert merged.ok and merged.pr is not None and merged.pr.approved_by == "alice"


def test_rollback_finds_the_last_good_version_through_the_api(
    fake: FakeGithub, store: Store, retry: RetryPolicy
) -> None:
    forge = forge_for(fake, store, retry)
    change = plan(forge, "rollback_version")
    assert change.after == {"version": "1.4.1"}
    commits = fake.calls("GET", r"/commits$")
    assert commits[0].query == {"sha": ["main"], "path": ["services/checkout.yaml"]}
    sha = fake.refs["main"]
    changes = forge.commit_changes(sha)
    assert list(changes) == ["services/checkout.yaml"]


def test_tracker_on_github_issues(
    fake: FakeGithub,
    store: Store,
    retry: RetryPolicy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    debug_logs(caplog)
    gh = make_github(TOKEN, base_url=fake.api, polite=False)
    tracker = GithubTracker(store, gh, REPO, retry=retry, secrets=[TOKEN])
    start = len(fake.requests)
    ref = tracker.open_issue(INCIDENT, f"conversion 0.62 -> 0.37; oops {TOKEN}")
    assert routes(fake, start) == ["GET /", "GET /issues", "GET /issues", "POST /issues"]
    assert fake.requests[start + 1].query == {"state": ["all"], "labels": ["sre-space"]}
    create = fake.requests[-1].body
    assert create["labels"] == ["sre-space", "incident", "state:open", "severity:critical"]
    assert create["body"].startswith("<!-- sre-space:incident=inc-7 step=open -->")
    assert create["title"] == "[critical] checkout conversion down 40% (checkout)"
    assert ref.number == 1 and ref.url.endswith("/issues/1")

    start = len(fake.requests)
    assert tracker.comment_diagnosis(diagnosis(), at=T0)
    assert routes(fake, start) == [
        "GET /issues/1",
        "GET /issues/1/comments",
        "GET /issues/1",
        "GET /issues/1/comments",
        "POST /issues/1/comments",
    ]
    body = fake.requests[-1].body["body"]
    assert body.startswith("<!-- sre-space:incident=inc-7 step=diagnosis -->")
    assert "`checkout` — `oom`, score 0.91" in body
    start = len(fake.requests)
    assert not tracker.comment_diagnosis(diagnosis(), at=T0)
    assert len(fake.requests) == start

    tracker.set_state("inc-7", "mitigating")
    assert fake.requests[-1].method == "PUT" and fake.requests[-1].path.endswith("/issues/1/labels")
    assert fake.requests[-1].body == [
        "sre-space",
        "incident",
        "state:mitigating",
        "severity:critical",
    ]
    tracker.close_with_postmortem("inc-7", "# Post-mortem\n\nroot cause: leak", at=T0)
    assert fake.items[1]["state"] == "closed"
    assert fake.calls("PATCH")[0].body == {"state": "closed", "state_reason": "completed"}
    assert fake.items[1]["labels"] == [
        "sre-space",
        "incident",
        "state:resolved",
        "severity:critical",
    ]

    # A restart that lost the store: the marker finds the issue and every comment again.
    again = GithubTracker(Store(tmp_path / "fresh.db"), gh, REPO, retry=retry, secrets=[TOKEN])
    start = len(fake.requests)
    assert again.open_issue(INCIDENT, "s") == ref
    assert not again.comment_diagnosis(diagnosis(), at=T0)
    assert not again.comment("inc-7", "postmortem", "# Post-mortem", at=T0)
    assert all(r.method == "GET" for r in fake.requests[start:])
    assert len([i for i in fake.items.values() if i["kind"] == "issue"]) == 1
    assert len(fake.comments[1]) == 2
    assert_clean(fake, caplog, store)


def test_tracker_retries_a_lost_create_without_duplicating(
    fake: FakeGithub, store: Store, retry: RetryPolicy, sleeps: list[float]
) -> None:
    gh = make_github(TOKEN, base_url=fake.api, polite=False)
    tracker = GithubTracker(store, gh, REPO, retry=retry, secrets=[TOKEN])
    fake.fail("POST", r"/issues$", 502, process=True)
    fake.fail("POST", r"/issues/1/comments$", 500, process=True)
    tracker.open_issue(INCIDENT, "s")
    tracker.comment("inc-7", "diagnosis", "d")
    assert len(fake.items) == 1 and len(fake.comments[1]) == 1
    assert sleeps == [0.5, 0.5]


def test_fixer_on_github_end_to_end(fake: FakeGithub, store: Store, retry: RetryPolicy) -> None:
    forge = forge_for(fake, store, retry)
    fixer = Fixer(
        forge,
        store,
        Policy(PolicyConfig(auto_merge=("rollback_version",))),
        incident_url=lambda i: f"https://github.example/acme/gitops/issues/{i}",
        secrets=[TOKEN],
    )
    remedy = fixer.remediate(INCIDENT, diagnosis(), T0)
    assert remedy.status == "merged", remedy.reason
    assert '"1.4.1"' in (fake.file("services/checkout.yaml") or "")
    pr_body = fake.calls("POST", r"/pulls$")[0].body["body"]
    assert "### Root cause" in pr_body and "### How to roll back" in pr_body
    assert fake.calls("POST", r"/issues/1/labels$")[0].body == [
        "sre-space",
        "remediation",
        "action:rollback_version",
    ]
