"""The simulated shop as the dashboard's Chaos page drives it: the scenarios, the control file's
commands, the shop's status and the GitOps repository it runs. The dashboard reaches `chaos` only
through here.

Reads never create anything: the chaos folder is only touched once it exists (the shop or a sent
command made it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaos import control
from chaos.gitops import GitError, GitOpsRepo
from chaos.manifests import ManifestError
from chaos.scenarios import registry
from sre_space.paths import StatePaths
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339


def scenarios() -> list[dict[str, str]]:
    """The chaos scenarios: name, fault class, default target and summary."""
    return [
        {
            "name": name,
            "fault_class": s.fault_class,
            "target": s.default_service,
            "summary": s.summary,
        }
        for name, s in registry().items()
    ]


def _has_chaos(state_dir: str | Path) -> bool:
    return StatePaths(Path(state_dir)).chaos.is_dir()


def shop_status(state_dir: str | Path) -> dict[str, Any] | None:
    """What the running shop last reported, or None."""
    if not _has_chaos(state_dir):
        return None
    try:
        data = json.loads(control.status_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def commands(state_dir: str | Path) -> list[dict[str, Any]]:
    """The commands sent through the control file, newest first (no file: none)."""
    if not _has_chaos(state_dir):
        return []
    return sorted(control.read_commands(state_dir), key=lambda c: -int(c["id"]))


def inject(
    state_dir: str | Path,
    scenario: str,
    *,
    service: str | None,
    intensity: float,
    duration_s: float | None,
) -> int:
    """Start a scenario in the shop (as `python -m chaos NAME` does); returns the command id."""
    return control.send(
        state_dir,
        {
            "cmd": "inject",
            "scenario": scenario,
            "service": service,
            "intensity": intensity,
            "duration_s": duration_s,
        },
    )


def stop_all(state_dir: str | Path) -> int:
    """Stop every scenario (as `python -m chaos stop` does); returns the command id."""
    return control.send(state_dir, {"cmd": "clear", "tag": None})


def control_file(state_dir: str | Path) -> Path:
    """The control file commands are appended to."""
    return control.control_path(state_dir)


def manifests(state_dir: str | Path) -> dict[str, Any]:
    """The GitOps repository's current manifests on main and its recent commits.

    Returns {"exists": bool, "head": sha, "docs": {service: manifest}, "commits": [...],
    "errors": [...]}; reading only.
    """
    repo = GitOpsRepo(StatePaths(Path(state_dir)).gitops)
    if not (repo.path / ".git").exists():
        return {"exists": False, "head": "", "docs": {}, "commits": [], "errors": []}
    try:
        docs = repo.read_docs()
        errors: list[str] = []
    except ManifestError as exc:
        docs, errors = {}, [str(exc)]
    except GitError as exc:
        return {"exists": True, "head": "", "docs": {}, "commits": [], "errors": [str(exc)]}
    commits = [
        {
            "sha": c.sha[:12],
            "at": ns_to_rfc3339(c.time_s * NS_PER_S),
            "subject": c.subject,
            "files": ", ".join(c.files),
        }
        for c in reversed(repo.log())
    ]
    return {
        "exists": True,
        "head": repo.head(),
        "docs": docs,
        "commits": commits[:50],
        "errors": errors,
    }
