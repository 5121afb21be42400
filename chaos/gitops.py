"""The shop's GitOps repository of Kubernetes manifests: a real git repo driven through `git`.

Layout (`chaos/manifests.py`, docs/contracts.md): a kustomize base and a production overlay, a flagd
flag file and `sre-space.gitops.yaml`, on branch `main`. The shop runs what the overlay renders to
at the tip of `main` (not whatever the work tree has checked out), rendered once per commit. The
chaos injectors commit straight to `main` with plumbing so that a branch checked out by the Fixer is
never disturbed. Commit dates can be pinned to simulated event time, so that commits line up with
the telemetry and recordings are byte-for-byte reproducible.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos.manifests import (
    FLAG_FILE,
    OVERLAY,
    Desired,
    ManifestError,
    complete,
    default_docs,
    repository_files,
)
from sre_space import git
from sre_space.git import Commit, GitError
from sre_space.gitops.build import RenderError, overlay_documents
from sre_space.gitops.config import CONFIG_PATH, ConfigError, GitOpsConfig

__all__ = ["BRANCH", "Commit", "GitError", "GitOpsRepo"]

BRANCH = "main"
AUTHOR_NAME = "sre-space chaos"
AUTHOR_EMAIL = "chaos@sre-space.local"


def _date_env(when_ns: int | None) -> dict[str, str]:
    if when_ns is None:
        return {}
    stamp = f"@{when_ns // 1_000_000_000} +0000"
    return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}


class GitOpsRepo:
    """A manifests repository at `path` (created by `create`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # a commit never changes, so what it renders to is read once
        self._rendered: dict[str, tuple[dict[str, dict[str, Any]], list[str]]] = {}

    # -- plumbing ---------------------------------------------------------------------------------
    def git(
        self, *args: str, input_text: str | None = None, env: dict[str, str] | None = None
    ) -> str:
        """Run git in the repository and return stdout; raises GitError with stderr."""
        return git.run(self.path, *args, input_text=input_text, env=env).stdout

    # -- creation ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, when_ns: int | None = None) -> GitOpsRepo:
        """Create the repository with the default manifests and an initial commit (idempotent)."""
        repo = cls(path)
        if (repo.path / ".git").exists() and repo.has_main():
            return repo
        repo.path.mkdir(parents=True, exist_ok=True)
        repo.git("init", "-q", "-b", BRANCH)
        repo.git("config", "user.name", AUTHOR_NAME)
        repo.git("config", "user.email", AUTHOR_EMAIL)
        repo.git("config", "commit.gpgsign", "false")
        docs = {name: complete(doc) for name, doc in default_docs().items()}
        for rel, text in repository_files(docs).items():
            (repo.path / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo.path / rel).write_text(text, encoding="utf-8")
        repo.git("add", ".")
        repo.git("commit", "-q", "-m", "Initial manifests", env=_date_env(when_ns))
        return repo

    def has_main(self) -> bool:
        """True when branch main has a commit."""
        return git.rev_parse(self.path, f"refs/heads/{BRANCH}") is not None

    # -- reading ----------------------------------------------------------------------------------
    def head(self) -> str:
        """The commit id at the tip of main (cheap: reads the ref file when it is loose)."""
        ref = self.path / ".git" / "refs" / "heads" / BRANCH
        try:
            return ref.read_text(encoding="ascii").strip()
        except OSError:
            return self.git("rev-parse", f"refs/heads/{BRANCH}").strip()

    def files(self, rev: str = BRANCH) -> dict[str, str]:
        """Every file at `rev` by path, read from git objects."""
        return git.files(self.path, rev)

    def _render(self, rev: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
        sha = self.head() if rev == BRANCH else self.git("rev-parse", rev).strip()
        if sha not in self._rendered:
            self._rendered[sha] = _documents(self.files(sha))
        return self._rendered[sha]

    def read_docs(self, rev: str = BRANCH) -> dict[str, dict[str, Any]]:
        """Every service's complete logical document at `rev`; ManifestError when it does not render."""
        docs, errors = self._render(rev)
        if errors:
            raise ManifestError(f"{rev} does not render:\n  " + "\n  ".join(errors))
        return copy.deepcopy(docs)

    def read_desired(self, rev: str = BRANCH) -> tuple[dict[str, Desired], list[str]]:
        """Desired state per service at `rev`, and why the services left out could not be read."""
        docs, errors = self._render(rev)
        return {k: Desired.from_doc(v) for k, v in docs.items()}, list(errors)

    def log(self, since: str | None = None) -> list[Commit]:
        """Commits on main, oldest first (after `since` when given)."""
        return git.log(self.path, f"{since}..{BRANCH}" if since else BRANCH, reverse=True)

    # -- writing ----------------------------------------------------------------------------------
    def commit(
        self,
        service: str,
        change: Callable[[dict[str, Any]], None],
        message: str,
        when_ns: int | None = None,
    ) -> str:
        """Change one service's logical document on main as a real commit; returns the commit id.

        The files that keep the changed values are rewritten and the result rendered before it is
        committed. Uses a private index so that the work tree and whatever branch it has checked
        out are left alone, then fast-forwards the work tree when it is on main.
        """
        old = self.head()
        docs = self.read_docs(old)
        doc = docs[service] = complete(docs[service])
        change(doc)
        old_files = self.files(old)
        # only the files that keep this service's values: a file the Fixer edited by hand for
        # another service keeps its bytes
        owned = (f"base/{service}.yaml", f"{OVERLAY}/kustomization.yaml", FLAG_FILE)
        generated = repository_files(docs)
        new_files = {**old_files, **{p: generated[p] for p in owned}}
        # refuse to commit what would not render to exactly the intended state
        rendered, errors = _documents(new_files)
        if errors or rendered != docs:
            why = errors or [f"the render of {service!r} does not show the change"]
            raise ManifestError("; ".join(why))
        changed = {p: t for p, t in new_files.items() if old_files.get(p) != t}
        env = _date_env(when_ns)
        with tempfile.TemporaryDirectory() as tmp:
            index_env = {**env, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.git("read-tree", old, env=index_env)
            for path, text in changed.items():
                blob = self.git("hash-object", "-w", "--stdin", input_text=text).strip()
                self.git("update-index", "--cacheinfo", f"100644,{blob},{path}", env=index_env)
            tree = self.git("write-tree", env=index_env).strip()
        new = self.git("commit-tree", tree, "-p", old, "-m", message, env=env).strip()
        self.git("update-ref", f"refs/heads/{BRANCH}", new, old)
        self._rendered[new] = (rendered, [])
        self._sync_worktree(old, new)
        return new

    def _sync_worktree(self, old: str, new: str) -> None:
        # keep a work tree that has main checked out in step with main (two-tree fast-forward)
        try:
            current = self.git("symbolic-ref", "-q", "HEAD").strip()
        except GitError:
            return
        if current == f"refs/heads/{BRANCH}":
            # local edits in the work tree make this fail: leave them to their owner
            with contextlib.suppress(GitError):
                self.git("read-tree", "-m", "-u", old, new)

    def bundle(self, out: str | Path) -> None:
        """Write main's history as a git bundle (clone it with `git clone FILE`)."""
        self.git("bundle", "create", "-q", str(Path(out).resolve()), BRANCH)


def _documents(files: dict[str, str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The complete logical documents a snapshot renders to, and the errors of what did not."""
    try:
        config = GitOpsConfig.from_text(files.get(CONFIG_PATH))
        docs = overlay_documents(files, config)
    except (ConfigError, RenderError) as exc:
        return {}, [str(exc)]
    out, errors = {}, []
    for name, doc in docs.items():
        try:
            out[name] = complete(doc)
        except ManifestError as exc:
            errors.append(str(exc))
    return out, errors
