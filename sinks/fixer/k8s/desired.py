"""The catalog's logical documents over a Kubernetes GitOps repository held by a forge.

`KubernetesState.source(forge)` lets the catalog plan on `services/<service>.yaml` as a logical
document rendered from the repository; `realize(change)` turns the planned change into the one
repository file edit that carries it, rendered and validated, or refuses with the reason.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from sinks.fixer import manifest as mf
from sinks.fixer.audit import AuditLog
from sinks.fixer.catalog import Change, ManifestSource, Revision
from sinks.fixer.k8s.config import CONFIG_PATH
from sinks.fixer.k8s.repo import GitOpsRepo, Proposal, ProposalError

# A snapshot of the repository's files at a ref (the forge's checkout of main).
Snapshot = Callable[[str], Mapping[str, str]]


def git_snapshot(repo: Path, git: str = "git") -> Snapshot:
    """The text files of a local git repository at a ref, read from git objects (not the tree)."""

    def read(ref: str) -> dict[str, str]:
        def run(*args: str) -> bytes:
            return subprocess.run(
                [git, "-C", str(repo), *args], capture_output=True, check=True, timeout=60
            ).stdout

        out: dict[str, str] = {}
        for name in run("ls-tree", "-r", "-z", "--name-only", ref).decode().split("\0"):
            if name:
                try:
                    out[name] = run("show", f"{ref}:{name}").decode("utf-8")
                except UnicodeDecodeError:
                    continue
        return out

    return read


class LogicalSource:
    """A ManifestSource whose `services/<service>.yaml` are the logical documents of a repository."""

    def __init__(self, repo: GitOpsRepo) -> None:
        self.repo = repo
        self._docs: dict[str, dict[str, Any]] | None = None

    def read(self, path: str, ref: str = "main") -> str | None:
        """The logical document of a service path; None for any other path or unknown service."""
        service = mf.service_of_path(path)
        if service is None:
            return None
        if self._docs is None:
            try:
                self._docs = self.repo.documents()
            except ProposalError as exc:
                # The catalog refuses on a ManifestError and audits its reason.
                raise mf.ManifestError(str(exc)) from None
        doc = self._docs.get(service)
        return None if doc is None else mf.dump(doc)

    def history(self, path: str, limit: int = 50) -> list[Revision]:
        """No logical history: a rollback needs the version history of the rendered repository."""
        return []

    def commit_changes(self, sha: str) -> dict[str, tuple[str | None, str | None]]:
        """No logical diffs of past commits (a revert of a Kubernetes commit is refused)."""
        return {}


class KubernetesState:
    """Desired state kept as Kubernetes manifests (plain, kustomize overlay or Helm values)."""

    def __init__(self, snapshot: Snapshot, audit: AuditLog | None = None) -> None:
        self.snapshot = snapshot
        self.audit = audit

    def repo(self, ref: str = "main") -> GitOpsRepo:
        """The repository at a ref."""
        return GitOpsRepo(self.snapshot(ref))

    def source(self) -> ManifestSource:
        """What the catalog plans on: the logical documents of main."""
        return LogicalSource(self.repo())

    def realize(self, change: Change, *, incident_id: str | None, now: int) -> Change | str:
        """The change as one rendered, validated file edit; a refusal's reason otherwise."""
        try:
            proposal = self.repo().propose(change.service, change.after)
            if len(proposal.edits) != 1:
                raise ProposalError(
                    f"the change touches {len(proposal.edits)} files ({', '.join(proposal.edits)});"
                    " one file per pull request"
                )
        except ProposalError as exc:
            self._record(now, incident_id, change, "refuse_render", str(exc), "refused")
            return str(exc)
        ((path, (old, new)),) = proposal.edits.items()
        self._record(now, incident_id, change, "render_validated", _summary(proposal), "done")
        return replace(change, path=path, old_text=old, new_text=new)

    def _record(
        self,
        now: int,
        incident_id: str | None,
        change: Change,
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
                key=f"render:{change.action}:{change.service}",
                inputs={"service": change.service, "after": change.after},
                outcome=outcome,
            )


def _summary(proposal: Proposal) -> str:
    return f"{proposal.layout} render of {', '.join(proposal.edits)} validated"


class RepositoryState:
    """Kubernetes editing when main carries the gitops config; the service manifests otherwise."""

    def __init__(self, forge: ManifestSource, kubernetes: KubernetesState) -> None:
        self.forge = forge
        self.kubernetes = kubernetes

    def is_kubernetes(self) -> bool:
        """True when main has `sre-space.gitops.yaml` (read at each use: main may change)."""
        return self.forge.read(CONFIG_PATH) is not None

    def source(self) -> ManifestSource:
        """The logical documents of a Kubernetes repository, or the forge's own manifests."""
        return self.kubernetes.source() if self.is_kubernetes() else self.forge

    def realize(self, change: Change, *, incident_id: str | None, now: int) -> Change | str:
        """The rendered, validated file edit on a Kubernetes repository; the change otherwise."""
        if mf.service_of_path(change.path) is None or not self.is_kubernetes():
            return change
        return self.kubernetes.realize(change, incident_id=incident_id, now=now)
