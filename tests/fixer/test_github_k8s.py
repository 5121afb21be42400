"""The Fixer on a Kubernetes repository hosted on GitHub: the same path as the local forge.

PyGithub talks to a local server that speaks GitHub's REST API (git trees, blobs, commits,
contents, pull requests). The Fixer renders the repository from the API, opens a pull request
whose diff is the one owned line, merges it, and reverts it through a second pull request that
restores main's text byte for byte.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sinks.fixer.fixer import Fixer
from sinks.fixer.forge import CheckResult
from sinks.fixer.github_client import RetryPolicy
from sinks.fixer.playbook import Change
from sinks.fixer.policy import Policy, PolicyConfig
from sinks.store.sqlite import Store
from sre_space.records import ActionRequest, Diagnosis
from sre_space.timeutil import rfc3339_to_ns

from .fake_github import FakeGithub
from .helpers import INCIDENT, diagnosis
from .test_github import TOKEN, forge_for

FIXTURES = Path(__file__).parent / "gitops_fixtures"
NOW = rfc3339_to_ns("2026-11-28T10:05:00.000Z")
OVERLAY = "overlays/prod/kustomization.yaml"

# (layout, action, params, the file edited, its line before, its line after)
CASES = [
    (
        "kustomize",
        "rollback_version",
        {},
        OVERLAY,
        '    newTag: "2.5.0"  # promoted 2026-11-30',
        '    newTag: "2.4.0"  # promoted 2026-11-30',
    ),
    (
        "kustomize",
        "raise_memory_limit",
        {"to_mib": 768},
        "overlays/prod/inkwell-limits.yaml",
        "              memory: 512Mi  # prod documents are larger",
        "              memory: 768Mi  # prod documents are larger",
    ),
    (
        "helm",
        "scale_replicas",
        {"to": 4},
        "chart/values.yaml",
        "  replicaCount: 2",
        "  replicaCount: 4",
    ),
    (
        "helm",
        "raise_memory_limit",
        {"to_mib": 384},
        "chart/values.yaml",
        "      memory: 256Mi",
        "      memory: 384Mi",
    ),
]


def _files(layout: str) -> dict[str, str]:
    root = FIXTURES / layout
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def retry() -> RetryPolicy:
    return RetryPolicy(attempts=2, base_delay_s=0.0, sleep=lambda _s: None)


def _server(layout: str) -> FakeGithub:
    server = FakeGithub("acme", "gitops", _files(layout), TOKEN).start()
    if layout == "kustomize":
        # A release after the initial commit, so a rollback has an earlier version to go to.
        text = server.file(OVERLAY) or ""
        server.push(OVERLAY, text.replace('"2.4.0"', '"2.5.0"'), "deploy inkwell 2.5.0")
    return server


@pytest.fixture
def servers() -> Iterator[list[FakeGithub]]:
    started: list[FakeGithub] = []
    yield started
    for s in started:
        s.stop()


def _diagnosis(action: str, params: dict[str, Any]) -> Diagnosis:
    d = diagnosis()
    cand = replace(
        d.candidates[0], service="inkwell", actions=[ActionRequest(action, "inkwell", params)]
    )
    return replace(d, candidates=[cand])


def _diff(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    """Changed lines per file, `-old` / `+new`, without context."""
    out: dict[str, list[str]] = {}
    for path in sorted(before.keys() | after.keys()):
        a, b = before.get(path, "").splitlines(), after.get(path, "").splitlines()
        lines = [
            ln
            for ln in difflib.unified_diff(a, b, lineterm="", n=0)
            if ln[:1] in "+-" and ln[:3] not in ("+++", "---")
        ]
        if lines:
            out[path] = lines
    return out


def _tree(server: FakeGithub, ref: str = "main") -> dict[str, str]:
    return dict(server.commits[server.refs.get(ref, ref)]["tree"])


@pytest.mark.gitops_tools
@pytest.mark.parametrize(
    ("layout", "action", "params", "path", "old", "new"),
    CASES,
    ids=[f"{c[0]}-{c[1]}" for c in CASES],
)
def test_a_kubernetes_change_and_its_revert_through_github_touch_only_the_owned_line(
    servers: list[FakeGithub],
    store: Store,
    retry: RetryPolicy,
    layout: str,
    action: str,
    params: dict[str, Any],
    path: str,
    old: str,
    new: str,
) -> None:
    fake = _server(layout)
    servers.append(fake)
    before = _tree(fake)
    fixer = Fixer(forge_for(fake, store, retry), store, Policy(PolicyConfig(auto_merge=(action,))))

    remedy = fixer.remediate(INCIDENT, _diagnosis(action, params), NOW)
    assert remedy.status == "merged", remedy.reason
    assert remedy.pr is not None and remedy.pr.number == 1
    assert _diff(before, _tree(fake, remedy.pr.head_sha)) == {path: [f"-{old}", f"+{new}"]}
    merged = _tree(fake)
    assert _diff(before, merged) == {path: [f"-{old}", f"+{new}"]}
    # The change was rendered from the API's trees and blobs and validated before it opened.
    assert fake.calls("GET", r"/git/trees/") and fake.calls("GET", r"/git/blobs/")
    audit = {r["action"] for r in store.query("actions", key=INCIDENT.id)}
    assert {"render_validated", "open_pull_request", "merge"} <= audit
    checks = {c["name"]: c["ok"] for c in remedy.pr.checks}
    assert checks == {"schema": True, "scope": True, "policy": True}

    reverted = fixer.revert(remedy.pr.id, NOW + 1, "signals did not recover")
    assert reverted.ok, reverted.reason
    assert reverted.pr is not None and reverted.pr.revert_number == 2
    assert fake.items[2]["merged"] and fake.items[2]["head"] == f"sre/inc-7/revert-{action}"
    assert _diff(merged, _tree(fake)) == {path: [f"-{new}", f"+{old}"]}
    assert _tree(fake) == before
    undo = [r for r in store.query("actions", key=INCIDENT.id) if r["action"] == "revert"]
    assert undo and undo[0]["outcome"] == "done"
    # Idempotent: asked again, the landed revert is found and nothing new is opened.
    again = fixer.revert(remedy.pr.id, NOW + 2, "again")
    assert again.ok and again.reason == "already reverted" and len(fake.items) == 2


@pytest.mark.gitops_tools
def test_a_revert_on_github_leaves_a_later_edit_of_the_same_line_alone(
    servers: list[FakeGithub], store: Store, retry: RetryPolicy
) -> None:
    fake = _server("helm")
    servers.append(fake)
    fixer = Fixer(
        forge_for(fake, store, retry), store, Policy(PolicyConfig(auto_merge=("scale_replicas",)))
    )
    remedy = fixer.remediate(INCIDENT, _diagnosis("scale_replicas", {"to": 4}), NOW)
    assert remedy.status == "merged" and remedy.pr is not None, remedy.reason
    values = fake.file("chart/values.yaml") or ""
    fake.push("chart/values.yaml", values.replace("replicaCount: 4", "replicaCount: 5"), "hand")
    main = fake.refs["main"]
    res = fixer.revert(remedy.pr.id, NOW + 1, "signals did not recover")
    assert not res.ok and "nothing left to revert" in res.reason
    assert fake.refs["main"] == main and len(fake.items) == 1


def _forged(
    fake: FakeGithub, path: str, edits: list[tuple[str, str]], keys: tuple[str, ...]
) -> Change:
    old = fake.file(path) or ""
    new = old
    for a, b in edits:
        assert a in new
        new = new.replace(a, b)
    return Change(
        action="scale_replicas",
        service="inkwell",
        params={"to": 4},
        path=path,
        old_text=old,
        new_text=new,
        before={"replicas": 3},
        after={"replicas": 4},
        allowed_keys=keys,
        summary="Scale inkwell",
        rationale="",
        expected_recovery="",
        undo="",
    )


@pytest.mark.gitops_tools
@pytest.mark.parametrize(
    ("path", "edits", "check", "reason"),
    [
        # A second field slipped into the same file: the render shows it, the scope check fails.
        (
            OVERLAY,
            [("count: 3", "count: 4"), ('newTag: "2.5.0"', 'newTag: "2.6.0"')],
            "scope",
            "scale_replicas may not touch inkwell: version",
        ),
        # A file that does not parse: kustomize cannot render the head.
        (
            OVERLAY,
            [("count: 3", "count: 4"), ("namespace: docs", "namespace: docs\nnamePrefix: [")],
            "schema",
            "is not valid YAML",
        ),
        # A field Kubernetes does not know: the render does not validate against the schemas.
        (
            "overlays/prod/inkwell-limits.yaml",
            [("          resources:", "          imagePullPolicyy: Always\n          resources:")],
            "schema",
            "Deployment/inkwell is invalid",
        ),
    ],
    ids=["second-field", "unparsable", "invalid-render"],
)
def test_a_change_forged_past_the_playbook_fails_the_checks_of_its_render(
    servers: list[FakeGithub],
    store: Store,
    retry: RetryPolicy,
    path: str,
    edits: list[tuple[str, str]],
    check: str,
    reason: str,
) -> None:
    fake = _server("kustomize")
    servers.append(fake)
    forge = forge_for(fake, store, retry)
    change = _forged(fake, path, edits, ("replicas",))
    opened = forge.open_pull_request(
        "inc-9", change, title="scale", body="", labels=[], merge_mode="auto_merge", now=NOW
    )
    assert opened.ok and opened.pr is not None, opened.reason
    checked = forge.run_checks(opened.pr.id, CheckResult("policy", True, "allowed"), NOW)
    assert not checked.ok and checked.pr is not None
    failed = {c["name"]: c["detail"] for c in checked.pr.checks if not c["ok"]}
    assert list(failed) == [check] and reason in failed[check], failed
    assert not forge.merge(opened.pr.id, NOW).ok
    statuses = {s["context"]: s["state"] for s in fake.statuses[opened.pr.head_sha]}
    assert statuses[f"sre-space/{check}"] == "failure"
