"""Local forge on real git: branch, commit, checks, merge --no-ff, revert, idempotent retries."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from sinks.fixer import manifest as mf
from sinks.fixer.forge import CheckResult, ForgeResult, MergeMode, PullRequestStore
from sinks.fixer.forge_local import LocalForge
from sinks.fixer.k8s.desired import RepositoryState
from sinks.fixer.playbook import Change, Playbook
from sinks.store.sqlite import Store
from sre_space.records import ActionRequest
from sre_space.timeutil import rfc3339_to_ns

from .helpers import SCHEMA, git

T0 = rfc3339_to_ns("2026-11-28T10:00:00.000Z")
T1 = rfc3339_to_ns("2026-11-28T10:01:00.000Z")
T2 = rfc3339_to_ns("2026-11-28T10:20:00.000Z")
POLICY_OK = CheckResult("policy", True, "raise_memory_limit may merge automatically")


def plan(forge: LocalForge, action: str = "raise_memory_limit", **params: str | int) -> Change:
    res = Playbook().plan(ActionRequest(action, "checkout", dict(params)), forge, T0)
    assert res.change is not None, res.reason
    return res.change


def open_pr(
    forge: LocalForge, change: Change, incident: str = "inc-1", mode: MergeMode = "auto_merge"
) -> ForgeResult:
    return forge.open_pull_request(
        incident,
        change,
        title=f"[sre-space] {change.summary}",
        body="body",
        labels=["sre-space"],
        merge_mode=mode,
        now=T0,
    )


def branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()


def test_open_pull_request_creates_branch_and_one_commit_without_touching_main(
    manifests_repo: Path, store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # No global git identity anywhere: the forge must bring its own through the environment.
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nohome"))
    forge = LocalForge(manifests_repo, store)
    main_before = forge.head()
    worktree_before = (manifests_repo / "services/checkout.yaml").read_text()
    res = open_pr(forge, plan(forge))
    assert res.ok and res.pr is not None
    pr = res.pr
    assert pr.branch == "sre/inc-1/raise_memory_limit"
    assert sorted(branches(manifests_repo)) == ["main", "sre/inc-1/raise_memory_limit"]
    assert forge.head() == main_before
    assert (manifests_repo / "services/checkout.yaml").read_text() == worktree_before
    assert git(manifests_repo, "rev-list", "--count", f"main..{pr.branch}").strip() == "1"
    assert git(manifests_repo, "diff", "--name-only", "main", pr.branch).split() == [
        "services/checkout.yaml"
    ]
    assert git(manifests_repo, "log", "-1", "--format=%an <%ae> %cI", pr.branch).strip() == (
        "SRE-Space Fixer <fixer@sre-space.invalid> 2026-11-28T10:00:00+00:00"
    )
    assert mf.parse(forge.read("services/checkout.yaml", pr.branch) or "")["resources"] == {
        "memory_limit_mib": 1024,
        "cpu_limit_millicores": 500,
    }
    assert PullRequestStore(store, "local").get("inc-1/raise_memory_limit") == pr


def test_open_is_idempotent_and_recovers_a_branch_without_record(
    manifests_repo: Path, store: Store, tmp_path: Path
) -> None:
    forge = LocalForge(manifests_repo, store)
    change = plan(forge)
    first = open_pr(forge, change).pr
    again = open_pr(forge, change)
    assert again.ok and again.pr == first and again.reason == "pull request already open"
    # Crash after the branch was written, before the record: a new process with no record
    # (a fresh store) adopts the branch instead of writing a second commit.
    adopted = open_pr(LocalForge(manifests_repo, Store(tmp_path / "fresh.db")), change).pr
    assert adopted is not None and first is not None
    assert adopted.head_sha == first.head_sha and adopted.base_sha == first.base_sha
    assert len(branches(manifests_repo)) == 2
    assert git(manifests_repo, "rev-list", "--all", "--count").strip() == "3"


def test_same_change_at_same_event_time_gives_the_same_commit(
    tmp_path: Path, manifests_repo: Path
) -> None:
    a = LocalForge(manifests_repo, Store(tmp_path / "a.db"))
    pr_a = open_pr(a, plan(a)).pr
    git(manifests_repo, "update-ref", "-d", "refs/heads/sre/inc-1/raise_memory_limit")
    b = LocalForge(manifests_repo, Store(tmp_path / "b.db"))
    pr_b = open_pr(b, plan(b)).pr
    assert pr_a is not None and pr_b is not None and pr_a.head_sha == pr_b.head_sha


def test_checks_merge_no_ff_and_revert(manifests_repo: Path, store: Store) -> None:
    forge = LocalForge(manifests_repo, store)
    pr = open_pr(forge, plan(forge)).pr
    assert pr is not None
    assert not forge.merge(pr.id, T1).ok  # checks have not run yet
    checked = forge.run_checks(pr.id, POLICY_OK, T1)
    assert checked.ok, checked.reason
    assert [c["name"] for c in checked.pr.checks] == ["schema", "scope", "policy"]  # type: ignore[union-attr]
    assert "validated against schema/service.schema.json" in checked.pr.checks[0]["detail"]  # type: ignore[union-attr]
    main_before = forge.head()
    merged = forge.merge(pr.id, T1)
    assert merged.ok and merged.pr is not None and merged.pr.state == "merged"
    merge_sha = merged.pr.merge_sha
    assert merge_sha == forge.head()
    parents = git(manifests_repo, "rev-list", "--parents", "-n1", merge_sha or "").split()[1:]
    assert parents == [main_before, pr.head_sha]
    assert "memory_limit_mib: 1024" in (forge.read("services/checkout.yaml") or "")
    assert forge.merge(pr.id, T1).reason == "already merged"
    assert git(manifests_repo, "rev-list", "--count", "main").strip() == "4"

    reverted = forge.revert(pr.id, T2, "signals did not recover", RepositoryState(forge).undo)
    assert reverted.ok and reverted.pr is not None and reverted.pr.state == "reverted"
    revert_sha = reverted.pr.revert_sha
    assert revert_sha == forge.head()
    assert f"This reverts commit {merge_sha}" in git(manifests_repo, "log", "-1", "--format=%B")
    assert "memory_limit_mib: 512" in (forge.read("services/checkout.yaml") or "")
    assert (
        forge.revert(pr.id, T2, "again", RepositoryState(forge).undo).reason == "already reverted"
    )
    assert git(manifests_repo, "rev-list", "--count", "main").strip() == "5"
    # The primary working tree was never used; no scratch worktree is left behind.
    assert "memory_limit_mib: 512" in (manifests_repo / "services/checkout.yaml").read_text()
    assert len(git(manifests_repo, "worktree", "list").splitlines()) == 1


def test_merge_and_revert_recover_after_a_crash_before_the_record(
    manifests_repo: Path, store: Store
) -> None:
    forge = LocalForge(manifests_repo, store)
    pr = open_pr(forge, plan(forge)).pr
    assert pr is not None
    forge.run_checks(pr.id, POLICY_OK, T1)
    snapshot = store.get("pull_requests", f"local:{pr.id}")
    merged = forge.merge(pr.id, T1).pr
    assert merged is not None and snapshot is not None
    store.upsert("pull_requests", f"local:{pr.id}", snapshot)  # the record never saw the merge
    again = forge.merge(pr.id, T1)
    assert again.ok and again.reason == "merged (recovered)"
    assert again.pr is not None and again.pr.merge_sha == merged.merge_sha
    snapshot = store.get("pull_requests", f"local:{pr.id}")
    reverted = forge.revert(pr.id, T2, "x", RepositoryState(forge).undo).pr
    assert snapshot is not None and reverted is not None
    store.upsert("pull_requests", f"local:{pr.id}", snapshot)
    again = forge.revert(pr.id, T2, "x", RepositoryState(forge).undo)
    assert again.ok and again.pr is not None and again.pr.revert_sha == reverted.revert_sha
    assert git(manifests_repo, "rev-list", "--count", "main").strip() == "5"


def test_schema_check_fails_on_a_bad_manifest(manifests_repo: Path, store: Store) -> None:
    strict = json.loads(json.dumps(SCHEMA))
    strict["properties"]["resources"]["properties"]["memory_limit_mib"]["maximum"] = 768
    (manifests_repo / "schema/service.schema.json").write_text(json.dumps(strict))
    git(manifests_repo, "commit", "-q", "-am", "tighten memory maximum")
    forge = LocalForge(manifests_repo, store)
    pr = open_pr(forge, plan(forge)).pr  # 512 -> 1024, above the repository's maximum
    assert pr is not None
    checked = forge.run_checks(pr.id, POLICY_OK, T1)
    assert not checked.ok
    assert "memory_limit_mib: 1024 is above the maximum 768" in checked.reason
    merged = forge.merge(pr.id, T1)
    assert not merged.ok and merged.reason == "checks have not passed"
    assert git(manifests_repo, "rev-list", "--count", "main").strip() == "3"


def test_scope_check_catches_a_change_that_touches_other_keys(
    manifests_repo: Path, store: Store
) -> None:
    forge = LocalForge(manifests_repo, store)
    change = plan(forge)
    sneaky = Change.from_dict(
        {**change.to_dict(), "new_text": change.new_text.replace("replicas: 2", "replicas: 9")}
    )
    pr = open_pr(forge, sneaky).pr
    assert pr is not None
    checked = forge.run_checks(pr.id, POLICY_OK, T1)
    assert not checked.ok and "may not touch replicas" in checked.reason


def test_bad_yaml_and_missing_schema_use_the_builtin(manifests_repo: Path, store: Store) -> None:
    git(manifests_repo, "rm", "-q", "schema/service.schema.json")
    git(manifests_repo, "commit", "-q", "-m", "drop schema")
    forge = LocalForge(manifests_repo, store)
    change = plan(forge)
    broken = Change.from_dict({**change.to_dict(), "new_text": change.new_text + "replicas: [\n"})
    pr = open_pr(forge, broken).pr
    assert pr is not None
    checked = forge.run_checks(pr.id, POLICY_OK, T1)
    assert not checked.ok and "not valid YAML" in checked.reason


def test_approval_gates_the_merge(manifests_repo: Path, store: Store) -> None:
    forge = LocalForge(manifests_repo, store)
    pr = open_pr(forge, plan(forge), mode="approval").pr
    assert pr is not None
    forge.run_checks(pr.id, CheckResult("policy", True, "needs approval"), T1)
    waiting = forge.merge(pr.id, T1)
    assert not waiting.ok and "approval" in waiting.reason
    assert forge.approve(pr.id, "alice", T1).ok
    assert forge.merge(pr.id, T1).ok


def test_stale_change_is_refused(manifests_repo: Path, store: Store) -> None:
    forge = LocalForge(manifests_repo, store)
    change = plan(forge)
    path = manifests_repo / "services/checkout.yaml"
    path.write_text(path.read_text().replace("replicas: 2", "replicas: 3"))
    git(manifests_repo, "commit", "-q", "-am", "someone scaled checkout")
    res = open_pr(forge, change)
    assert not res.ok and "changed on main since it was planned" in res.reason
    assert branches(manifests_repo) == ["main"]


def chaos_commit(repo: Path, path: str, old: str, new: str) -> str:
    """Commit to main with plumbing, as the chaos injectors do (the working tree goes stale)."""
    text = git(repo, "show", f"main:{path}").replace(old, new)
    blob = subprocess.run(
        ["git", "-C", str(repo), "hash-object", "-w", "--stdin"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    index = repo / ".git" / "chaos-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    for args in (["read-tree", "main"], ["update-index", "--cacheinfo", f"100644,{blob},{path}"]):
        subprocess.run(["git", "-C", str(repo), *args], env=env, check=True)
    tree = subprocess.run(
        ["git", "-C", str(repo), "write-tree"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    index.unlink()
    old_main = git(repo, "rev-parse", "main").strip()
    sha = git(repo, "commit-tree", tree, "-p", old_main, "-m", f"chaos: {path}").strip()
    git(repo, "update-ref", "refs/heads/main", sha, old_main)
    return sha


def test_merge_works_on_main_moved_by_plumbing_and_a_dirty_worktree(
    manifests_repo: Path, store: Store
) -> None:
    forge = LocalForge(manifests_repo, store)
    pr = open_pr(forge, plan(forge)).pr
    assert pr is not None
    forge.run_checks(pr.id, POLICY_OK, T1)
    chaos = chaos_commit(manifests_repo, "services/cart.yaml", "replicas: 2", "replicas: 1")
    (manifests_repo / "services/checkout.yaml").write_text("edited by hand\n")
    res = forge.merge(pr.id, T1)
    assert res.ok, res.reason
    assert res.pr is not None and res.pr.merge_sha == forge.head()
    parents = git(manifests_repo, "rev-list", "--parents", "-n1", "main").split()[1:]
    assert parents == [chaos, pr.head_sha]
    assert "replicas: 1" in (forge.read("services/cart.yaml") or "")
    assert "memory_limit_mib: 1024" in (forge.read("services/checkout.yaml") or "")
    assert (manifests_repo / "services/checkout.yaml").read_text() == "edited by hand\n"


def test_a_conflicting_merge_or_revert_leaves_main_alone(
    manifests_repo: Path, store: Store
) -> None:
    forge = LocalForge(manifests_repo, store)
    pr = open_pr(forge, plan(forge)).pr
    assert pr is not None
    forge.run_checks(pr.id, POLICY_OK, T1)
    path = "services/checkout.yaml"
    chaos = chaos_commit(manifests_repo, path, "memory_limit_mib: 512 ", "memory_limit_mib: 256 ")
    res = forge.merge(pr.id, T1)
    assert not res.ok and "merge failed" in res.reason and "CONFLICT" in res.reason
    assert forge.head() == chaos
    assert len(git(manifests_repo, "worktree", "list").splitlines()) == 1
    # a merged change that someone edited afterwards is not reverted over their edit either
    other = open_pr(forge, plan(forge, "scale_replicas", to=4), incident="inc-2").pr
    assert other is not None
    forge.run_checks(other.id, POLICY_OK, T1)
    assert forge.merge(other.id, T1).ok
    chaos_commit(manifests_repo, path, "replicas: 4 ", "replicas: 6 ")
    main = forge.head()
    res = forge.revert(other.id, T2, "x", RepositoryState(forge).undo)
    # the revert puts back only values that still hold what the change wrote: none here
    assert not res.ok and "nothing left to revert: later changes replaced" in res.reason
    assert forge.head() == main


def test_history_and_commit_changes(manifests_repo: Path, store: Store) -> None:
    forge = LocalForge(manifests_repo, store)
    revs = forge.history("services/checkout.yaml")
    assert [mf.parse(r.text or "")["version"] for r in revs] == ["1.4.2", "1.4.1"]
    changes = forge.commit_changes(revs[0].sha)
    assert list(changes) == ["services/checkout.yaml"]
    old, new = changes["services/checkout.yaml"]
    assert old is not None and new is not None and '"1.4.1"' in old and '"1.4.2"' in new
    root = forge.commit_changes(revs[1].sha)
    assert set(root) == {
        "services/cart.yaml",
        "services/checkout.yaml",
        "services/database.yaml",
        "schema/service.schema.json",
    }
    assert forge.read("services/nope.yaml") is None


def test_validator_accepts_the_contract_schema_keywords() -> None:
    from sinks.fixer.schema import validate

    schema = {
        "type": "object",
        "properties": {
            "feature_flags": {
                "type": "object",
                "additionalProperties": {"type": "boolean"},
                "propertyNames": {"pattern": "^[a-z][a-z0-9_]*$"},
            },
            "version": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+\\.[0-9]+$"},
            "n": {"oneOf": [{"type": "integer"}, {"type": "null"}]},
        },
    }
    assert validate({"feature_flags": {"ok_flag": True}, "version": "1.2.3", "n": 1}, schema) == []
    errors = validate({"feature_flags": {"Bad-Flag": "yes"}, "version": "v1", "n": "x"}, schema)
    assert len(errors) == 4, errors
    assert validate(True, {"type": "integer"}) == ["$: expected integer, got boolean"]
