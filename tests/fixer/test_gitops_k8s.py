"""The Fixer's Kubernetes editing: per layout, each action's edit renders, validates and touches
only the owned line; bad input is refused with its reason and nothing is written."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sinks.fixer.audit import AuditLog
from sinks.fixer.forge_local import LocalForge
from sinks.fixer.k8s.desired import RepositoryState
from sinks.fixer.k8s.repo import GitOpsRepo, Proposal, ProposalError, load_dir
from sinks.fixer.manifest import flatten
from sinks.fixer.playbook import Playbook
from sinks.store.sqlite import Store
from sre_space.records import ActionRequest

from .helpers import git

FIXTURES = Path(__file__).parent / "gitops_fixtures"
SERVICE = "inkwell"
RESTART = "2026-12-04T10:00:00Z"

# (logical key, new value, file per layout: plain, kustomize, helm)
EDITS = [
    (
        "version",
        "2.5.0",
        ("apps/inkwell.yaml", "overlays/prod/kustomization.yaml", "chart/values.yaml"),
    ),
    ("replicas", 4, ("apps/inkwell.yaml", "overlays/prod/kustomization.yaml", "chart/values.yaml")),
    (
        "resources.memory_limit_mib",
        768,
        ("apps/inkwell.yaml", "overlays/prod/inkwell-limits.yaml", "chart/values.yaml"),
    ),
    (
        "resources.cpu_limit_millicores",
        1000,
        ("apps/inkwell.yaml", "base/inkwell.yaml", "chart/values.yaml"),
    ),
    (
        "timeouts.downstream_ms",
        1600,
        ("apps/inkwell.yaml", "base/inkwell.yaml", "chart/values.yaml"),
    ),
    ("connection_pool.max", 40, ("apps/inkwell.yaml", "base/inkwell.yaml", "chart/values.yaml")),
    ("circuit_breaker", True, ("apps/inkwell.yaml", "base/inkwell.yaml", "chart/values.yaml")),
    ("feature_flags.inkwellFastPath", False, ("flags/flags.flagd.json",) * 3),
    (
        "rollout.restarted_at",
        RESTART,
        ("apps/inkwell.yaml", "overlays/prod/inkwell-limits.yaml", "chart/values.yaml"),
    ),
]
LAYOUTS = [
    pytest.param("plain", id="plain"),
    pytest.param("kustomize", id="kustomize", marks=pytest.mark.gitops_tools),
    pytest.param("helm", id="helm", marks=pytest.mark.gitops_tools),
]
INDEX = {"plain": 0, "kustomize": 1, "helm": 2}


def make_repo(tmp_path: Path, layout: str) -> Path:
    """A git repository with the layout's fixture committed on main."""
    repo = tmp_path / layout
    shutil.copytree(FIXTURES / layout, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def apply(repo: Path, proposal: Proposal) -> None:
    for path, (_old, new) in proposal.edits.items():
        (repo / path).write_text(new, encoding="utf-8")


def diff_lines(repo: Path) -> tuple[list[str], list[str]]:
    """Removed and added lines of the working tree against HEAD."""
    out = subprocess.run(
        ["git", "diff", "-U0", "--no-color"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    body = [
        ln for ln in out.splitlines() if not ln.startswith(("---", "+++", "@@", "diff", "index"))
    ]
    return [ln[1:] for ln in body if ln.startswith("-")], [
        ln[1:] for ln in body if ln.startswith("+")
    ]


def comment_count(text: str) -> int:
    return sum(1 for line in text.splitlines() if "#" in line)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("key", "value", "paths"), EDITS, ids=[e[0] for e in EDITS])
def test_each_action_edits_only_its_line_and_validates(
    tmp_path: Path, layout: str, key: str, value: object, paths: tuple[str, ...]
) -> None:
    repo_dir = make_repo(tmp_path, layout)
    repo = GitOpsRepo(load_dir(repo_dir))
    assert repo.layout.kind == layout
    before = repo.documents()[SERVICE]
    proposal = repo.propose(SERVICE, {key: value})
    assert list(proposal.edits) == [paths[INDEX[layout]]]
    apply(repo_dir, proposal)
    removed, added = diff_lines(repo_dir)
    if key == "rollout.restarted_at":
        # A first restart adds the annotation (and its mapping where the file had none).
        assert removed == [] or removed == ["  podAnnotations: {}"]
        # The timestamp is quoted the way the edited file quotes most of its strings.
        (old_text,) = (old for old, _ in proposal.edits.values())
        q = '"' if old_text.count(': "') > old_text.count(": '") else "'"
        assert any(f"kubectl.kubernetes.io/restartedAt: {q}{RESTART}{q}" in ln for ln in added)
        assert len(added) <= 3
    else:
        assert len(removed) == 1 and len(added) == 1, (removed, added)
        # Only the value changed: key, indentation and comment are as they were.
        old, new = removed[0], added[0]
        assert old.split(":")[0] == new.split(":")[0]
        assert old.partition("#")[2] == new.partition("#")[2]
    for path, (old_text, new_text) in proposal.edits.items():
        assert comment_count(new_text) == comment_count(old_text), path
    # The repository as committed renders the intended value and nothing else changed.
    after = GitOpsRepo(load_dir(repo_dir)).documents()
    want = {**flatten(before), key: value}
    assert flatten(after[SERVICE]) == want
    assert proposal.before == {key: flatten(before).get(key)}


def test_detects_each_layout() -> None:
    kinds = {
        name: GitOpsRepo(load_dir(FIXTURES / name)).layout
        for name in ("plain", "kustomize", "helm")
    }
    assert kinds["plain"].kind == "plain"
    assert (kinds["kustomize"].kind, kinds["kustomize"].root) == ("kustomize", "overlays/prod")
    assert (kinds["helm"].kind, kinds["helm"].root) == ("helm", "chart")


@pytest.mark.gitops_tools
def test_kustomize_adds_overlay_entries_when_the_overlay_has_none(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path, "kustomize")
    repo = GitOpsRepo(load_dir(repo_dir))
    version = repo.propose("quill", {"version": "1.0.0"})
    assert list(version.edits) == ["overlays/prod/kustomization.yaml"]
    apply(repo_dir, version)
    removed, added = diff_lines(repo_dir)
    assert removed == []
    assert added == ["  - name: registry.example.com/quill", "    newTag: 1.0.0"]
    assert GitOpsRepo(load_dir(repo_dir)).documents()["quill"]["version"] == "1.0.0"


def test_a_missing_env_variable_is_added_to_the_container(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path, "plain")
    proposal = GitOpsRepo(load_dir(repo_dir)).propose("quill", {"timeouts.downstream_ms": 900})
    apply(repo_dir, proposal)
    removed, added = diff_lines(repo_dir)
    assert removed == []
    assert [ln.strip() for ln in added] == ["env:", "- name: UPSTREAM_TIMEOUT_MS", 'value: "900"']
    after = GitOpsRepo(load_dir(repo_dir)).documents()["quill"]
    assert after["timeouts"] == {"downstream_ms": 900}


def refused(repo_dir: Path, service: str, changes: dict[str, object]) -> str:
    """The refusal's reason; the files on disk are checked to be untouched."""
    files = load_dir(repo_dir)
    with pytest.raises(ProposalError) as info:
        GitOpsRepo(files).propose(service, changes)
    assert load_dir(repo_dir) == files
    return str(info.value)


def test_a_manifest_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path, "plain")
    path = repo_dir / "apps" / "quill.yaml"
    path.write_text(path.read_text() + "  bad: [unclosed\n")
    reason = refused(repo_dir, SERVICE, {"replicas": 3})
    assert "apps/quill.yaml is not valid YAML" in reason


def test_an_image_without_a_tag_is_refused(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path, "plain")
    path = repo_dir / "apps" / "quill.yaml"
    path.write_text(path.read_text().replace("quill:0.9.0", "quill"))
    assert "has no tag" in refused(repo_dir, "quill", {"version": "1.0.0"})


def test_a_missing_service_is_refused(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path, "plain")
    assert "no Deployment named 'ghost'" in refused(repo_dir, "ghost", {"replicas": 2})


def test_a_protected_path_is_refused(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path, "plain")
    config = repo_dir / "sre-space.gitops.yaml"
    config.write_text(config.read_text() + "protected:\n  - apps/*\n")
    reason = refused(repo_dir, SERVICE, {"replicas": 3})
    assert "kept in apps/inkwell.yaml, a protected path" in reason


def test_a_flag_file_with_a_syntax_error_is_refused(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path, "plain")
    path = repo_dir / "flags" / "flags.flagd.json"
    path.write_text(path.read_text().replace('"defaultVariant": "on",', '"defaultVariant": "on"'))
    reason = refused(repo_dir, SERVICE, {"feature_flags.inkwellFastPath": False})
    assert "flags/flags.flagd.json is not valid JSON" in reason


def test_an_unknown_flag_is_refused(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path, "plain")
    assert "owns no flag 'quillBeta'" in refused(
        repo_dir, SERVICE, {"feature_flags.quillBeta": True}
    )


def test_a_render_that_fails_validation_is_refused(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path, "plain")
    path = repo_dir / "apps" / "inkwell.yaml"
    # A typo'd field: strict schema validation names it.
    path.write_text(
        path.read_text().replace(
            "containerPort: 8080", "containerPort: 8080\n              hostPorts: 1"
        )
    )
    reason = refused(repo_dir, SERVICE, {"replicas": 3})
    assert "Deployment/inkwell is invalid" in reason and "hostPorts" in reason


@pytest.mark.gitops_tools
def test_a_kustomize_render_that_fails_is_refused(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path, "kustomize")
    path = repo_dir / "overlays" / "prod" / "kustomization.yaml"
    path.write_text(path.read_text().replace("- path: inkwell-limits.yaml", "- path: missing.yaml"))
    assert "kustomize failed" in refused(repo_dir, SERVICE, {"replicas": 3})


@pytest.mark.gitops_tools
def test_a_kustomize_base_kept_under_a_protected_path_is_refused(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path, "kustomize")
    config = repo_dir / "sre-space.gitops.yaml"
    config.write_text(config.read_text() + "protected:\n  - base/*\n")
    assert "a protected path" in refused(repo_dir, SERVICE, {"connection_pool.max": 30})
    # The overlay's own fields are still editable.
    assert GitOpsRepo(load_dir(repo_dir)).propose(SERVICE, {"replicas": 5}).edits


def forge_state(repo_dir: Path, store: Store) -> RepositoryState:
    return RepositoryState(LocalForge(repo_dir, store), AuditLog(store))


def test_the_playbook_plans_on_logical_documents_and_the_change_is_one_file(
    tmp_path: Path, store: Store
) -> None:
    repo_dir = make_repo(tmp_path, "plain")
    state = forge_state(repo_dir, store)
    plan = Playbook().plan(
        ActionRequest("raise_memory_limit", SERVICE, {"to_mib": 384}),
        state.source(),
        now=1,
    )
    assert plan.change is not None, plan.reason
    change = state.realize(plan.change, incident_id="inc-1", now=1)
    assert not isinstance(change, str), change
    assert change.path == "apps/inkwell.yaml"
    assert change.after == {"resources.memory_limit_mib": 384}
    assert "memory: 384Mi  # raised after the March OOMs" in change.new_text
    rows = AuditLog(store).for_incident("inc-1")
    assert [r["action"] for r in rows] == ["render_validated"]


def test_an_invalid_render_is_refused_in_the_audit_log_and_main_is_untouched(
    tmp_path: Path, store: Store
) -> None:
    repo_dir = make_repo(tmp_path, "plain")
    path = repo_dir / "apps" / "inkwell.yaml"
    path.write_text(path.read_text().replace("targetPort: 8080", "targetPorts: 8080"))
    git(repo_dir, "commit", "-q", "-am", "a misspelt field")
    head = git(repo_dir, "rev-parse", "HEAD")
    state = forge_state(repo_dir, store)
    plan = Playbook().plan(
        ActionRequest("scale_replicas", SERVICE, {"to": 3}), state.source(), now=5
    )
    assert plan.change is not None, plan.reason
    reason = state.realize(plan.change, incident_id="inc-2", now=5)
    assert isinstance(reason, str) and "Service/inkwell is invalid" in reason
    rows = AuditLog(store).for_incident("inc-2")
    assert [(r["action"], r["outcome"]) for r in rows] == [("refuse_render", "refused")]
    assert "Service/inkwell is invalid" in rows[0]["reason"]
    assert git(repo_dir, "rev-parse", "HEAD") == head
    assert git(repo_dir, "status", "--porcelain") == ""
