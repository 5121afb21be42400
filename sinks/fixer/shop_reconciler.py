"""The demo's deploy: the simulated shop applies `main` of the GitOps repository by itself.

The shop re-reads `main` every few seconds of simulated time and reports the commit it runs as
`head` in `<state>/chaos/status.json` (`chaos.live.write_status`). Deploying a merge commit is
therefore only waiting until the shop says it runs that commit, or a later one that contains it.
The wait is bounded in wall time so that a stopped shop fails the deploy (the responder retries,
then reverts and escalates) instead of hanging the responder thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from sinks.fixer.reconciler import ReconcileResult
from sre_space import git
from sre_space.paths import StatePaths

_HEX = frozenset("0123456789abcdef")


def read_shop_head(state_dir: str | Path) -> str:
    """The commit the shop runs, from its status file; "" when unknown or unreadable."""
    path = StatePaths(Path(state_dir)).shop_status
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    head = data.get("head") if isinstance(data, dict) else None
    return head if isinstance(head, str) else ""


class ShopReconciler:
    """`apply(sha)` is ok once the shop's head is `sha` or a descendant of it (idempotent)."""

    def __init__(
        self,
        state_dir: str | Path,
        *,
        timeout_s: float = 30.0,
        poll_s: float = 0.1,
        head: Callable[[], str] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.repo = StatePaths(self.state_dir).gitops
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        # An in-process shop can hand over its head directly; otherwise the status file says it.
        self._head = head or (lambda: read_shop_head(self.state_dir))

    def contains(self, head: str, sha: str) -> bool:
        """True when the shop's `head` is `sha` or has it in its history."""
        if not head:
            return False
        if head == sha:
            return True
        return git.is_ancestor(self.repo, sha, head)

    def apply(self, commit_sha: str) -> ReconcileResult:
        """Wait (bounded) until the shop runs `commit_sha`; the shop pulls `main` on its own."""
        if not commit_sha or not set(commit_sha) <= _HEX:
            return ReconcileResult(False, f"refusing to deploy {commit_sha!r}: not a commit id")
        deadline = time.monotonic() + self.timeout_s
        head = ""
        while True:
            head = self._head()
            if self.contains(head, commit_sha):
                return ReconcileResult(True, f"shop runs {head[:12]} (contains {commit_sha[:12]})")
            if time.monotonic() >= deadline:
                break
            time.sleep(self.poll_s)
        return ReconcileResult(
            False,
            f"shop still runs {head[:12] or 'an unknown commit'} after {self.timeout_s:g}s,"
            f" not {commit_sha[:12]}",
        )
