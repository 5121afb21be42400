"""The local forge: pull requests on a real git repository of manifests (the default forge).

A pull request is a branch `sre/<incident-id>/<action>` holding one commit on top of `main`, plus a
record in the store. The branch commit is written with plumbing (a private index file, `commit-tree`,
`update-ref` with an empty old value). Merge is a real `git merge --no-ff`, run in a private
temporary worktree detached at `main`; a revert is one commit of the inverse edit the base class
planned, worded as `git revert` words it. `main` then moves by compare-and-swap
(`update-ref main new old`). The primary working tree is never
touched: other writers (the chaos injectors) commit to `main` with plumbing too, and readers (the
shop, the reconciler) read `main` from git, not from the working tree.

Identity and dates come from the command environment (`GIT_AUTHOR_*`, `GIT_COMMITTER_*`), never from
global git configuration; dates are the event time, so a replay produces the same commit ids.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from sinks.fixer.forge import (
    CheckResult,
    Forge,
    ForgeError,
    ForgeResult,
    PullRequest,
    PullRequestStore,
    git_date,
)
from sinks.fixer.playbook import Change, Revision
from sinks.store.sqlite import Store
from sre_space import git

_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class LocalForge(Forge):
    """`Forge` over a git working tree with `main` checked out."""

    name = "local"

    def __init__(
        self,
        repo: str | Path,
        store: Store,
        *,
        main: str = "main",
        author_name: str = "SRE-Space Fixer",
        author_email: str = "fixer@sre-space.invalid",
        git: str = "git",
        timeout_s: float = 60.0,
    ) -> None:
        self.repo = Path(repo)
        self.main = main
        self.records = PullRequestStore(store, self.name)
        self._identity = {
            "GIT_AUTHOR_NAME": author_name,
            "GIT_AUTHOR_EMAIL": author_email,
            "GIT_COMMITTER_NAME": author_name,
            "GIT_COMMITTER_EMAIL": author_email,
        }
        self._git_bin = git
        self._timeout = timeout_s
        # One git operation at a time per forge: merges and reverts move the working tree.
        self._lock = threading.RLock()
        self._blobs: dict[str, str] = {}  # blob id -> text; a blob never changes

    # --- git ------------------------------------------------------------------------------------

    def _git(
        self,
        *args: str,
        stdin: str | None = None,
        now: int | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        where: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = dict(self._identity)
        if now is not None:
            full_env["GIT_AUTHOR_DATE"] = full_env["GIT_COMMITTER_DATE"] = git_date(now)
        full_env.update(env or {})
        try:
            return git.run(
                where or self.repo,
                *args,
                input_text=stdin,
                env=full_env,
                check=check,
                timeout=self._timeout,
                git=self._git_bin,
            )
        except git.GitError as exc:
            raise ForgeError(str(exc)) from exc

    def _rev(self, ref: str) -> str | None:
        try:
            return git.rev_parse(self.repo, ref, timeout=self._timeout, git=self._git_bin)
        except git.GitError as exc:
            raise ForgeError(str(exc)) from exc

    # --- the repository at any ref ---------------------------------------------------------------

    def head(self, ref: str = "main") -> str:
        """The commit a branch points at."""
        sha = self._rev(ref)
        if sha is None:
            raise ForgeError(f"no branch {ref!r} in {self.repo}")
        return sha

    def read(self, path: str, ref: str = "main") -> str | None:
        """A file's text at a ref, or None."""
        proc = self._git("cat-file", "blob", f"{ref}:{path}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def history(self, path: str, limit: int = 50) -> list[Revision]:
        """The file's versions along main's first-parent history, newest first."""
        out = self._git(
            "log", "--first-parent", f"-n{int(limit)}", "--format=%H %cI", self.main, "--", path
        ).stdout
        revs = []
        for line in out.splitlines():
            sha, _, at = line.partition(" ")
            revs.append(Revision(sha=sha, at=at, text=self.read(path, sha)))
        return revs

    def files(self, ref: str) -> dict[str, str]:
        """The text files at a ref, read from git objects (never the working tree)."""
        out: dict[str, str] = {}
        listing = self._git("ls-tree", "-r", "-z", ref).stdout
        for entry in listing.split("\0"):
            meta, _, name = entry.partition("\t")
            parts = meta.split()
            if not name or len(parts) != 3 or parts[1] != "blob":
                continue
            text = self._blobs.get(parts[2])
            if text is None:
                proc = self._git("cat-file", "blob", parts[2], check=False)
                if proc.returncode != 0:
                    continue
                text = self._blobs[parts[2]] = proc.stdout
            out[name] = text
        return out

    def first_parents(self, limit: int) -> list[tuple[str, str]]:
        """(sha, commit time) of main's first-parent history, newest first."""
        out = self._git("log", "--first-parent", f"-n{int(limit)}", "--format=%H %cI", self.main)
        return [(sha, at) for sha, _, at in (ln.partition(" ") for ln in out.stdout.splitlines())]

    def parent(self, sha: str) -> str | None:
        """A commit's first parent, or None for a root commit or an unknown sha."""
        return self._rev(f"{sha}^1")

    def commit_changes(self, sha: str) -> dict[str, tuple[str | None, str | None]]:
        """Files a commit changed against its first parent: path -> (before, after)."""
        full = self._rev(sha)
        if full is None:
            return {}
        parent = self._rev(f"{full}^1")
        names = self._git(
            "diff", "--name-only", "--no-renames", parent or _EMPTY_TREE, full
        ).stdout.split()
        return {p: (self.read(p, parent) if parent else None, self.read(p, full)) for p in names}

    # --- pull requests ----------------------------------------------------------------------------

    def _push_change(
        self, branch: str, change: Change, message: str, now: int
    ) -> tuple[str, str] | None:
        head = self._rev(f"refs/heads/{branch}")
        if head is not None:
            # A crash after the branch was written and before the record: adopt the branch.
            return self._git("merge-base", self.main, head).stdout.strip(), head
        base = self.head(self.main)
        if self.read(change.path, base) != change.old_text:
            return None
        head = self._commit_on(base, change, message, now)
        # Empty old value: create only, never move a branch someone else wrote.
        self._git("update-ref", f"refs/heads/{branch}", head, "")
        return base, head

    def _open_pull(
        self, branch: str, title: str, body: str, labels: list[str]
    ) -> tuple[int | None, str]:
        # The branch is the pull request; the record in the store is all there is besides.
        return None, f"{self.repo}#{branch}"

    def _commit_on(self, base: str, change: Change, message: str, now: int) -> str:
        blob = self._git("hash-object", "-w", "--stdin", stdin=change.new_text).stdout.strip()
        with tempfile.TemporaryDirectory(prefix="sre-space-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self._git("read-tree", base, env=env)
            self._git(
                "update-index", "--add", "--cacheinfo", f"100644,{blob},{change.path}", env=env
            )
            tree = self._git("write-tree", env=env).stdout.strip()
        return self._git(
            "commit-tree", tree, "-p", base, stdin=f"{message}\n", now=now
        ).stdout.strip()

    def run_checks(self, pr_id: str, policy_check: CheckResult, now: int) -> ForgeResult:
        """Schema, scope and policy checks on the branch head; stored on the record."""
        with self._lock:
            pr = self.records.get(pr_id)
            if pr is None:
                return ForgeResult(False, None, f"no pull request {pr_id}")
            changed = self._diff(pr.base_sha, pr.head_sha)
            checks = self._checks(pr, changed, policy_check)
            return self._record_checks(pr, checks, now)

    def _diff(self, base: str, head: str) -> dict[str, tuple[str | None, str | None]]:
        names = self._git("diff", "--name-only", "--no-renames", base, head).stdout.split()
        return {p: (self.read(p, base), self.read(p, head)) for p in names}

    def merge(self, pr_id: str, now: int) -> ForgeResult:
        """A `--no-ff` merge commit on main once checks (and approval) allow; idempotent."""
        with self._lock:
            pr = self.records.get(pr_id)
            if pr is None:
                return ForgeResult(False, None, f"no pull request {pr_id}")
            if pr.state in ("merged", "reverted"):
                return ForgeResult(True, pr, f"already {pr.state}")
            if pr.state == "closed":
                return ForgeResult(False, pr, "pull request is closed")
            merged = self._find_merge(pr.head_sha)
            if merged is not None:
                # The merge happened before a crash; only the record is missing it.
                pr = pr.with_(state="merged", merge_sha=merged, updated_at=now)
                return ForgeResult(True, self.records.save(pr), "merged (recovered)")
            if not pr.checks_passed:
                return ForgeResult(False, pr, "checks have not passed")
            if pr.merge_mode == "approval" and not pr.approved_by:
                return ForgeResult(False, pr, "waiting for a person's approval")
            message = f"Merge {pr.branch}: {pr.title}\n\nSRE-Space-Incident: {pr.incident_id}\n"
            ok, detail = self._on_main(
                ["merge", "--no-ff", "--no-edit", "-m", message, pr.branch], now
            )
            if not ok:
                return ForgeResult(False, pr, f"merge failed: {detail}")
            pr = pr.with_(state="merged", merge_sha=detail, updated_at=now)
            return ForgeResult(True, self.records.save(pr), "merged")

    def _find_merge(self, head: str) -> str | None:
        if not head:
            return None
        if self._git("merge-base", "--is-ancestor", head, self.main, check=False).returncode != 0:
            return None
        out = self._git("rev-list", "--merges", "--parents", f"{head}..{self.main}").stdout
        for line in out.splitlines():
            sha, *parents = line.split()
            if head in parents[1:]:
                return sha
        return None

    def _on_main(self, command: list[str], now: int) -> tuple[bool, str]:
        """Run a porcelain command (a merge) on main in a private worktree.

        The primary working tree is never used: the chaos injectors and other writers commit to
        main with plumbing, so it can be stale, and the shop reads main itself. The result moves
        main with a compare-and-swap, so a concurrent writer is never overwritten.
        Returns (True, new main sha) or (False, git's message).
        """
        old = self.head(self.main)
        tmp = Path(tempfile.mkdtemp(prefix="sre-space-worktree-"))
        worktree = tmp / "main"
        try:
            self._git("worktree", "add", "--detach", "-q", str(worktree), old)
            proc = self._git(*command, now=now, where=worktree, check=False)
            if proc.returncode != 0:
                return False, proc.stderr.strip() or proc.stdout.strip()
            new = self._git("rev-parse", "HEAD", where=worktree).stdout.strip()
        finally:
            self._git("worktree", "remove", "--force", str(worktree), check=False)
            self._git("worktree", "prune", check=False)
            shutil.rmtree(tmp, ignore_errors=True)
        moved = self._git("update-ref", f"refs/heads/{self.main}", new, old, check=False)
        if moved.returncode != 0:
            return False, f"{self.main} moved while the commit was made; try again"
        return True, new

    def _find_revert(self, pr: PullRequest) -> tuple[str, int | None] | None:
        found = self._git(
            "log", self.main, "--format=%H", "-F", f"--grep=This reverts commit {pr.merge_sha}"
        ).stdout.split()
        return (found[0], None) if found else None

    def _land_revert(
        self, pr: PullRequest, inverse: Change, reason: str, now: int
    ) -> tuple[str, int | None] | str:
        # One commit on main in `git revert`'s words, moved there by compare-and-swap.
        base = self.head(self.main)
        if self.read(inverse.path, base) != inverse.old_text:
            return f"{inverse.path} changed on {self.main} since the revert was planned"
        subject = self._git("log", "-1", "--format=%s", str(pr.merge_sha)).stdout.strip()
        message = (
            f'Revert "{subject}"\n\nThis reverts commit {pr.merge_sha}.\n\n'
            f"{inverse.summary}\nReason: {reason}\nSRE-Space-Incident: {pr.incident_id}"
        )
        head = self._commit_on(base, inverse, message, now)
        moved = self._git("update-ref", f"refs/heads/{self.main}", head, base, check=False)
        if moved.returncode != 0:
            return f"{self.main} moved while the revert was committed; try again"
        return head, None
