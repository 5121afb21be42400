"""The GitOps repository of manifests: a real git repo driven through the `git` command line.

Layout (docs/contracts.md): `services/<service>.yaml` and `schema/service.schema.json` on branch
`main`. The shop reads desired state from `main` (not from whatever the work tree has checked out),
and the chaos injectors commit straight to `main` with plumbing so that a branch checked out by the
Fixer is never disturbed. Commit dates can be pinned to simulated event time, so that commits line up
with the telemetry and recordings are byte-for-byte reproducible.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos.manifests import Desired, ManifestError, default_docs, parse, render
from chaos.schema import schema_text
from sre_space import git
from sre_space.git import Commit, GitError

__all__ = ["BRANCH", "Commit", "GitError", "GitOpsRepo"]

BRANCH = "main"
AUTHOR_NAME = "sre-space chaos"
AUTHOR_EMAIL = "chaos@sre-space.local"
SCHEMA_PATH = "schema/service.schema.json"


def _date_env(when_ns: int | None) -> dict[str, str]:
    if when_ns is None:
        return {}
    stamp = f"@{when_ns // 1_000_000_000} +0000"
    return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}


class GitOpsRepo:
    """A manifests repository at `path` (created by `create`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

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
        (repo.path / "services").mkdir(exist_ok=True)
        (repo.path / "schema").mkdir(exist_ok=True)
        for name, doc in default_docs().items():
            (repo.path / "services" / f"{name}.yaml").write_text(render(doc), encoding="utf-8")
        (repo.path / SCHEMA_PATH).write_text(schema_text(), encoding="utf-8")
        repo.git("add", "services", "schema")
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

    def read_docs(self, rev: str = BRANCH) -> dict[str, dict[str, Any]]:
        """Every service manifest at `rev`, validated; raises ManifestError on the first bad one."""
        names = self.git("ls-tree", "--name-only", f"{rev}:services").split()
        files = [n for n in names if n.endswith(".yaml")]
        # one `cat-file --batch` for all files instead of one `git show` each
        out = self.git(
            "cat-file", "--batch", input_text="".join(f"{rev}:services/{f}\n" for f in files)
        )
        docs: dict[str, dict[str, Any]] = {}
        pos = 0
        for name in files:
            header_end = out.index("\n", pos)
            size = int(out[pos:header_end].split()[2])
            body = out[header_end + 1 : header_end + 1 + size]
            pos = header_end + 1 + size + 1
            doc = parse(body, f"services/{name}")
            docs[doc["service"]] = doc
        return docs

    def read_desired(self, rev: str = BRANCH) -> tuple[dict[str, Desired], list[str]]:
        """Desired state per service at `rev`, and the errors of manifests that did not validate."""
        try:
            docs = self.read_docs(rev)
        except ManifestError:
            # validate file by file so one bad manifest does not hide the good ones
            docs, errors = {}, []
            for name in self.git("ls-tree", "--name-only", f"{rev}:services").split():
                try:
                    doc = parse(self.git("show", f"{rev}:services/{name}"), f"services/{name}")
                    docs[doc["service"]] = doc
                except ManifestError as exc:
                    errors.append(str(exc))
            return {k: Desired.from_doc(v) for k, v in docs.items()}, errors
        return {k: Desired.from_doc(v) for k, v in docs.items()}, []

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
        """Change one service's manifest on main as a real commit; returns the commit id.

        The new manifest is validated before it is committed. Uses a private index so that the
        work tree and whatever branch it has checked out are left alone, then fast-forwards the
        work tree when it is on main.
        """
        path = f"services/{service}.yaml"
        old = self.head()
        doc = parse(self.git("show", f"{old}:{path}"), path)
        change(doc)
        text = render(doc)
        parse(text, path)  # refuse to commit an invalid manifest
        env = _date_env(when_ns)
        with tempfile.TemporaryDirectory() as tmp:
            index_env = {**env, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.git("read-tree", old, env=index_env)
            blob = self.git("hash-object", "-w", "--stdin", input_text=text).strip()
            self.git("update-index", "--cacheinfo", f"100644,{blob},{path}", env=index_env)
            tree = self.git("write-tree", env=index_env).strip()
        new = self.git("commit-tree", tree, "-p", old, "-m", message, env=env).strip()
        self.git("update-ref", f"refs/heads/{BRANCH}", new, old)
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
