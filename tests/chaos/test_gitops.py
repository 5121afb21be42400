"""The shop's GitOps repository: Kubernetes layout, real commits, main rendered per commit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from chaos.gitops import GitOpsRepo
from chaos.manifests import (
    ENV,
    FLAG_FILE,
    OVERLAY,
    Desired,
    ManifestError,
    complete,
    default_docs,
    repository_files,
)
from chaos.topology import SERVICES
from sre_space.gitops.build import overlay_documents
from sre_space.gitops.config import CONFIG_PATH, GitOpsConfig
from sre_space.gitops.history import CommitServices


def _git(repo: GitOpsRepo, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo.path), *args], capture_output=True, text=True, check=True
    ).stdout


def test_defaults_render_back_to_the_same_documents() -> None:
    docs = {name: complete(doc) for name, doc in default_docs().items()}
    files = repository_files(docs)
    rendered = overlay_documents(files, GitOpsConfig.from_text(files[CONFIG_PATH]))
    assert {name: complete(doc) for name, doc in rendered.items()} == docs


def test_config_names_the_overlay_flags_and_env() -> None:
    config = GitOpsConfig.from_text(repository_files(default_docs())[CONFIG_PATH])
    assert config.kustomize_overlay == OVERLAY and config.flag_file == FLAG_FILE
    assert config.flag_owner == "service"
    assert {k: config.env[k] for k in ENV} == ENV


def test_files_are_kubernetes_and_flagd() -> None:
    files = repository_files(default_docs())
    deployment, service = yaml.safe_load_all(files["base/payment.yaml"])
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    assert c["resources"]["limits"] == {"memory": "256Mi", "cpu": "500m"}
    assert {e["name"]: e["value"] for e in c["env"]} == {
        "SHOP_DOWNSTREAM_TIMEOUT_MS": "1500",
        "SHOP_POOL_MAX_CONNECTIONS": "20",
        "SHOP_CIRCUIT_BREAKER": "false",
    }
    overlay = yaml.safe_load(files[f"{OVERLAY}/kustomization.yaml"])
    assert {"name": "ghcr.io/sre-space/shop/payment", "newTag": "5.0.3"} in overlay["images"]
    assert {"name": "payment", "count": 2} in overlay["replicas"]
    flag = json.loads(files[FLAG_FILE])["flags"]["new_fraud_rules"]
    assert flag["defaultVariant"] == "off" and flag["metadata"] == {"service": "payment"}
    assert "# the overlay pins the tag" in files["base/payment.yaml"]


def test_create_is_a_real_repo_and_idempotent(tmp_path: Path) -> None:
    repo = GitOpsRepo.create(tmp_path / "gitops")
    head = repo.head()
    assert _git(repo, "branch", "--show-current").strip() == "main"
    files = _git(repo, "ls-files").split()
    assert CONFIG_PATH in files and FLAG_FILE in files
    assert sorted(f for f in files if f.startswith("base/") and "kustom" not in f) == sorted(
        f"base/{s}.yaml" for s in SERVICES
    )
    assert GitOpsRepo.create(repo.path).head() == head  # idempotent
    assert [c.subject for c in repo.log()] == ["Initial manifests"]
    desired, errors = repo.read_desired()
    assert errors == []
    assert desired == {n: Desired.from_doc(d) for n, d in default_docs().items()}


def test_commit_is_real_rendered_and_dated(tmp_path: Path) -> None:
    repo = GitOpsRepo.create(tmp_path / "gitops", when_ns=1_767_571_200_000_000_000)
    sha = repo.commit(
        "cart", lambda d: d.update(replicas=5), "scale cart", when_ns=1_767_571_260_000_000_000
    )
    assert repo.head() == sha
    last = repo.log()[-1]
    assert (last.sha, last.time_s, last.subject, last.files) == (
        sha,
        1_767_571_260,
        "scale cart",
        (f"{OVERLAY}/kustomization.yaml",),
    )
    diff = _git(repo, "show", "--format=", "-U0", sha)
    assert [ln for ln in diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")] == [
        "-    count: 2",
        "+    count: 5",
    ]
    assert repo.read_desired()[0]["cart"].replicas == 5
    # the work tree follows main
    assert "count: 5" in (repo.path / OVERLAY / "kustomization.yaml").read_text()
    with pytest.raises(ManifestError, match="not understood"):
        repo.commit("cart", lambda d: d["resources"].update(memory_limit_mib=-1), "negative")
    assert repo.head() == sha


def test_desired_state_is_read_from_main_not_the_work_tree(tmp_path: Path) -> None:
    repo = GitOpsRepo.create(tmp_path / "gitops")
    _git(repo, "checkout", "-q", "-b", "fix/scale")
    overlay = repo.path / OVERLAY / "kustomization.yaml"
    text = overlay.read_text().replace("name: cart\n    count: 2", "name: cart\n    count: 7")
    overlay.write_text(text)
    _git(repo, "commit", "-qam", "scale on a branch")
    desired, errors = repo.read_desired()
    assert errors == [] and desired["cart"].replicas == 2  # the branch is not merged yet
    # a commit to main while a branch is checked out leaves the branch's work tree alone
    repo.commit("catalog", lambda d: d.update(replicas=3), "scale catalog")
    assert repo.read_desired()[0]["catalog"].replicas == 3
    assert "count: 7" in overlay.read_text()


def test_a_main_that_does_not_render_is_reported_not_applied(tmp_path: Path) -> None:
    repo = GitOpsRepo.create(tmp_path / "gitops")
    cart = repo.path / "base/cart.yaml"
    cart.write_text(cart.read_text().replace("memory: 256Mi", "memory: lots"))
    _git(repo, "commit", "-qam", "broken")
    desired, errors = repo.read_desired()
    assert desired == {}
    assert len(errors) == 1 and "lots" in errors[0]
    with pytest.raises(ManifestError, match="does not render"):
        repo.read_docs()


def test_a_commit_names_the_services_its_render_changed(tmp_path: Path) -> None:
    repo = GitOpsRepo.create(tmp_path / "gitops")
    root = repo.head()
    scale = repo.commit("catalog", lambda d: d.update(replicas=4), "scale catalog")
    flag = repo.commit(
        "payment", lambda d: d["feature_flags"].update(new_fraud_rules=True), "flag on"
    )
    services = CommitServices(repo.path)
    assert services.is_kubernetes()
    assert services.changed(root) == sorted(SERVICES)  # a root commit brings every service
    # both touch the overlay or the flag file that every service shares
    assert services.changed(scale) == ["catalog"]
    assert services.changed(flag) == ["payment"]
