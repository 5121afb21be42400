"""The desired state a forge holds, as the playbook plans on it, for every repository layout.

`RepositoryState` is the one path both forges take: `source()` gives the playbook logical documents
(`services/<service>.yaml`, rendered from Kubernetes YAML when main carries the gitops config),
`realize(change)` turns a planned change into the one file edit that carries it (rendered and
schema-validated), and `undo(change)` plans and realizes the inverse of a merged change.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from sinks.fixer import manifest as mf
from sinks.fixer.audit import AuditLog
from sinks.fixer.k8s.repo import GitOpsRepo, Proposal, ProposalError
from sinks.fixer.playbook import Change, ManifestSource, Playbook, Revision
from sinks.fixer.schema import load_schema, validate_manifest_text
from sre_space.gitops.config import CONFIG_PATH


class Repository(ManifestSource, Protocol):
    """A repository as both forges offer it: files at any ref and main's first-parent history."""

    def files(self, ref: str) -> dict[str, str]:
        """The text files at a ref (a branch or a commit), by path."""
        ...

    def first_parents(self, limit: int) -> list[tuple[str, str]]:
        """(sha, commit time) of main's first-parent history, newest first."""
        ...

    def parent(self, sha: str) -> str | None:
        """A commit's first parent, or None for a root commit or an unknown sha."""
        ...


class LogicalSource:
    """A ManifestSource whose `services/<service>.yaml` are the logical documents of a repository,
    now and at each commit of main (rendered per commit, so rollbacks and reverts plan too)."""

    def __init__(self, repo: Repository, limit: int = 20) -> None:
        self.repo = repo
        self.limit = limit
        # Per instance: `main` moves between uses, so a source lives for one planning step.
        self._docs: dict[str, dict[str, dict[str, Any]]] = {}

    def documents(self, ref: str) -> dict[str, dict[str, Any]]:
        """The logical documents at a ref (cached for this source's lifetime)."""
        if ref not in self._docs:
            try:
                self._docs[ref] = GitOpsRepo(self.repo.files(ref)).documents()
            except ProposalError as exc:
                # The playbook refuses on a ManifestError and audits its reason.
                raise mf.ManifestError(f"{ref}: {exc}") from None
        return self._docs[ref]

    def read(self, path: str, ref: str = "main") -> str | None:
        """The logical document of a service path; None for any other path or unknown service."""
        service = mf.service_of_path(path)
        doc = self.documents(ref).get(service) if service is not None else None
        return None if doc is None else mf.dump(doc)

    def history(self, path: str, limit: int = 50) -> list[Revision]:
        """The commits of main that changed the service's logical document, newest first."""
        service = mf.service_of_path(path)
        commits = self.repo.first_parents(min(limit, self.limit) + 1)
        texts: list[tuple[str, str, str | None]] = []
        for sha, at in commits:
            try:
                texts.append((sha, at, self.read(path, sha)))
            except mf.ManifestError:
                continue  # a commit that does not render is no version to go back to
        out = []
        for i, (sha, at, text) in enumerate(texts):
            older = texts[i + 1][2] if i + 1 < len(texts) else None
            if service is not None and (text != older or i + 1 == len(texts)):
                out.append(Revision(sha=sha, at=at, text=text))
        return out[:limit]

    def commit_changes(self, sha: str) -> dict[str, tuple[str | None, str | None]]:
        """The logical documents a commit changed against its first parent."""
        parent = self.repo.parent(sha)
        if parent is None:
            return {}
        before, after = self.documents(parent), self.documents(sha)
        return {
            mf.manifest_path(name): (
                mf.dump(before[name]) if name in before else None,
                mf.dump(after[name]) if name in after else None,
            )
            for name in sorted(before.keys() | after.keys())
            if before.get(name) != after.get(name)
        }


class RepositoryState:
    """Kubernetes editing when main carries the gitops config; the service manifests otherwise."""

    def __init__(self, repo: Repository, audit: AuditLog | None = None) -> None:
        self.repo = repo
        self.audit = audit

    def is_kubernetes(self) -> bool:
        """True when main has `sre-space.gitops.yaml` (read at each use: main may change)."""
        return self.repo.read(CONFIG_PATH) is not None

    def source(self) -> ManifestSource:
        """What the playbook plans on: the logical documents of main and its history."""
        return LogicalSource(self.repo) if self.is_kubernetes() else self.repo

    def realize(
        self, change: Change, *, incident_id: str | None, now: int, step: str = "render"
    ) -> Change | str:
        """The change as one rendered, validated file edit; a refusal's reason otherwise."""
        key = f"{step}:{change.action}:{change.service}"
        if not self.is_kubernetes():
            errors = validate_manifest_text(
                change.path, change.new_text, load_schema(self.repo.read(mf.SCHEMA_PATH))[0]
            )
            if errors:
                return self._refuse(now, incident_id, change, key, "; ".join(errors))
            return change
        try:
            proposal = GitOpsRepo(self.repo.files("main")).propose(change.service, change.after)
            if len(proposal.edits) != 1:
                raise ProposalError(
                    f"the change touches {len(proposal.edits)} files ({', '.join(proposal.edits)});"
                    " one file per pull request"
                )
        except ProposalError as exc:
            return self._refuse(now, incident_id, change, key, str(exc))
        ((path, (old, new)),) = proposal.edits.items()
        self._record(now, incident_id, change, key, "render_validated", _summary(proposal), "done")
        return replace(change, path=path, old_text=old, new_text=new)

    def undo(self, change: Change, *, incident_id: str | None = None, now: int = 0) -> Change | str:
        """The merged change's inverse on main (keys a later change replaced stay), realized."""
        path = mf.manifest_path(change.service)
        try:
            current = self.source().read(path)
        except mf.ManifestError as exc:
            return str(exc)
        if current is None:
            return f"no manifest {path} on main for service {change.service!r}"
        inverse = Playbook.inverse(change, current)
        if inverse is None:
            return "nothing left to revert: later changes replaced every value"
        return self.realize(inverse, incident_id=incident_id, now=now, step="undo")

    def _refuse(
        self, now: int, incident_id: str | None, change: Change, key: str, reason: str
    ) -> str:
        self._record(now, incident_id, change, key, "refuse_render", reason, "refused")
        return reason

    def _record(
        self,
        now: int,
        incident_id: str | None,
        change: Change,
        key: str,
        action: str,
        reason: str,
        outcome: str,
    ) -> None:
        if self.audit is not None:
            self.audit.record(
                at=now,
                action=action,
                reason=reason,
                incident_id=incident_id,
                key=key,
                inputs={"service": change.service, "after": change.after},
                outcome=outcome,
            )


def _summary(proposal: Proposal) -> str:
    return f"{proposal.layout} render of {', '.join(proposal.edits)} validated"
