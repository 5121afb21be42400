"""The Fixer end to end on a Kubernetes repository: plan on logical documents, commit the one
owned line through the local forge, or refuse an invalid render in the audit log."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sinks.fixer.fixer import Fixer
from sinks.fixer.forge_local import LocalForge
from sinks.fixer.policy import load_policy
from sinks.store.sqlite import Store
from sre_space.records import ActionRequest, Diagnosis
from sre_space.timeutil import rfc3339_to_ns

from .helpers import INCIDENT, diagnosis, git

FIXTURES = Path(__file__).parent / "gitops_fixtures"
NOW = rfc3339_to_ns("2026-11-28T10:01:00.000Z")


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "k8s"
    shutil.copytree(FIXTURES / "plain", repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


Ask = tuple[str, dict[str, Any]]


def _diagnosis(ask: Ask) -> Diagnosis:
    d = diagnosis()
    action, params = ask
    request = ActionRequest(action, "inkwell", params)
    cand = replace(d.candidates[0], service="inkwell", actions=[request])
    return replace(d, candidates=[cand])


def _fixer(repo: Path, store: Store) -> Fixer:
    # As sinks/fixer/factory.py composes it for the local forge.
    return Fixer(LocalForge(repo, store), store, load_policy(None))


def test_a_memory_raise_merges_one_line_of_the_deployment(tmp_path: Path, store: Store) -> None:
    repo = _repo(tmp_path)
    remedy = _fixer(repo, store).remediate(
        INCIDENT, _diagnosis(("raise_memory_limit", {"to_mib": 384})), NOW
    )
    assert remedy.status == "merged", remedy.reason
    assert remedy.merge_sha is not None
    diff = git(repo, "diff", "-U0", f"{remedy.merge_sha}^1", remedy.merge_sha)
    changed = [ln for ln in diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    assert changed == [
        "-              memory: 256Mi  # raised after the March OOMs",
        "+              memory: 384Mi  # raised after the March OOMs",
    ]
    actions = [r["action"] for r in store.query("actions", key=INCIDENT.id)]
    assert "render_validated" in actions and "merge" in actions


def test_a_repository_of_service_manifests_keeps_its_own_format(
    manifests_repo: Path, store: Store
) -> None:
    fixer = _fixer(manifests_repo, store)
    assert fixer.desired.source() is fixer.forge
    base = diagnosis().candidates[0]
    ask = ActionRequest("raise_memory_limit", base.service, {"to_mib": 768})
    cand = replace(base, actions=[ask])
    remedy = fixer.remediate(INCIDENT, replace(diagnosis(), candidates=[cand]), NOW)
    assert remedy.status == "merged", remedy.reason
    assert remedy.pr is not None
    assert remedy.pr.planned_change().path == "services/checkout.yaml"


def _commit_edit(repo: Path, old: str, new: str, message: str, date: str) -> str:
    path = repo / "apps" / "inkwell.yaml"
    path.write_text(path.read_text().replace(old, new))
    git(repo, "commit", "-q", "-am", message, date=date)
    return git(repo, "rev-parse", "HEAD").strip()


def test_a_rollback_finds_the_earlier_version_in_the_rendered_history(
    tmp_path: Path, store: Store
) -> None:
    repo = _repo(tmp_path)
    _commit_edit(repo, "inkwell:2.3.1", "inkwell:2.4.0", "deploy 2.4.0", "@1795856400 +0000")
    _commit_edit(repo, '"20"', '"25"', "a bigger pool", "@1795857000 +0000")
    remedy = _fixer(repo, store).remediate(INCIDENT, _diagnosis(("rollback_version", {})), NOW)
    assert remedy.status == "merged", remedy.reason
    assert remedy.merge_sha is not None
    diff = git(repo, "diff", "-U0", f"{remedy.merge_sha}^1", remedy.merge_sha)
    changed = [
        ln[0] + ln[1:].strip()
        for ln in diff.splitlines()
        if ln[:1] in "+-" and ln[:3] not in ("+++", "---")
    ]
    assert changed == [
        '-image: "registry.example.com/inkwell:2.4.0"  # pinned by release',
        '+image: "registry.example.com/inkwell:2.3.1"  # pinned by release',
    ]


def test_a_commit_is_reverted_in_logical_terms(tmp_path: Path, store: Store) -> None:
    repo = _repo(tmp_path)
    sha = _commit_edit(repo, 'value: "800"', 'value: "200"', "tighter timeout", "@1795856400 +0000")
    _commit_edit(repo, "replicas: 2", "replicas: 3", "scale", "@1795857000 +0000")
    remedy = _fixer(repo, store).remediate(
        INCIDENT, _diagnosis(("revert_commit", {"sha": sha})), NOW
    )
    # The default policy has a person approve a revert; the pull request's branch holds it.
    assert remedy.status == "pending" and remedy.pr is not None, remedy.reason
    change = remedy.pr.planned_change()
    assert change.path == "apps/inkwell.yaml"
    assert change.after == {"timeouts.downstream_ms": 800}
    text = git(repo, "show", f"{remedy.pr.head_sha}:apps/inkwell.yaml")
    # The timeout is back; the later, unrelated scale stays.
    assert 'value: "800"  # p99 of quill is ~300ms' in text
    assert "replicas: 3" in text


# (file, text replaced, replacement or None to delete the file, remediation, reason audited)
BAD_INPUT = [
    (
        "apps/quill.yaml",
        "replicas: 1",
        "replicas: [1",
        ("raise_memory_limit", {"to_mib": 384}),
        "apps/quill.yaml is not valid YAML",
    ),
    (
        "apps/inkwell.yaml",
        "inkwell:2.3.1",
        "inkwell",
        ("raise_memory_limit", {"to_mib": 384}),
        "has no tag",
    ),
    # The service the diagnosis names is not in the repository (its file is deleted).
    (
        "apps/inkwell.yaml",
        None,
        None,
        ("scale_replicas", {"to": 3}),
        "no manifest services/inkwell",
    ),
    (
        "sre-space.gitops.yaml",
        "env:",
        "protected: [apps/*]\nenv:",
        ("raise_memory_limit", {"to_mib": 384}),
        "apps/inkwell.yaml, a protected path",
    ),
    (
        "flags/flags.flagd.json",
        '"on",',
        '"on"',
        ("set_feature_flag", {"flag": "inkwellFastPath", "value": False}),
        "is not valid JSON",
    ),
    (
        "apps/inkwell.yaml",
        "containerPort: 8080",
        "containerPorts: 8080",
        ("raise_memory_limit", {"to_mib": 384}),
        "'containerPort' is a required property",
    ),
]


@pytest.mark.parametrize(
    ("path", "old", "new", "remediation", "reason"),
    BAD_INPUT,
    ids=[
        "unparsable",
        "untagged-image",
        "missing-service",
        "protected",
        "flag-syntax",
        "invalid-render",
    ],
)
def test_bad_input_is_refused_in_the_audit_log_and_nothing_is_written(
    tmp_path: Path,
    store: Store,
    path: str,
    old: str | None,
    new: str | None,
    remediation: Ask,
    reason: str,
) -> None:
    repo = _repo(tmp_path)
    target = repo / path
    if old is None or new is None:
        target.unlink()
    else:
        assert old in target.read_text()
        target.write_text(target.read_text().replace(old, new, 1))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bad input")
    head = git(repo, "rev-parse", "main")
    remedy = _fixer(repo, store).remediate(INCIDENT, _diagnosis(remediation), NOW)
    assert remedy.status == "no_change" and remedy.pr is None
    assert reason in remedy.reason
    rows = [r for r in store.query("actions", key=INCIDENT.id) if r["outcome"] == "refused"]
    assert rows and reason in rows[0]["reason"], rows
    assert git(repo, "rev-parse", "main") == head
    assert git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").split() == ["main"]
    assert git(repo, "status", "--porcelain") == ""
    assert store.count("pull_requests") == 0


def test_a_merged_change_is_reverted_by_the_same_path_one_line_back(
    tmp_path: Path, store: Store
) -> None:
    repo = _repo(tmp_path)
    before = git(repo, "show", "main:apps/inkwell.yaml")
    fixer = _fixer(repo, store)
    remedy = fixer.remediate(INCIDENT, _diagnosis(("raise_memory_limit", {"to_mib": 384})), NOW)
    assert remedy.status == "merged" and remedy.pr is not None, remedy.reason
    reverted = fixer.revert(remedy.pr.id, NOW + 1, "signals did not recover")
    assert reverted.ok and reverted.pr is not None, reverted.reason
    sha = reverted.pr.revert_sha
    assert sha == git(repo, "rev-parse", "main").strip()
    assert f"This reverts commit {remedy.merge_sha}" in git(repo, "log", "-1", "--format=%B")
    diff = git(repo, "diff", "-U0", f"{sha}^1", sha)
    changed = [ln for ln in diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    assert changed == [
        "-              memory: 384Mi  # raised after the March OOMs",
        "+              memory: 256Mi  # raised after the March OOMs",
    ]
    assert git(repo, "show", "main:apps/inkwell.yaml") == before
    actions = {r["action"] for r in store.query("actions", key=INCIDENT.id)}
    assert {"render_validated", "revert"} <= actions
