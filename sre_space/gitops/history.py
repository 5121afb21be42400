"""Which services each commit of a Kubernetes GitOps repository changed.

A path does not say it: one line of a kustomize overlay can change any service. A commit changed
the services whose rendered logical documents differ from its first parent's (a root commit: every
service it renders). Renders are cached per commit, which never changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sre_space import git
from sre_space.gitops.build import RenderError, overlay_documents
from sre_space.gitops.config import CONFIG_PATH, ConfigError, GitOpsConfig


class CommitServices:
    """The services commits of a repository changed, when it carries `sre-space.gitops.yaml`."""

    def __init__(self, repo: str | Path) -> None:
        self.repo = Path(repo)
        self._docs: dict[str, dict[str, dict[str, Any]]] = {}

    def is_kubernetes(self, rev: str = "main") -> bool:
        """True when `rev` carries the gitops config (else paths name the services)."""
        proc = git.run(self.repo, "cat-file", "-e", f"{rev}:{CONFIG_PATH}", check=False)
        return proc.returncode == 0

    def documents(self, sha: str) -> dict[str, dict[str, Any]]:
        """The logical documents a commit renders to; empty when it does not render."""
        if sha not in self._docs:
            files = git.files(self.repo, sha)
            try:
                config = GitOpsConfig.from_text(files.get(CONFIG_PATH))
                self._docs[sha] = overlay_documents(files, config)
            except (ConfigError, RenderError):
                self._docs[sha] = {}
        return self._docs[sha]

    def changed(self, sha: str) -> list[str]:
        """The services whose documents the commit changed against its first parent, sorted."""
        parent = git.rev_parse(self.repo, f"{sha}^1")
        before = self.documents(parent) if parent else {}
        after = self.documents(sha)
        return sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
