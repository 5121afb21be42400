"""The GitOps repository: layout, schema validation, real commits, reading main."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from chaos.gitops import GitOpsRepo
from chaos.manifests import ManifestError, default_docs, parse, render
from chaos.schema import load_schema, validate
from chaos.topology import SERVICES


def test_defaults_validate_and_render_round_trip() -> None:
    for name, doc in default_docs().items():
        assert validate(doc) == [], name
        assert parse(render(doc), f"services/{name}.yaml") == doc
        assert f'version: "{doc["version"]}"' in render(doc)


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        (("replicas",), 0, "below the minimum 1"),
        (("replicas",), 21, "above the maximum 20"),
        (("resources", "memory_limit_mib"), 63, "memory_limit_mib"),
        (("resources", "cpu_limit_millicores"), 9000, "cpu_limit_millicores"),
        (("timeouts", "downstream_ms"), 49, "downstream_ms"),
        (("connection_pool", "max"), 501, "max"),
        (("replicas",), True, "expected integer"),
        (("version",), "latest", "does not match"),
        (("feature_flags", "x"), "yes", "expected boolean"),
        (("surprise",), 1, "unknown field"),
    ],
)
def test_schema_bounds_come_from_the_schema_file(
    path: tuple[str, ...], value: object, needle: str
) -> None:
    doc = default_docs()["checkout"]
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = validate(doc)
    assert errors and any(needle in e for e in errors), errors


def test_schema_minimum_matches_contract() -> None:
    props = load_schema()["properties"]
    assert props["replicas"]["minimum"] == 1 and props["replicas"]["maximum"] == 20
    assert props["resources"]["properties"]["memory_limit_mib"]["maximum"] == 8192
    assert props["connection_pool"]["properties"]["max"]["maximum"] == 500


def test_file_name_must_match_service() -> None:
    with pytest.raises(ManifestError, match="must equal the file name"):
        parse(render(default_docs()["cart"]), "services/checkout.yaml")


def test_create_is_a_real_repo_and_idempotent(tmp_path: Path) -> None:
    repo = GitOpsRepo.create(tmp_path / "gitops")
    head = repo.head()
    git = ["git", "-C", str(repo.path)]
    assert (
        subprocess.run(
            [*git, "branch", "--show-current"], capture_output=True, text=True
        ).stdout.strip()
        == "main"
    )
    files = subprocess.run([*git, "ls-files"], capture_output=True, text=True).stdout.split()
    assert "schema/service.schema.json" in files
    assert sorted(f for f in files if f.startswith("services/")) == sorted(
        f"services/{s}.yaml" for s in SERVICES
    )
    assert json.loads((repo.path / "schema/service.schema.json").read_text()) == load_schema()
    assert GitOpsRepo.create(repo.path).head() == head  # idempotent
    assert [c.subject for c in repo.log()] == ["Initial manifests"]


def test_commit_is_real_validated_and_dated(tmp_path: Path) -> None:
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
        ("services/cart.yaml",),
    )
    assert "replicas: 5" in (repo.path / "services/cart.yaml").read_text()  # work tree follows main
    with pytest.raises(ManifestError):
        repo.commit("cart", lambda d: d.update(replicas=99), "too many")
    assert repo.head() == sha


def test_desired_state_is_read_from_main_not_the_work_tree(tmp_path: Path) -> None:
    repo = GitOpsRepo.create(tmp_path / "gitops")
    git = ["git", "-C", str(repo.path)]
    subprocess.run([*git, "checkout", "-q", "-b", "fix/scale"], check=True)
    (repo.path / "services/cart.yaml").write_text(render({**default_docs()["cart"], "replicas": 7}))
    subprocess.run([*git, "commit", "-qam", "scale on a branch"], check=True)
    desired, errors = repo.read_desired()
    assert errors == [] and desired["cart"].replicas == 2  # the branch is not merged yet
    # a commit to main while a branch is checked out leaves the branch's work tree alone
    repo.commit("catalog", lambda d: d.update(replicas=3), "scale catalog")
    assert repo.read_desired()[0]["catalog"].replicas == 3
    assert "replicas: 7" in (repo.path / "services/cart.yaml").read_text()


def test_an_invalid_manifest_on_main_is_reported_not_applied(tmp_path: Path) -> None:
    repo = GitOpsRepo.create(tmp_path / "gitops")
    (repo.path / "services/cart.yaml").write_text("service: cart\nreplicas: -1\n")
    subprocess.run(["git", "-C", str(repo.path), "commit", "-qam", "broken"], check=True)
    desired, errors = repo.read_desired()
    assert "cart" not in desired and "checkout" in desired
    assert len(errors) == 1 and "services/cart.yaml" in errors[0]
