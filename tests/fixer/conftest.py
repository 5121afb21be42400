"""Fixtures for the Fixer's tests: a real manifests repository (contracts.md layout) and a store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sinks.store.sqlite import Store

from .helpers import SCHEMA, git, manifest


@pytest.fixture
def manifests_repo(tmp_path: Path) -> Path:
    """A real git repository: main with an initial commit, then a deploy of checkout 1.4.2."""
    repo = tmp_path / "gitops"
    (repo / "services").mkdir(parents=True)
    (repo / "schema").mkdir()
    git(repo, "init", "-q", "-b", "main")
    for svc in ("checkout", "cart", "database"):
        (repo / "services" / f"{svc}.yaml").write_text(manifest(svc), encoding="utf-8")
    (repo / "schema" / "service.schema.json").write_text(json.dumps(SCHEMA, indent=2))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial manifests")
    path = repo / "services" / "checkout.yaml"
    path.write_text(path.read_text().replace('"1.4.1"', '"1.4.2"'), encoding="utf-8")
    git(repo, "commit", "-q", "-am", "deploy checkout 1.4.2", date="@1795856400 +0000")
    return repo


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store."""
    s = Store(tmp_path / "sre.db")
    yield s
    s.close()
