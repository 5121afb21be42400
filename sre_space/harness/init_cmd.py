"""`sre-space init`: create the state folder and the GitOps repository (idempotent)."""

from __future__ import annotations

import argparse
from pathlib import Path

from chaos.gitops import GitOpsRepo
from sre_space.paths import StatePaths
from sre_space.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sre-space init`: none; the state folder comes from the global --state."""
    del parser


def run(args: argparse.Namespace) -> int:
    """Create `<state>/` and `<state>/gitops` (a git repo of the shop's Kubernetes manifests) if missing."""
    state = Path(getattr(args, "state", None) or load_settings().state_dir)
    state.mkdir(parents=True, exist_ok=True)
    path = StatePaths(state).gitops
    existed = (path / ".git").exists()
    repo = GitOpsRepo.create(path)
    _desired, errors = repo.read_desired()
    print(
        f"{'found' if existed else 'created'} GitOps repository {path} (main at {repo.head()[:12]})"
    )
    for err in errors:
        print(f"main does not render: {err}")
    return 1 if errors else 0
