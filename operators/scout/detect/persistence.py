"""k-of-n persistence with hysteresis: one noisy observation never fires, one quiet one never clears.

Counts observations, not windows, so a series sampled every 60 s is judged on its own points.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

Transition = Literal["fire", "clear", ""]


class Streak:
    """Tracks the last n verdicts of one series field and whether its anomaly is active."""

    __slots__ = (
        "active",
        "anomaly_id",
        "clear_after",
        "k",
        "last_ns",
        "n",
        "onset",
        "quiet",
        "recent",
        "run",
    )

    def __init__(self, k: int, n: int, clear_after: int) -> None:
        self.k = k
        self.n = n
        self.clear_after = clear_after
        self.recent: deque[tuple[bool, int]] = deque(maxlen=n)
        self.active = False
        self.onset: int | None = None
        self.anomaly_id: str | None = None
        self.quiet = 0
        self.run = 0
        self.last_ns: int | None = None

    def update(
        self, flag: bool, window_start: int, t_ns: int, max_gap_ns: int, conclusive: bool = False
    ) -> Transition:
        """Record one verdict; returns "fire" when the anomaly starts, "clear" when it ends.

        `conclusive`: the verdict already pools several observations (a test over every window
        since a change), so it fires without waiting for k of n.
        """
        if self.last_ns is not None and t_ns - self.last_ns > max_gap_ns:
            # A long silence: old verdicts say nothing about now.
            self.recent.clear()
        self.last_ns = t_ns
        self.recent.append((flag, window_start))
        self.run = self.run + 1 if flag else 0
        if self.active:
            self.quiet = 0 if flag else self.quiet + 1
            if self.quiet >= self.clear_after:
                self.active = False
                self.quiet = 0
                return "clear"
            return ""
        flagged = 0
        for f, _ in self.recent:  # a loop, not sum() over a generator: every series, every window
            if f:
                flagged += 1
        if flagged >= self.k or (flag and conclusive):
            self.active = True
            self.quiet = 0
            self.onset = next(ws for f, ws in self.recent if f)
            return "fire"
        return ""

    def flagged_windows(self) -> list[int]:
        """Window starts of the abnormal verdicts among the last n."""
        return [ws for f, ws in self.recent if f]

    def snapshot(self) -> dict[str, Any]:
        """Plain picklable state."""
        return {
            "k": self.k,
            "n": self.n,
            "clear_after": self.clear_after,
            "recent": [list(r) for r in self.recent],
            "active": self.active,
            "onset": self.onset,
            "anomaly_id": self.anomaly_id,
            "quiet": self.quiet,
            "run": self.run,
            "last_ns": self.last_ns,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Streak:
        """Rebuild from `snapshot()`."""
        out = cls(data["k"], data["n"], data["clear_after"])
        out.recent.extend((bool(f), int(ws)) for f, ws in data["recent"])
        out.active = data["active"]
        out.onset = data["onset"]
        out.anomaly_id = data["anomaly_id"]
        out.quiet = data["quiet"]
        out.run = data["run"]
        out.last_ns = data["last_ns"]
        return out
