"""The GitHub forge: the same `Forge` interface over PyGithub (branch, contents API, pull request).

Used when `GITHUB_TOKEN` and `SRE_GITHUB_REPO` are set. A pull request is a branch
`sre/<incident-id>/<action>` created from `main`, one commit through the contents API, and a pull
request with labels and the evidence in its body. Checks run here (schema, scope, policy; on a
Kubernetes repository, on the head's render) and are published as commit statuses
(`sre-space/<check>`); merge happens when they pass, or GitHub's auto-merge is enabled when asked.
A revert is a new pull request with the inverse edit the base class planned. Files at any ref come
from the git trees and blobs API, so a Kubernetes repository renders here as from a local clone.

Every step looks GitHub up before it creates anything (ref, file content, open pull request), and is
retried as a whole on 5xx and rate limits, so a crash or a retry creates no duplicate.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from itertools import islice
from typing import TypeVar

from github import Github, GithubException, UnknownObjectException
from github.GitCommit import GitCommit
from github.PullRequest import PullRequest as GhPull
from github.Repository import Repository

from sinks.fixer.forge import (
    CheckResult,
    Forge,
    ForgeError,
    ForgeResult,
    PullRequest,
    PullRequestStore,
    branch_for,
)
from sinks.fixer.github_client import RetryPolicy, call_with_retries
from sinks.fixer.playbook import Change, Revision
from sinks.fixer.pr_body import marker, redact
from sinks.store.sqlite import Store

T = TypeVar("T")


class GithubForge(Forge):
    """`Forge` over a GitHub repository through PyGithub."""

    name = "github"

    def __init__(
        self,
        github: Github,
        repo: str,
        store: Store,
        *,
        main: str = "main",
        retry: RetryPolicy | None = None,
        use_auto_merge: bool = False,
        secrets: Sequence[str] = (),
    ) -> None:
        self.github = github
        self.repo_name = repo
        self.owner = repo.split("/", 1)[0]
        self.main = main
        self.records = PullRequestStore(store, self.name)
        self.retry = retry or RetryPolicy()
        self.use_auto_merge = use_auto_merge
        self.secrets = tuple(secrets)
        self._repo: Repository | None = None
        self._blobs: dict[str, str] = {}  # blob sha -> text; a blob never changes

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return call_with_retries(what, fn, self.retry)

    @property
    def repo(self) -> Repository:
        """The repository handle (fetched once)."""
        if self._repo is None:
            self._repo = self._call("get repository", lambda: self.github.get_repo(self.repo_name))
        return self._repo

    # --- the repository at any ref -----------------------------------------------------------

    def head(self, ref: str = "main") -> str:
        """The commit a branch points at."""
        return self._call("get ref", lambda: self.repo.get_git_ref(f"heads/{ref}").object.sha)

    def _read(self, path: str, ref: str) -> tuple[str, str] | None:
        """(text, blob sha) of a file at a ref, or None when it does not exist."""
        try:
            content = self.repo.get_contents(path, ref=ref)
        except UnknownObjectException:
            return None
        if isinstance(content, list):
            return None
        return content.decoded_content.decode("utf-8"), content.sha

    def read(self, path: str, ref: str = "main") -> str | None:
        """A file's text at a ref, or None."""
        found = self._call("get contents", lambda: self._read(path, ref))
        return None if found is None else found[0]

    def history(self, path: str, limit: int = 50) -> list[Revision]:
        """The file's versions on main, newest first (commits that changed it)."""

        def commits() -> list[tuple[str, str]]:
            out = []
            for commit in islice(self.repo.get_commits(sha=self.main, path=path), limit):
                date = commit.commit.committer.date
                out.append((commit.sha, date.isoformat() if date else ""))
            return out

        return [
            Revision(sha=sha, at=at, text=self.read(path, sha))
            for sha, at in self._call("list commits", commits)
        ]

    def files(self, ref: str) -> dict[str, str]:
        """The text files at a ref: one recursive tree, then each blob not read before."""

        def tree() -> list[tuple[str, str]]:
            listing = self.repo.get_git_tree(ref, recursive=True)
            if listing.raw_data.get("truncated"):
                raise ForgeError(f"GitHub truncated the tree of {ref}; the repository is too big")
            return [(e.path, e.sha) for e in listing.tree if e.type == "blob"]

        out: dict[str, str] = {}
        for path, blob in self._call("get tree", tree):
            text = self._blob(blob)
            if text is not None:
                out[path] = text
        return out

    def _blob(self, sha: str) -> str | None:
        """A blob's text (cached: a blob never changes), or None when it is not UTF-8 text."""
        if sha not in self._blobs:
            raw = self._call("get blob", lambda: self.repo.get_git_blob(sha))
            try:
                self._blobs[sha] = base64.b64decode(raw.content).decode("utf-8")
            except UnicodeDecodeError:
                return None
        return self._blobs[sha]

    def first_parents(self, limit: int) -> list[tuple[str, str]]:
        """(sha, commit time) of main's first-parent history, newest first (one commit a call)."""
        out: list[tuple[str, str]] = []
        sha: str | None = self.head(self.main)
        while sha is not None and len(out) < limit:
            commit = self._git_commit(sha)
            date = commit.committer.date
            out.append((commit.sha, date.isoformat() if date else ""))
            sha = commit.parents[0].sha if commit.parents else None
        return out

    def parent(self, sha: str) -> str | None:
        """A commit's first parent, or None for a root commit or an unknown sha."""
        try:
            commit = self._git_commit(sha)
        except ForgeError:
            return None
        return commit.parents[0].sha if commit.parents else None

    def _git_commit(self, sha: str) -> GitCommit:
        return self._call("get commit", lambda: self.repo.get_git_commit(sha))

    def commit_changes(self, sha: str) -> dict[str, tuple[str | None, str | None]]:
        """Files a commit changed against its first parent: path -> (before, after)."""

        def files() -> tuple[str | None, list[str]]:
            commit = self.repo.get_commit(sha)
            parent = commit.parents[0].sha if commit.parents else None
            return parent, [f.filename for f in commit.files]

        try:
            parent, names = self._call("get commit", files)
        except ForgeError:
            return {}
        return {p: (self.read(p, parent) if parent else None, self.read(p, sha)) for p in names}

    # --- pull requests ------------------------------------------------------------------------

    def _ensure_branch(self, branch: str, base: str | None = None) -> tuple[str, bool]:
        """The branch's head sha, creating it from main (or `base`) when missing; (sha, created)."""

        def ensure() -> tuple[str, bool]:
            try:
                return self.repo.get_git_ref(f"heads/{branch}").object.sha, False
            except UnknownObjectException:
                pass
            start = base or self.repo.get_git_ref(f"heads/{self.main}").object.sha
            try:
                ref = self.repo.create_git_ref(ref=f"refs/heads/{branch}", sha=start)
            except GithubException as exc:
                if exc.status == 422:  # "Reference already exists": a lost response, adopt it
                    return self.repo.get_git_ref(f"heads/{branch}").object.sha, False
                raise
            return ref.object.sha, True

        return self._call("create branch", ensure)

    def _ensure_content(self, branch: str, path: str, text: str, message: str) -> str:
        """Commit `text` to `path` on the branch unless it is already there; the branch head."""

        def ensure() -> str:
            current = self._read(path, branch)
            if current is not None and current[0] == text:
                return str(self.repo.get_git_ref(f"heads/{branch}").object.sha)
            if current is None:
                result = self.repo.create_file(path, message, text, branch=branch)
            else:
                result = self.repo.update_file(path, message, text, current[1], branch=branch)
            return str(result["commit"].sha)

        return self._call("commit file", ensure)

    def _ensure_pull(self, branch: str, title: str, body: str, labels: list[str]) -> GhPull:
        def ensure() -> GhPull:
            pulls = list(
                self.repo.get_pulls(state="all", head=f"{self.owner}:{branch}", base=self.main)
            )
            pull = (
                pulls[0]
                if pulls
                else self.repo.create_pull(base=self.main, head=branch, title=title, body=body)
            )
            missing = [x for x in labels if x not in {label.name for label in pull.labels}]
            if missing:
                pull.add_to_labels(*missing)
            return pull

        return self._call("open pull request", ensure)

    def _push_change(
        self, branch: str, change: Change, message: str, now: int
    ) -> tuple[str, str] | None:
        # One commit through the contents API; the branch is created from main when missing.
        branch_sha, created = self._ensure_branch(branch)
        if created and self.read(change.path, branch_sha) != change.old_text:
            return None
        head = self._ensure_content(branch, change.path, change.new_text, message)
        base = (
            branch_sha
            if head != branch_sha
            else self._call("get commit", lambda: self.repo.get_commit(head).parents[0].sha)
        )
        return base, head

    def _open_pull(
        self, branch: str, title: str, body: str, labels: list[str]
    ) -> tuple[int | None, str]:
        pull = self._ensure_pull(branch, title, body, labels)
        return pull.number, pull.html_url

    def _redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def run_checks(self, pr_id: str, policy_check: CheckResult, now: int) -> ForgeResult:
        """Schema, scope and policy on the head commit; published as commit statuses."""
        pr = self.records.get(pr_id)
        if pr is None or pr.number is None:
            return ForgeResult(False, None, f"no pull request {pr_id}")
        number = pr.number
        names = self._call(
            "list files", lambda: [f.filename for f in self.repo.get_pull(number).get_files()]
        )
        changed = {p: (self.read(p, pr.base_sha), self.read(p, pr.head_sha)) for p in names}
        checks = self._checks(pr, changed, policy_check)
        head = pr.head_sha

        def publish() -> None:
            commit = self.repo.get_commit(head)
            for c in checks:
                commit.create_status(
                    state="success" if c.ok else "failure",
                    description=redact(c.detail, self.secrets)[:140],
                    context=f"sre-space/{c.name}",
                )

        self._call("publish statuses", publish)
        return self._record_checks(pr, checks, now)

    def _reviewer(self, pull: GhPull) -> str | None:
        for review in pull.get_reviews():
            if review.state == "APPROVED":
                return str(review.user.login) if review.user else "unknown"
        return None

    def merge(self, pr_id: str, now: int) -> ForgeResult:
        """Merge when checks passed and, where needed, a person approved; idempotent."""
        pr = self.records.get(pr_id)
        if pr is None or pr.number is None:
            return ForgeResult(False, None, f"no pull request {pr_id}")
        if pr.state in ("merged", "reverted"):
            return ForgeResult(True, pr, f"already {pr.state}")
        number = pr.number
        pull = self._call("get pull request", lambda: self.repo.get_pull(number))
        if pull.merged:
            pr = pr.with_(state="merged", merge_sha=pull.merge_commit_sha, updated_at=now)
            return ForgeResult(True, self.records.save(pr), "merged (recovered)")
        if pull.state == "closed":
            return ForgeResult(False, self.records.save(pr.with_(state="closed")), "closed")
        if not pr.checks_passed:
            return ForgeResult(False, pr, "checks have not passed")
        if pr.merge_mode == "approval" and not pr.approved_by:
            reviewer = self._call("list reviews", lambda: self._reviewer(pull))
            if reviewer is None:
                return ForgeResult(False, pr, "waiting for a person's approval")
            pr = self.records.save(pr.with_(approved_by=reviewer, updated_at=now))
        if self.use_auto_merge:
            if not pr.auto_merge_enabled:
                self._call("enable auto-merge", lambda: pull.enable_automerge(merge_method="MERGE"))
                pr = self.records.save(pr.with_(auto_merge_enabled=True, updated_at=now))
            return ForgeResult(False, pr, "auto-merge enabled; GitHub merges when checks pass")

        title = f"Merge {pr.branch}: {pr.title}"
        message = f"SRE-Space-Incident: {pr.incident_id}"
        head = pr.head_sha

        def do_merge() -> str:
            fresh = self.repo.get_pull(number)
            if fresh.merged:
                return str(fresh.merge_commit_sha)
            status = fresh.merge(
                merge_method="merge", commit_title=title, commit_message=message, sha=head
            )
            if not status.merged:
                raise ForgeError(f"GitHub refused the merge: {status.message}")
            return str(status.sha)

        try:
            sha = self._call("merge", do_merge)
        except ForgeError as exc:
            return ForgeResult(False, pr, str(exc))
        pr = pr.with_(state="merged", merge_sha=sha, updated_at=now)
        return ForgeResult(True, self.records.save(pr), "merged")

    def _revert_branch(self, pr: PullRequest) -> str:
        return branch_for(pr.incident_id, f"revert-{pr.action}")

    def _find_revert(self, pr: PullRequest) -> tuple[str, int | None] | None:
        branch = self._revert_branch(pr)
        pulls = self._call(
            "find revert pull request",
            lambda: list(self.repo.get_pulls(state="all", head=f"{self.owner}:{branch}")),
        )
        merged = [p for p in pulls if p.merged]
        return (str(merged[0].merge_commit_sha), merged[0].number) if merged else None

    def _land_revert(
        self, pr: PullRequest, inverse: Change, reason: str, now: int
    ) -> tuple[str, int | None] | str:
        # A revert pull request from its own branch, merged at once: the change already merged
        # under the policy, and verification (not a person) asked for its undo.
        branch = self._revert_branch(pr)
        title = f"Revert: {pr.title}"
        if (
            self._push_change(branch, inverse, f"Revert {pr.title}\n\n{inverse.summary}", now)
            is None
        ):
            return f"{inverse.path} changed on {self.main} since the revert was planned"
        restores = ", ".join(f"`{k}` = {v!r}" for k, v in sorted(inverse.after.items()))
        body = redact(
            f"{marker(pr.incident_id, f'revert:{pr.action}')}\n"
            f"Reverts #{pr.number} because verification failed: {reason}\n\n"
            f"Restores {restores} in `{inverse.path}`.",
            self.secrets,
        )
        number, _url = self._open_pull(branch, title, body, ["sre-space", "revert"])
        assert number is not None

        def do_merge() -> str:
            fresh = self.repo.get_pull(number)
            if fresh.merged:
                return str(fresh.merge_commit_sha)
            status = fresh.merge(merge_method="merge", commit_title=title)
            if not status.merged:
                raise ForgeError(f"GitHub refused the revert merge: {status.message}")
            return str(status.sha)

        try:
            return self._call("merge revert", do_merge), number
        except ForgeError as exc:
            return str(exc)
