"""A progress line on stderr for long replays: bytes read against the recordings' size."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from operators.otlp.messages import RawMessage


class Progress:
    """Counts messages and bytes; redraws one line at most every `every_s` seconds."""

    def __init__(
        self, paths: Sequence[str | Path], stream: TextIO = sys.stderr, every_s: float = 0.5
    ) -> None:
        # Compressed files grow when read, so only plain files give a total to measure against.
        plain = [Path(p) for p in paths if not str(p).endswith(".gz")]
        self.total = sum(p.stat().st_size for p in plain) if len(plain) == len(paths) else None
        self.stream = stream
        self.every_s = every_s
        self.done_bytes = 0
        self.messages = 0
        self._t0 = time.monotonic()
        self._last = 0.0

    def __call__(self, _step: str, poll: list[RawMessage]) -> None:
        self.messages += len(poll)
        self.done_bytes += sum(len(msg.value) + 1 for msg in poll)
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._draw(now)

    def close(self) -> None:
        """Finish the line."""
        if self.messages:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        mib = self.done_bytes / 2**20
        rate = mib / max(now - self._t0, 1e-9)
        share = f"{min(100.0, 100 * self.done_bytes / self.total):5.1f}% " if self.total else ""
        self.stream.write(
            f"\rreplay: {share}{self.messages:,} requests, {mib:,.1f} MiB ({rate:,.1f} MiB/s)"
        )
        self.stream.flush()
