"""The playbook's logical documents over a Kubernetes GitOps repository held by a forge.

`KubernetesState.source()` lets the playbook plan on `services/<service>.yaml` as a logical
document rendered from the repository; `realize(change)` turns the planned change into the one
repository file edit that carries it, rendered and validated, or refuses with the reason.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

from sinks.fixer import manifest as mf
from sinks.fixer.audit import AuditLog
from sinks.fixer.k8s.repo import GitOpsRepo, Proposal, ProposalError
from sinks.fixer.playbook import Change, ManifestSource, Revision
from sre_space.gitops.config import CONFIG_PATH


class GitHistory:
    """A local git repository's files at any ref and main's first-parent commits."""

    def __init__(self, repo: Path, *, main: str = "main", git: str = "git") -> None:
        self.repo = Path(repo)
        self.main = main
        self.git_bin = git

    def _run(self, *args: str) -> bytes:
        return subprocess.run(
            [self.git_bin, "-C", str(self.repo), *args], capture_output=True, check=True, timeout=60
        ).stdout

    def files(self, ref: str) -> dict[str, str]:
        """The text files at a ref, read from git objects (not the working tree)."""
        out: dict[str, str] = {}
        for name in self._run("ls-tree", "-r", "-z", "--name-only", ref).decode().split("\0"):
            if name:
                try:
                    out[name] = self._run("show", f"{ref}:{name}").decode("utf-8")
                except UnicodeDecodeError:
                    continue
        return out

    def log(self, limit: int) -> list[tuple[str, str]]:
        """(sha, commit time) of main's first-parent history, newest first."""
        text = self._run("log", "--first-parent", f"-n{int(limit)}", "--format=%H %cI", self.main)
        out = []
        for line in text.decode().splitlines():
            sha, _, at = line.partition(" ")
            out.append((sha, at))
        return out

    def parent(self, sha: str) -> str | None:
        """A commit's first parent, or None for a root commit or an unknown sha."""
        try:
            return self._run("rev-parse", "--verify", "-q", f"{sha}^1").decode().strip() or None
        except subprocess.CalledProcessError:
            return None


class LogicalSource:
    """A ManifestSource whose `services/<service>.yaml` are the logical documents of a repository,
    now and at each commit of main (rendered per commit, so rollbacks and reverts plan too)."""

    def __init__(self, history: GitHistory, ref: str = "main", limit: int = 20) -> None:
        self.history_source = history
        self.ref = ref
        self.limit = limit
        self._docs: dict[str, dict[str, dict[str, Any]]] = {}

    def documents(self, ref: str) -> dict[str, dict[str, Any]]:
        """The logical documents at a ref (cached per ref: a commit never changes)."""
        if ref not in self._docs:
            try:
                self._docs[ref] = GitOpsRepo(self.history_source.files(ref)).documents()
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
        commits = self.history_source.log(min(limit, self.limit) + 1)
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
        parent = self.history_source.parent(sha)
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


class KubernetesState:
    """Desired state kept as Kubernetes manifests (plain, kustomize overlay or Helm values)."""

    def __init__(self, history: GitHistory, audit: AuditLog | None = None) -> None:
        self.history = history
        self.audit = audit

    def repo(self, ref: str = "main") -> GitOpsRepo:
        """The repository at a ref."""
        return GitOpsRepo(self.history.files(ref))

    def source(self) -> ManifestSource:
        """What the playbook plans on: the logical documents of main and its history."""
        return LogicalSource(self.history)

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
