"""The control channel between `python -m chaos NAME` and a running shop: a JSON file.

`<state>/chaos/control.json` holds an ordered list of commands with increasing ids; writers replace
the file atomically (write a temporary file, then rename), the shop polls it and runs every command
with an id above the last one it ran. The shop reports what is active in `<state>/chaos/status.json`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from sre_space.paths import StatePaths

MAX_KEPT = 100


def chaos_dir(state_dir: str | Path) -> Path:
    """The chaos folder under the state folder (created)."""
    path = StatePaths(Path(state_dir)).chaos
    path.mkdir(parents=True, exist_ok=True)
    return path


def control_path(state_dir: str | Path) -> Path:
    """The control file."""
    return chaos_dir(state_dir) / "control.json"


def status_path(state_dir: str | Path) -> Path:
    """The status file the shop writes."""
    chaos_dir(state_dir)
    return StatePaths(Path(state_dir)).shop_status


def write_atomic(path: Path, data: Any) -> None:
    """Write JSON to `path` so that a reader sees the old or the new file, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def read_commands(state_dir: str | Path) -> list[dict[str, Any]]:
    """The commands in the control file (empty when there is none or it is unreadable)."""
    try:
        data = json.loads(control_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    commands = data.get("commands", []) if isinstance(data, dict) else []
    return [c for c in commands if isinstance(c, dict) and isinstance(c.get("id"), int)]


def send(state_dir: str | Path, command: dict[str, Any]) -> int:
    """Append a command (`{"cmd": "inject", ...}` or `{"cmd": "clear"}`); returns its id."""
    commands = read_commands(state_dir)
    next_id = max((c["id"] for c in commands), default=0) + 1
    commands.append({**command, "id": next_id})
    write_atomic(control_path(state_dir), {"commands": commands[-MAX_KEPT:]})
    return next_id


class ControlReader:
    """The shop's side: new commands since the last poll."""

    def __init__(self, state_dir: str | Path, skip_existing: bool = True) -> None:
        self.state_dir = Path(state_dir)
        # commands written before this shop started are history, not orders
        self.last_id = (
            max((c["id"] for c in read_commands(state_dir)), default=0) if skip_existing else 0
        )
        self._mtime = 0.0

    def poll(self) -> list[dict[str, Any]]:
        """Commands newer than the last one seen."""
        try:
            mtime = control_path(self.state_dir).stat().st_mtime
        except OSError:
            return []
        if mtime == self._mtime:
            return []
        self._mtime = mtime
        new = [c for c in read_commands(self.state_dir) if c["id"] > self.last_id]
        if new:
            self.last_id = max(c["id"] for c in new)
        return sorted(new, key=lambda c: c["id"])
