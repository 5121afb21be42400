"""What every forge offers: pull request records, checks and the interface the Fixer calls.

Two forges subclass `Forge`: `forge_local.LocalForge` (a real git repository, the default) and
`forge_github.GithubForge` (PyGithub). A pull request and a revert are built here, once (branch,
commit message, record; for a revert, the inverse change `undo` planned); the forges only read
files and move branches, commits and pull requests. Both persist their pull request records in the
store's `pull_requests` table *before* taking the next external step, and look the forge up again
before creating anything, so a crash and restart at any point creates no duplicate branch, commit
or pull request.

Failures that belong to the change (checks fail, a conflict, approval pending) come back as a
`ForgeResult` with `ok=False` and a reason; infrastructure failures (git missing, network down after
retries) raise `ForgeError` and the responder tries again on its next step.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sinks.fixer import manifest as mf
from sinks.fixer.k8s.repo import GitOpsRepo, ProposalError
from sinks.fixer.manifest import flatten
from sinks.fixer.playbook import Change, ManifestSource, guard
from sinks.fixer.policy import PastChange
from sinks.fixer.schema import load_schema, validate_manifest_text
from sinks.store.sqlite import Store
from sre_space.gitops.config import CONFIG_PATH
from sre_space.gitops.logical import FLAGS_PREFIX
from sre_space.records import TIME, Record
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339, rfc3339_to_ns

PRState = Literal["open", "merged", "closed", "reverted"]
MergeMode = Literal["auto_merge", "approval"]


# Plans the inverse of a merged change on main, rendered and validated; a string is a refusal.
Undo = Callable[[Change], "Change | str"]


class ForgeError(RuntimeError):
    """The forge itself failed (git, network); the step may be retried."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check on a pull request: name, pass/fail and what it found."""

    name: str
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class PullRequest(Record):
    """A pull request record as the Fixer stores it (same shape for every forge); its rows carry
    every field, None included, and unknown keys of old rows are ignored when read."""

    keep_none = True

    id: str  # "<incident-id>/<action>"
    forge: str
    incident_id: str
    action: str
    service: str
    branch: str
    title: str
    body: str
    labels: list[str]
    change: dict[str, Any]
    merge_mode: MergeMode
    created_at: int = field(metadata=TIME)
    updated_at: int = field(metadata=TIME)
    state: PRState = "open"
    base_sha: str = ""
    head_sha: str = ""
    merge_sha: str | None = None
    revert_sha: str | None = None
    revert_reason: str | None = None
    revert_number: int | None = None
    number: int | None = None
    url: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    approved_by: str | None = None
    auto_merge_enabled: bool = False

    @property
    def checks_passed(self) -> bool:
        """True when checks ran and every one passed."""
        return bool(self.checks) and all(c["ok"] for c in self.checks)

    def planned_change(self) -> Change:
        """The playbook change this pull request carries."""
        return Change.from_dict(self.change)

    def with_(self, **changes: Any) -> PullRequest:
        """A copy with fields replaced."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ForgeResult:
    """A forge operation's outcome: the pull request as it is now, or why not."""

    ok: bool
    pr: PullRequest | None = None
    reason: str = ""


class Forge(ManifestSource):
    """The forge interface the Fixer and the responder use, and the steps every forge shares."""

    name: str
    main: str
    records: PullRequestStore
    # Held around each pull request step; a forge that moves a shared working tree sets a lock.
    _lock: AbstractContextManager[Any] = nullcontext()

    @abstractmethod
    def head(self, ref: str = "main") -> str:
        """The commit id a branch points at."""

    def get(self, pr_id: str) -> PullRequest | None:
        """The stored pull request record, or None."""
        return self.records.get(pr_id)

    def open_pull_request(
        self,
        incident_id: str,
        change: Change,
        *,
        title: str,
        body: str,
        labels: list[str],
        merge_mode: MergeMode,
        now: int,
    ) -> ForgeResult:
        """Branch + one commit + pull request for a change; a retry returns the existing one."""
        pr_id = pr_id_for(incident_id, change.action)
        with self._lock:
            existing = self.records.get(pr_id)
            if existing is not None:
                return ForgeResult(True, existing, "pull request already open")
            branch = branch_for(incident_id, change.action)
            pushed = self._push_change(branch, change, f"{title}\n\n{change.summary}", now)
            if pushed is None:
                return ForgeResult(
                    False, None, f"{change.path} changed on {self.main} since it was planned"
                )
            base, head = pushed
            body = self._redact(body)
            number, url = self._open_pull(branch, title, body, labels)
            pr = PullRequest(
                id=pr_id,
                forge=self.name,
                incident_id=incident_id,
                action=change.action,
                service=change.service,
                branch=branch,
                title=title,
                body=body,
                labels=list(labels),
                change=change.to_dict(),
                merge_mode=merge_mode,
                created_at=now,
                updated_at=now,
                base_sha=base,
                head_sha=head,
                number=number,
                url=url,
            )
            return ForgeResult(True, self.records.save(pr), "opened")

    @abstractmethod
    def _push_change(
        self, branch: str, change: Change, message: str, now: int
    ) -> tuple[str, str] | None:
        """The branch with the change committed on top of main: (base, head) commit ids, adopting
        a branch a crash left behind; None when the file changed on main since it was planned."""

    @abstractmethod
    def _open_pull(
        self, branch: str, title: str, body: str, labels: list[str]
    ) -> tuple[int | None, str]:
        """The forge's pull request for the branch (found or created): its number and URL."""

    def _redact(self, text: str) -> str:
        """Text as this forge publishes it (a hosted forge scrubs its secrets)."""
        return text

    def _record_checks(self, pr: PullRequest, checks: list[CheckResult], now: int) -> ForgeResult:
        """Store the checks on the record; ok when every one passed."""
        pr = self.records.save(pr.with_(checks=[c.to_dict() for c in checks], updated_at=now))
        failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
        return ForgeResult(not failed, pr, "; ".join(failed) or "all checks passed")

    @abstractmethod
    def run_checks(self, pr_id: str, policy_check: CheckResult, now: int) -> ForgeResult:
        """Schema, scope and policy checks on the pull request's head; stored on the record."""

    def _checks(
        self,
        pr: PullRequest,
        changed: dict[str, tuple[str | None, str | None]],
        policy_check: CheckResult,
    ) -> list[CheckResult]:
        """The checks of a pull request's head, for the repository's layout (`run_checks`)."""
        change = pr.planned_change()
        if self.read(CONFIG_PATH, pr.head_sha) is not None:
            base, head = self.files(pr.base_sha), self.files(pr.head_sha)
            return kubernetes_checks(change, changed, base, head, policy_check)
        return standard_checks(
            change, changed, self.read(mf.SCHEMA_PATH, pr.head_sha), policy_check
        )

    def approve(self, pr_id: str, by: str, now: int) -> ForgeResult:
        """Record a person's approval of a pull request that needs one."""
        with self._lock:
            pr = self.records.get(pr_id)
            if pr is None:
                return ForgeResult(False, None, f"no pull request {pr_id}")
            if pr.approved_by:
                return ForgeResult(True, pr, f"already approved by {pr.approved_by}")
            return ForgeResult(True, self.records.save(pr.with_(approved_by=by, updated_at=now)))

    @abstractmethod
    def merge(self, pr_id: str, now: int) -> ForgeResult:
        """Merge when checks passed (and approval, when needed); idempotent."""

    def revert(self, pr_id: str, now: int, reason: str, undo: Undo) -> ForgeResult:
        """Land the inverse of a merged pull request on main (`undo` plans, renders and validates
        it on main); idempotent: a revert that already landed is found, not made again."""
        with self._lock:
            pr = self.records.get(pr_id)
            if pr is None:
                return ForgeResult(False, None, f"no pull request {pr_id}")
            if pr.state == "reverted":
                return ForgeResult(True, pr, "already reverted")
            if pr.state != "merged" or not pr.merge_sha:
                return ForgeResult(False, pr, f"nothing to revert: pull request is {pr.state}")
            found = self._find_revert(pr)
            if found is None:
                inverse = undo(pr.planned_change())
                if isinstance(inverse, str):
                    return ForgeResult(False, pr, f"revert refused: {inverse}")
                landed = self._land_revert(pr, inverse, reason, now)
                if isinstance(landed, str):
                    return ForgeResult(False, pr, f"revert failed: {landed}")
                found = landed
            sha, number = found
            pr = pr.with_(
                state="reverted",
                revert_sha=sha,
                revert_number=number,
                revert_reason=reason,
                updated_at=now,
            )
            return ForgeResult(True, self.records.save(pr), "reverted")

    @abstractmethod
    def _find_revert(self, pr: PullRequest) -> tuple[str, int | None] | None:
        """The revert of a merged pull request that already landed on main: (commit, number)."""

    @abstractmethod
    def _land_revert(
        self, pr: PullRequest, inverse: Change, reason: str, now: int
    ) -> tuple[str, int | None] | str:
        """Commit the inverse edit to main (the forge's way): (commit, number) or why not."""

    # --- the repository at any ref (`k8s.desired.Repository`) -------------------------------------

    @abstractmethod
    def files(self, ref: str) -> dict[str, str]:
        """The text files at a ref (a branch or a commit), by path."""

    @abstractmethod
    def first_parents(self, limit: int) -> list[tuple[str, str]]:
        """(sha, commit time) of main's first-parent history, newest first."""

    @abstractmethod
    def parent(self, sha: str) -> str | None:
        """A commit's first parent, or None for a root commit or an unknown sha."""


def pr_id_for(incident_id: str, action: str) -> str:
    """The pull request's stable id: one per incident and action."""
    return f"{incident_id}/{action}"


def branch_for(incident_id: str, action: str) -> str:
    """`sre/<incident-id>/<action>`, with characters git refuses in refs replaced."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", incident_id).strip(".-") or "incident"
    safe = safe.replace("..", "-")
    return f"sre/{safe}/{action}"


def git_date(now: int) -> str:
    """An event time (ns) as git's internal date format (`@epoch +0000`)."""
    return f"@{now // NS_PER_S} +0000"


class PullRequestStore:
    """Pull request records in the store's `pull_requests` table (one row per forge and id)."""

    def __init__(self, store: Store, forge: str) -> None:
        self.store = store
        self.forge = forge

    def _row_id(self, pr_id: str) -> str:
        return f"{self.forge}:{pr_id}"

    def get(self, pr_id: str) -> PullRequest | None:
        """The record, or None."""
        data = self.store.get("pull_requests", self._row_id(pr_id))
        return None if data is None else PullRequest.from_dict(data)

    def save(self, pr: PullRequest) -> PullRequest:
        """Write the record (before the next external step)."""
        self.store.upsert(
            "pull_requests",
            self._row_id(pr.id),
            pr.to_dict(),
            ts=ns_to_rfc3339(pr.created_at),
            key=pr.incident_id,
        )
        return pr

    def for_incident(self, incident_id: str) -> list[PullRequest]:
        """Every record of one incident, oldest first."""
        rows = self.store.query("pull_requests", key=incident_id)
        return [PullRequest.from_dict(r) for r in rows if r.get("forge") == self.forge]


def recent_changes(store: Store, since: int) -> list[PastChange]:
    """Changes the Fixer opened since an event time (any forge), for cool-downs and hourly caps."""
    out = []
    for row in store.query("pull_requests", since=ns_to_rfc3339(since)):
        if row.get("state") == "closed" and not row.get("merge_sha"):
            continue
        at = rfc3339_to_ns(row["created_at"])
        out.append(PastChange(service=row["service"], action=row["action"], at=at))
    return out


def kubernetes_checks(
    change: Change,
    changed: dict[str, tuple[str | None, str | None]],
    base: dict[str, str],
    head: dict[str, str],
    policy_check: CheckResult,
) -> list[CheckResult]:
    """The checks of a Kubernetes repository's pull request: the head renders and validates
    (schema), and its logical documents differ from the base's only in the change's keys (scope)."""
    errors = [f"{path}: deleted" for path, (_old, new) in sorted(changed.items()) if new is None]
    scope_errors: list[str] = []
    if set(changed) != {change.path}:
        scope_errors.append(f"changed files {sorted(changed)}, expected only {change.path}")
    note = ""
    try:
        before = GitOpsRepo(base).documents()
        repo = GitOpsRepo(head)
        after = repo.validated_documents()
        note = f"the {repo.layout.kind} render of the head validates"
    except ProposalError as exc:
        errors.append(str(exc))
    else:
        allowed = set(change.allowed_keys)
        for name in sorted(before.keys() | after.keys()):
            old, new = flatten(before.get(name, {})), flatten(after.get(name, {}))
            diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            # A flag no service owns shows in every document; its key is the change's own.
            bad = [
                k
                for k in diff
                if k not in allowed or (name != change.service and not k.startswith(FLAGS_PREFIX))
            ]
            if bad:
                scope_errors.append(f"{change.action} may not touch {name}: {', '.join(bad)}")
    schema_check = CheckResult("schema", not errors, "; ".join(errors) or note)
    scope_check = CheckResult(
        "scope",
        not scope_errors,
        "; ".join(scope_errors)
        or f"only {', '.join(change.allowed_keys)} of {change.service} in {change.path}",
    )
    return [schema_check, scope_check, policy_check]


def standard_checks(
    change: Change,
    changed: dict[str, tuple[str | None, str | None]],
    schema_text: str | None,
    policy_check: CheckResult,
) -> list[CheckResult]:
    """The checks of a service-manifest repository: schema of each changed manifest, scope of the
    diff key by key, policy."""
    schema, note = load_schema(schema_text)
    errors: list[str] = []
    for path, (_old, new) in sorted(changed.items()):
        if new is None:
            errors.append(f"{path}: deleted")
        elif mf.service_of_path(path):
            errors.extend(validate_manifest_text(path, new, schema))
    schema_check = CheckResult("schema", not errors, "; ".join(errors) if errors else note)
    scope_errors: list[str] = []
    if set(changed) != {change.path}:
        scope_errors.append(f"changed files {sorted(changed)}, expected only {change.path}")
    old, new = changed.get(change.path, (None, None))
    if old is not None and new is not None and mf.service_of_path(change.path):
        try:
            bad = guard(mf.parse(old), mf.parse(new), change.allowed_keys)
        except mf.ManifestError as exc:
            bad = [str(exc)]
        if bad:
            scope_errors.append(f"{change.action} may not touch {', '.join(bad)}")
    scope_check = CheckResult(
        "scope",
        not scope_errors,
        "; ".join(scope_errors) or f"only {', '.join(change.allowed_keys)} in {change.path}",
    )
    return [schema_check, scope_check, policy_check]
