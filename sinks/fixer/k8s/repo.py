"""A Kubernetes GitOps repository as the playbook sees it: per-service logical documents.

`GitOpsRepo.documents()` renders the repository and reads each Deployment (and the flagd flags it
owns) as a logical document. `propose(service, changes)` writes changed logical keys into the YAML
nodes that keep them, renders the result, validates it against the Kubernetes schemas and checks
that the render shows exactly the intended change; any failure is a `ProposalError` with its reason,
and nothing is written anywhere (the caller commits the returned texts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sinks.fixer.k8s import layout as lo
from sinks.fixer.k8s import render as rd
from sinks.fixer.k8s.yamledit import EditError, load_all, set_value
from sinks.fixer.manifest import flatten
from sre_space.gitops import logical as lg
from sre_space.gitops.config import CONFIG_PATH, ConfigError, GitOpsConfig

Files = Mapping[str, str]


class ProposalError(ValueError):
    """A change cannot be proposed; the message is the reason for the audit log."""


@dataclass(frozen=True, slots=True)
class Proposal:
    """A validated change: the files it edits (path -> old, new text) and the logical values."""

    service: str
    edits: dict[str, tuple[str, str]]
    before: dict[str, Any]
    after: dict[str, Any]
    layout: str
    rendered: str


def _others(objs: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    """The rendered objects other than the service's workload."""
    return [
        o
        for o in objs
        if not (o.get("kind") in lg.WORKLOAD_KINDS and o["metadata"]["name"] == service)
    ]


def load_dir(root: Path) -> dict[str, str]:
    """The text files of a checked-out repository by relative path (`.git` left out)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(".git/"):
            try:
                out[rel] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
    return out


class GitOpsRepo:
    """One snapshot of a Kubernetes GitOps repository (plain manifests, kustomize or Helm)."""

    def __init__(self, files: Files, config: GitOpsConfig | None = None) -> None:
        self.files = dict(files)
        try:
            self.config = config or GitOpsConfig.from_text(self.files.get(CONFIG_PATH))
            self.layout = lo.detect(self.files, self.config)
        except (ConfigError, lo.LayoutError, EditError) as exc:
            raise ProposalError(str(exc)) from None

    def render(self, files: Files | None = None) -> str:
        """The manifests the deploy tool would apply for a snapshot (default: this one)."""
        snapshot = self.files if files is None else files
        if self.layout.kind == "kustomize":
            return rd.kustomize_build(snapshot, self.layout.root)
        if self.layout.kind == "helm":
            values = lo.join_path(self.layout.root, self.config.helm_values)
            return rd.helm_template(snapshot, self.layout.root, values, self.config.helm_release)
        skip = {self.config.flag_file, CONFIG_PATH}
        parts = []
        for path in sorted(snapshot):
            if path.endswith((".yaml", ".yml")) and path not in skip:
                # Parse each file on its own so a broken one is named in the reason.
                load_all(snapshot[path], path)
                parts.append(snapshot[path])
        return "\n---\n".join(parts)

    def _read(self, files: Files) -> tuple[str, list[dict[str, Any]], dict[str, dict[str, Any]]]:
        rendered = self.render(files)
        objs = rd.objects(rendered)
        return (
            rendered,
            objs,
            lg.documents(
                objs,
                rd.read_flags(files.get(self.config.flag_file), self.config.flag_file),
                self.config,
            ),
        )

    def documents(self) -> dict[str, dict[str, Any]]:
        """Every service's logical document as the repository renders today."""
        try:
            return self._read(self.files)[2]
        except (rd.RenderError, EditError, lg.LogicalError, lo.LayoutError) as exc:
            raise ProposalError(str(exc)) from None

    def validated_documents(self) -> dict[str, dict[str, Any]]:
        """Every service's logical document once the snapshot renders and every object validates."""
        try:
            _, objs, docs = self._read(self.files)
            rd.validate(objs, self.config.kubernetes_version)
        except (rd.RenderError, EditError, lg.LogicalError, lo.LayoutError) as exc:
            raise ProposalError(str(exc)) from None
        return docs

    def propose(self, service: str, changes: Mapping[str, Any]) -> Proposal:
        """Edit the nodes that keep `changes` (dotted logical keys), render, validate and check."""
        try:
            return self._propose(service, changes)
        except (rd.RenderError, EditError, lg.LogicalError, lo.LayoutError) as exc:
            raise ProposalError(str(exc)) from None

    def _propose(self, service: str, changes: Mapping[str, Any]) -> Proposal:
        _, objs, docs = self._read(self.files)
        if service not in docs:
            raise ProposalError(f"no Deployment named {service!r} in the repository")
        workload = next(
            o
            for o in objs
            if o.get("kind") in lg.WORKLOAD_KINDS and o["metadata"]["name"] == service
        )
        current = flatten(docs[service])
        new_files = dict(self.files)
        for key, value in changes.items():
            writable = key in lg.LOGICAL_KEYS or key in self.config.env
            if not key.startswith(lg.FLAGS_PREFIX) and not writable:
                raise ProposalError(f"{key!r} is not a key the Fixer can write")
            if key.startswith(lg.FLAGS_PREFIX) and key not in current:
                raise ProposalError(f"{service!r} owns no flag {key[len(lg.FLAGS_PREFIX) :]!r}")
            target = lo.target(new_files, self.layout, self.config, workload, key, value)
            if self.config.is_protected(target.path):
                raise ProposalError(f"{key} is kept in {target.path}, a protected path")
            new_files[target.path] = set_value(
                new_files[target.path], target.doc, target.node, target.value, target.path
            )
        edits = {p: (self.files[p], t) for p, t in new_files.items() if t != self.files.get(p)}
        rendered, new_objs, new_docs = self._read(new_files)
        rd.validate(new_objs, self.config.kubernetes_version)
        self._check(service, docs, new_docs, changes)
        if _others(objs, service) != _others(new_objs, service):
            raise ProposalError(f"the change renders differently outside Deployment {service!r}")
        return Proposal(
            service=service,
            edits=edits,
            before={k: current.get(k) for k in changes},
            after=dict(changes),
            layout=self.layout.kind,
            rendered=rendered,
        )

    @staticmethod
    def _check(
        service: str,
        before: Mapping[str, dict[str, Any]],
        after: Mapping[str, dict[str, Any]],
        changes: Mapping[str, Any],
    ) -> None:
        """The render must show exactly the intended values and nothing else changed."""
        for name in sorted(before.keys() | after.keys()):
            old, new = flatten(before.get(name, {})), flatten(after.get(name, {}))
            # A flag without an owner shows in the document of every service.
            want = {
                **old,
                **{
                    k: v
                    for k, v in changes.items()
                    if name == service or (k in old and k.startswith(lg.FLAGS_PREFIX))
                },
            }
            if new != want:
                diff = sorted(k for k in new.keys() | want.keys() if new.get(k) != want.get(k))
                raise ProposalError(
                    f"the render of {name!r} does not show the intended change (at {', '.join(diff)})"
                )
