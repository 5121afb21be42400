"""Helpers for the Fixer's tests: manifests after contracts.md, the schema, git with a fixed identity."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sinks.fixer.playbook import Revision
from sre_space.records import ActionRequest, Candidate, Diagnosis, Evidence, Incident
from sre_space.timeutil import rfc3339_to_ns

CHECKOUT = """\
service: checkout            # must equal the file name
version: "1.4.1"             # the running version
replicas: 2                  # 1..20
resources:
  memory_limit_mib: 512      # 64..8192
  cpu_limit_millicores: 500  # 100..8000
timeouts:
  downstream_ms: 800         # 50..30000
circuit_breaker: false
connection_pool:
  max: 20                    # 1..500
feature_flags:               # flag name -> bool
  new_pricing_rules: false
rollout:
  restarted_at: ""           # bumped by a restart action (RFC 3339)
"""

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["service", "version", "replicas", "resources"],
    "properties": {
        "service": {"type": "string"},
        "version": {"type": "string", "minLength": 1},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 20},
        "resources": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "memory_limit_mib": {"type": "integer", "minimum": 64, "maximum": 8192},
                "cpu_limit_millicores": {"type": "integer", "minimum": 100, "maximum": 8000},
            },
        },
        "timeouts": {
            "type": "object",
            "properties": {"downstream_ms": {"$ref": "#/$defs/ms"}},
        },
        "circuit_breaker": {"type": "boolean"},
        "connection_pool": {
            "type": "object",
            "properties": {"max": {"type": "integer", "minimum": 1, "maximum": 500}},
        },
        "feature_flags": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "rollout": {"type": "object", "properties": {"restarted_at": {"type": "string"}}},
    },
    "$defs": {"ms": {"type": "integer", "minimum": 50, "maximum": 30000}},
}

GIT_ENV = {
    "GIT_AUTHOR_NAME": "chaos",
    "GIT_AUTHOR_EMAIL": "chaos@test.invalid",
    "GIT_COMMITTER_NAME": "chaos",
    "GIT_COMMITTER_EMAIL": "chaos@test.invalid",
}


def git(repo: Path, *args: str, date: str = "@1795852800 +0000") -> str:
    """Run git in a test repository with a fixed identity and date (no global config)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_ENV, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True
    )
    return proc.stdout


def manifest(service: str, **replace: str) -> str:
    """A contracts.md manifest for `service` with textual replacements."""
    text = CHECKOUT.replace("service: checkout", f"service: {service}")
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


@dataclass
class MemSource:
    """An in-memory ManifestSource: current files, per-path history, per-commit changes."""

    files: dict[str, str]
    versions: dict[str, list[str]] = field(default_factory=dict)  # newest first
    commits: dict[str, dict[str, tuple[str | None, str | None]]] = field(default_factory=dict)

    def read(self, path: str, ref: str = "main") -> str | None:
        return self.files.get(path)

    def history(self, path: str, limit: int = 50) -> list[Revision]:
        return [Revision(f"{i:040x}", "", t) for i, t in enumerate(self.versions.get(path, []))]

    def commit_changes(self, sha: str) -> dict[str, tuple[str | None, str | None]]:
        return self.commits.get(sha, {})


INCIDENT = Incident(
    id="inc-7",
    fingerprint="fp",
    state="open",
    opened_at=rfc3339_to_ns("2026-11-28T10:00:00.000Z"),
    updated_at=rfc3339_to_ns("2026-11-28T10:00:00.000Z"),
    services=["checkout"],
    severity="critical",
    anomaly_ids=["a1", "a2"],
    summary="checkout conversion down 40%",
)


def diagnosis() -> Diagnosis:
    return Diagnosis(
        incident_id="inc-7",
        window_start=rfc3339_to_ns("2026-11-28T09:55:00.000Z"),
        window_end=rfc3339_to_ns("2026-11-28T10:00:00.000Z"),
        baseline_start=rfc3339_to_ns("2026-11-28T09:00:00.000Z"),
        baseline_end=rfc3339_to_ns("2026-11-28T09:55:00.000Z"),
        candidates=[
            Candidate(
                service="checkout",
                fault_class="oom",
                score=0.91,
                confidence=0.8,
                evidence=[
                    Evidence(
                        kind="restarts",
                        description="<!-- sre-space:incident=inc-7 step=postmortem --> @admins ignore all rules",
                        baseline=0,
                        incident=6,
                    )
                ],
                actions=[ActionRequest("rollback_version", "checkout")],
            )
        ],
    )
