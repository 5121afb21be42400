"""Deploy: a reconciler applies a commit of the manifests repository to the running system.

`Reconciler.apply(commit_sha)` must be idempotent (applying the same commit twice changes nothing)
and return a `ReconcileResult` rather than raise for a failed rollout. Implementations:

- `CommandReconciler` (here): runs a configured command with the commit id, for real systems —
  `kubectl apply`, `argocd app sync --revision {sha}`, `flux reconcile source git ... --revision`.
- `rollout.GitOpsReconciler`: Argo CD or Flux apply `main` alone; `rollout.TelemetryWatch` then
  says when the change runs.
- `shop_reconciler.ShopReconciler`: waits until the simulated shop reports running the commit.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sinks.fixer.pr_body import redact


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """Whether the target now runs the commit, and what the reconciler said."""

    ok: bool
    detail: str = ""


class Reconciler(Protocol):
    """Applies a commit of the manifests repository to the target system."""

    def apply(self, commit_sha: str) -> ReconcileResult:
        """Bring the target to `commit_sha`; idempotent."""
        ...


class CommandReconciler:
    """Runs `command` with `{sha}` replaced by the commit id (also in `SRE_COMMIT_SHA`).

    Exit status 0 means deployed. The command runs without a shell, so the commit id can never be
    interpreted as shell syntax.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        cwd: str | Path | None = None,
        timeout_s: float = 300.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not command:
            raise ValueError("CommandReconciler needs a command, e.g. ['deploy.sh', '{sha}']")
        self.command = list(command)
        self.cwd = cwd
        self.timeout_s = timeout_s
        self.env = dict(env or {})

    def apply(self, commit_sha: str) -> ReconcileResult:
        """Run the command for one commit; failures come back as `ok=False` with the output."""
        if not commit_sha or not all(c in "0123456789abcdef" for c in commit_sha):
            return ReconcileResult(False, f"refusing to deploy {commit_sha!r}: not a commit id")
        args = [part.replace("{sha}", commit_sha) for part in self.command]
        env = {**os.environ, **self.env, "SRE_COMMIT_SHA": commit_sha}
        try:
            proc = subprocess.run(
                args,
                cwd=self.cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return ReconcileResult(False, f"{args[0]} failed to run: {exc}")
        out = redact((proc.stdout + proc.stderr).strip())[-2000:]
        if proc.returncode != 0:
            return ReconcileResult(False, f"{args[0]} exited {proc.returncode}: {out}")
        return ReconcileResult(True, out or f"{args[0]} applied {commit_sha[:12]}")
