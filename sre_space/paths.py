"""The state folder's layout: the one place that names the folder and every file under it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STATE_ENV = "SRE_STATE_DIR"
DEFAULT_STATE = Path("state")


def state_dir(explicit: str | Path | None = None) -> Path:
    """The state folder: `explicit` (a `--state` option), else $SRE_STATE_DIR, else ./state."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(STATE_ENV) or DEFAULT_STATE)


@dataclass(frozen=True, slots=True)
class StatePaths:
    """Where each part keeps its state under one root (see docs/contracts.md, State folder)."""

    root: Path

    @classmethod
    def resolve(cls, explicit: str | Path | None = None) -> StatePaths:
        """The layout under `state_dir(explicit)`."""
        return cls(state_dir(explicit))

    @property
    def db(self) -> Path:
        """SQLite store: signals, anomalies, incidents, audit, responder progress."""
        return self.root / "sre.db"

    @property
    def spans(self) -> Path:
        """Span archive, Parquet by event hour."""
        return self.root / "spans"

    @property
    def chroma(self) -> Path:
        """ChromaDB (post-mortems) when no server is configured."""
        return self.root / "chroma"

    @property
    def gitops(self) -> Path:
        """The GitOps repository (real git) the Fixer changes."""
        return self.root / "gitops"

    @property
    def postmortems(self) -> Path:
        """Post-mortem Markdown files."""
        return self.root / "postmortems"

    @property
    def backtests(self) -> Path:
        """Backtest reports (`<name>/report.json`) the dashboard lists."""
        return self.root / "backtests"

    @property
    def chaos(self) -> Path:
        """The simulated shop's status and control files (the harness's, not the product's)."""
        return self.root / "chaos"

    @property
    def shop_status(self) -> Path:
        """The status file the simulated shop writes (its head commit is the demo's deploy)."""
        return self.chaos / "status.json"

    @property
    def incidents(self) -> Path:
        """The local incident tracker's issue files."""
        return self.root / "incidents"

    @property
    def drills(self) -> Path:
        """The drills' index, one line per finished drill."""
        return self.root / "drills" / "index.jsonl"

    @property
    def flow_log(self) -> Path:
        """The output of a dataflow process a harness started."""
        return self.root / "flow.log"
