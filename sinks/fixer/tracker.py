"""The incident tracker: one issue per incident, a comment per step, labels that follow the lifecycle.

Scout opens the issue with the symptoms, Brain comments the diagnosis, Fixer links its pull request,
the verifier comments the result, Memory closes it with the post-mortem. Two backends share the
bookkeeping in `IncidentTracker`: `LocalTracker` (the store, rendered as Markdown) and
`GithubTracker` (GitHub Issues through PyGithub).

Idempotency, by incident id and step key: what was done is written to the store's `tracker` table
right after it is done, and before anything is created the backend is searched for the hidden marker
`<!-- sre-space:incident=ID step=KEY -->` that every body carries, so a crash between the remote
write and the store write is repaired on restart instead of duplicated.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from github import Github
from github.Issue import Issue
from github.Repository import Repository

from sinks.fixer.forge import PullRequest
from sinks.fixer.github_client import RetryPolicy, call_with_retries
from sinks.fixer.pr_body import marker, quote, redact
from sinks.store.sqlite import Store
from sre_space.records import Diagnosis, Incident
from sre_space.timeutil import ns_to_rfc3339

BASE_LABELS = ("sre-space", "incident")


@dataclass(frozen=True, slots=True)
class IssueRef:
    """Where an incident's issue lives."""

    incident_id: str
    number: int
    url: str


def lifecycle_labels(state: str, severity: str, extra: Iterable[str] = ()) -> list[str]:
    """`sre-space`, `incident`, `state:<state>`, `severity:<severity>` plus extras, deduplicated."""
    labels = [*BASE_LABELS, f"state:{state}", f"severity:{severity}", *extra]
    return list(dict.fromkeys(labels))


class IncidentTracker(ABC):
    """Lifecycle operations over a backend's primitives; every operation is idempotent."""

    backend: str = "abstract"

    def __init__(self, store: Store, *, secrets: Sequence[str] = ()) -> None:
        self.store = store
        self.secrets = tuple(secrets)
        self._lock = threading.RLock()

    # --- bookkeeping in the store -----------------------------------------------------------

    def _row_id(self, incident_id: str) -> str:
        return f"{self.backend}:{incident_id}"

    def record(self, incident_id: str) -> dict[str, Any] | None:
        """What the tracker did for an incident: issue number, url, labels, steps done."""
        return self.store.get("tracker", self._row_id(incident_id))

    def _save(self, incident_id: str, rec: dict[str, Any]) -> None:
        self.store.upsert(
            "tracker", self._row_id(incident_id), rec, ts=rec.get("opened_at", ""), key=incident_id
        )

    def issue(self, incident_id: str) -> IssueRef | None:
        """The incident's issue, when one was opened."""
        rec = self.record(incident_id)
        if not rec or rec.get("number") is None:
            return None
        return IssueRef(incident_id, int(rec["number"]), str(rec.get("url", "")))

    # --- lifecycle ---------------------------------------------------------------------------

    def open_issue(self, incident: Incident, symptoms: str) -> IssueRef:
        """Open the incident's issue with its symptoms (Scout); returns the existing one on retry."""
        with self._lock:
            existing = self.issue(incident.id)
            if existing is not None:
                return existing
            title = redact(
                f"[{incident.severity}] {incident.summary or 'Incident'} ({', '.join(incident.services)})",
                self.secrets,
            )[:200]
            body = redact(
                f"{marker(incident.id, 'open')}\n{self._symptoms_md(incident, symptoms)}",
                self.secrets,
            )
            labels = lifecycle_labels(incident.state, incident.severity)
            ref = self._find_issue(incident.id)
            if ref is None:
                ref = self._create_issue(incident.id, title, body, labels)
            self._save(
                incident.id,
                {
                    "incident_id": incident.id,
                    "backend": self.backend,
                    "number": ref.number,
                    "url": ref.url,
                    "title": title,
                    "state": incident.state,
                    "severity": incident.severity,
                    "labels": labels,
                    "opened_at": ns_to_rfc3339(incident.opened_at),
                    "steps": {"open": ns_to_rfc3339(incident.opened_at)},
                    "closed": False,
                },
            )
            return ref

    def comment(self, incident_id: str, step: str, body: str, *, at: int | None = None) -> bool:
        """Post a comment once per step key; False when it had been posted before."""
        with self._lock:
            rec = self._require(incident_id)
            if step in rec["steps"]:
                return False
            ref = IssueRef(incident_id, int(rec["number"]), rec["url"])
            text = redact(f"{marker(incident_id, step)}\n{body}", self.secrets)
            stamp = ns_to_rfc3339(at) if at is not None else ""
            created = False
            if not self._has_comment(ref, marker(incident_id, step)):
                self._create_comment(ref, text, stamp)
                created = True
            rec["steps"][step] = stamp or "done"
            self._save(incident_id, rec)
            return created

    def set_state(
        self,
        incident_id: str,
        state: str,
        *,
        severity: str | None = None,
        extra: Iterable[str] = (),
    ) -> list[str]:
        """Replace the lifecycle labels (`state:`, `severity:`); idempotent."""
        with self._lock:
            rec = self._require(incident_id)
            labels = lifecycle_labels(state, severity or rec["severity"], extra)
            if labels != rec.get("labels"):
                self._set_labels(IssueRef(incident_id, int(rec["number"]), rec["url"]), labels)
                rec.update(labels=labels, state=state, severity=severity or rec["severity"])
                self._save(incident_id, rec)
            return labels

    def comment_diagnosis(self, diagnosis: Diagnosis, *, at: int | None = None) -> bool:
        """Brain's diagnosis as a comment (step `diagnosis`)."""
        return self.comment(diagnosis.incident_id, "diagnosis", diagnosis_md(diagnosis), at=at)

    def link_pull_request(self, pr: PullRequest, *, at: int | None = None) -> bool:
        """Fixer's pull request as a comment (step `pull_request:<action>`)."""
        where = f"#{pr.number}" if pr.number else f"`{pr.branch}`"
        link = f"[{where}]({pr.url})" if pr.url.startswith("http") else where
        body = (
            f"**Remediation:** {link} — {pr.title}\n\n"
            f"Merge: {'automatic once checks pass' if pr.merge_mode == 'auto_merge' else 'needs approval'}."
        )
        return self.comment(pr.incident_id, f"pull_request:{pr.action}", body, at=at)

    def comment_verification(
        self,
        incident_id: str,
        *,
        healthy: bool,
        detail: str,
        attempt: int = 1,
        at: int | None = None,
    ) -> bool:
        """The verification result (step `verification:<attempt>`)."""
        verdict = "recovered" if healthy else "did NOT recover"
        body = f"**Verification:** signals {verdict}.\n\n{detail}"
        return self.comment(incident_id, f"verification:{attempt}", body, at=at)

    def escalate(self, incident_id: str, reason: str, *, at: int | None = None) -> bool:
        """Label `state:escalated` and say why a person is needed (step `escalation`)."""
        self.set_state(incident_id, "escalated", extra=("needs-human",))
        return self.comment(
            incident_id, "escalation", f"**Escalated to a person.** {reason}", at=at
        )

    def close_with_postmortem(
        self, incident_id: str, postmortem_md: str, *, at: int | None = None
    ) -> bool:
        """Memory's post-mortem as the last comment, then close (step `postmortem`)."""
        with self._lock:
            posted = self.comment(incident_id, "postmortem", postmortem_md, at=at)
            rec = self._require(incident_id)
            if not rec.get("closed"):
                self.set_state(incident_id, "resolved")
                rec = self._require(incident_id)
                self._close(IssueRef(incident_id, int(rec["number"]), rec["url"]))
                rec["closed"] = True
                self._save(incident_id, rec)
            return posted

    def _require(self, incident_id: str) -> dict[str, Any]:
        rec = self.record(incident_id)
        if not rec or rec.get("number") is None:
            raise KeyError(f"no issue opened for incident {incident_id}; call open_issue first")
        return rec

    @staticmethod
    def _symptoms_md(incident: Incident, symptoms: str) -> str:
        return (
            f"## Incident `{incident.id}`\n\n"
            f"- severity: `{incident.severity}`\n- state: `{incident.state}`\n"
            f"- opened: {ns_to_rfc3339(incident.opened_at)}\n"
            f"- services: {', '.join(quote(s) for s in incident.services)}\n"
            f"- anomalies: {len(incident.anomaly_ids)}\n\n### Symptoms\n\n{symptoms}\n"
        )

    # --- backend primitives ------------------------------------------------------------------

    @abstractmethod
    def _find_issue(self, incident_id: str) -> IssueRef | None:
        """An existing issue carrying the incident's open marker."""

    @abstractmethod
    def _create_issue(self, incident_id: str, title: str, body: str, labels: list[str]) -> IssueRef:
        """Create the issue."""

    @abstractmethod
    def _has_comment(self, ref: IssueRef, mark: str) -> bool:
        """Whether a comment with this marker exists."""

    @abstractmethod
    def _create_comment(self, ref: IssueRef, body: str, at: str) -> None:
        """Add a comment; `at` is its event time as RFC 3339 text ("" when not given)."""

    @abstractmethod
    def _set_labels(self, ref: IssueRef, labels: list[str]) -> None:
        """Replace the issue's labels."""

    @abstractmethod
    def _close(self, ref: IssueRef) -> None:
        """Close the issue."""


def diagnosis_md(diagnosis: Diagnosis) -> str:
    """A diagnosis as Markdown: ranked candidates with their evidence, untrusted text quoted."""
    window = f"{ns_to_rfc3339(diagnosis.window_start)} – {ns_to_rfc3339(diagnosis.window_end)}"
    baseline = (
        f"{ns_to_rfc3339(diagnosis.baseline_start)} – {ns_to_rfc3339(diagnosis.baseline_end)}"
    )
    head = f"**Diagnosis** (window {window}, baseline {baseline})"
    if diagnosis.abstained or not diagnosis.candidates:
        return f"{head}\n\nThe Brain abstained: {quote(diagnosis.summary or 'no candidate')}"
    lines = [head, ""]
    for i, c in enumerate(diagnosis.candidates[:5], 1):
        lines.append(
            f"{i}. {quote(c.service)} — {quote(c.fault_class)}, score {c.score:.2f},"
            f" confidence {c.confidence:.0%}"
            + (
                f", actions {', '.join(quote(a.key(), 120) for a in c.actions)}"
                if c.actions
                else ""
            )
        )
        for ev in c.evidence[:4]:
            lines.append(f"   - {quote(ev.kind, 40)}: {quote(ev.description)}")
    if diagnosis.summary:
        lines += ["", f"Summary: {quote(diagnosis.summary, 600)}"]
    return "\n".join(lines)


class LocalTracker(IncidentTracker):
    """Issues in the store (`tracker` rows `local-issue:<id>`), rendered as Markdown files."""

    backend = "local"

    def __init__(
        self, store: Store, *, out_dir: str | Path | None = None, secrets: Sequence[str] = ()
    ) -> None:
        super().__init__(store, secrets=secrets)
        self.out_dir = Path(out_dir) if out_dir else None

    def _issue_id(self, incident_id: str) -> str:
        return f"local-issue:{incident_id}"

    def _issue_doc(self, incident_id: str) -> dict[str, Any] | None:
        return self.store.get("tracker", self._issue_id(incident_id))

    def _put(self, doc: dict[str, Any]) -> None:
        self.store.upsert(
            "tracker",
            self._issue_id(doc["incident_id"]),
            doc,
            ts=str(doc["number"]),
            key="local-issue",
        )
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path = self.out_dir / f"{doc['number']:05d}-{_safe(doc['incident_id'])}.md"
            path.write_text(render_markdown(doc), encoding="utf-8")

    def _find_issue(self, incident_id: str) -> IssueRef | None:
        doc = self._issue_doc(incident_id)
        return None if doc is None else IssueRef(incident_id, doc["number"], doc["url"])

    def _create_issue(self, incident_id: str, title: str, body: str, labels: list[str]) -> IssueRef:
        number = len(self.store.query("tracker", key="local-issue")) + 1
        url = f"local://issues/{number}"
        self._put(
            {
                "incident_id": incident_id,
                "number": number,
                "url": url,
                "title": title,
                "body": body,
                "labels": labels,
                "state": "open",
                "comments": [],
            }
        )
        return IssueRef(incident_id, number, url)

    def _has_comment(self, ref: IssueRef, mark: str) -> bool:
        doc = self._issue_doc(ref.incident_id) or {}
        return any(mark in c["body"] for c in doc.get("comments", []))

    def _create_comment(self, ref: IssueRef, body: str, at: str) -> None:
        doc = self._issue_doc(ref.incident_id)
        assert doc is not None
        doc["comments"].append({"at": at, "body": body})
        self._put(doc)

    def _set_labels(self, ref: IssueRef, labels: list[str]) -> None:
        doc = self._issue_doc(ref.incident_id)
        assert doc is not None
        doc["labels"] = labels
        self._put(doc)

    def _close(self, ref: IssueRef) -> None:
        doc = self._issue_doc(ref.incident_id)
        assert doc is not None
        doc["state"] = "closed"
        self._put(doc)

    def issue_doc(self, incident_id: str) -> dict[str, Any] | None:
        """The local issue (title, body, labels, state, comments) for display."""
        return self._issue_doc(incident_id)

    def markdown(self, incident_id: str) -> str:
        """The issue rendered as one Markdown document."""
        doc = self._issue_doc(incident_id)
        if doc is None:
            raise KeyError(f"no local issue for incident {incident_id}")
        return render_markdown(doc)


def render_markdown(doc: dict[str, Any]) -> str:
    """A local issue document as Markdown: title, state, labels, body, comments."""
    parts = [
        f"# #{doc['number']} {doc['title']}",
        "",
        f"**State:** {doc['state']} · **Labels:** {', '.join(f'`{label}`' for label in doc['labels'])}",
        "",
        doc["body"],
    ]
    for c in doc.get("comments", []):
        parts += ["", "---", "", f"*{c.get('at') or ''}*", "", c["body"]]
    return "\n".join(parts) + "\n"


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)[:80]


class GithubTracker(IncidentTracker):
    """Issues, comments and labels on GitHub through PyGithub; every step retried and idempotent."""

    backend = "github"

    def __init__(
        self,
        store: Store,
        github: Github,
        repo: str,
        *,
        retry: RetryPolicy | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        super().__init__(store, secrets=secrets)
        self.github = github
        self.repo_name = repo
        self.retry = retry or RetryPolicy()
        self._repo: Repository | None = None

    def _call(self, what: str, fn: Any) -> Any:
        return call_with_retries(what, fn, self.retry)

    def _get_repo(self) -> Repository:
        if self._repo is None:
            self._repo = self._call("get repository", lambda: self.github.get_repo(self.repo_name))
        return self._repo

    def _issue(self, ref: IssueRef) -> Issue:
        repo = self._get_repo()
        return self._call("get issue", lambda: repo.get_issue(ref.number))

    def _find_issue(self, incident_id: str) -> IssueRef | None:
        mark = marker(incident_id, "open")
        repo = self._get_repo()

        def find() -> IssueRef | None:
            for issue in repo.get_issues(state="all", labels=[BASE_LABELS[0]]):
                if issue.pull_request is None and mark in (issue.body or ""):
                    return IssueRef(incident_id, issue.number, issue.html_url)
            return None

        return self._call("find issue", find)

    def _create_issue(self, incident_id: str, title: str, body: str, labels: list[str]) -> IssueRef:
        repo = self._get_repo()

        def create() -> IssueRef:
            # Looked up again inside the retried step: a 5xx after GitHub created it must not
            # create a second one.
            found = self._find_issue(incident_id)
            if found is not None:
                return found
            issue = repo.create_issue(title=title, body=body, labels=labels)
            return IssueRef(incident_id, issue.number, issue.html_url)

        return self._call("create issue", create)

    def _has_comment(self, ref: IssueRef, mark: str) -> bool:
        def has() -> bool:
            return any(mark in (c.body or "") for c in self._issue(ref).get_comments())

        return self._call("list comments", has)

    def _create_comment(self, ref: IssueRef, body: str, at: str) -> None:
        first_line = body.splitlines()[0]

        def create() -> None:
            issue = self._issue(ref)
            if not any(first_line in (c.body or "") for c in issue.get_comments()):
                issue.create_comment(body)

        self._call("create comment", create)

    def _set_labels(self, ref: IssueRef, labels: list[str]) -> None:
        self._call("set labels", lambda: self._issue(ref).set_labels(*labels))

    def _close(self, ref: IssueRef) -> None:
        def close() -> None:
            issue = self._issue(ref)
            if issue.state != "closed":
                issue.edit(state="closed", state_reason="completed")

        self._call("close issue", close)


__all__ = [
    "BASE_LABELS",
    "GithubTracker",
    "IncidentTracker",
    "IssueRef",
    "LocalTracker",
    "diagnosis_md",
    "lifecycle_labels",
    "render_markdown",
]
