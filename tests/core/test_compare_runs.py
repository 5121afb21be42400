"""scripts/compare_runs.py: byte-identical outputs, and commit ids mapped through the labels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_runs.py"


def _run(root: Path, sha: str, subject: str = "deploy cart 3.3.0") -> Path:
    (root / "errors-seed1").mkdir(parents=True)
    change = {"commit": sha, "time": "2026-01-05T00:03:00.000Z", "subject": subject}
    (root / "errors-seed1.pb.labels.json").write_text(json.dumps({"changes": [change]}))
    line = {"actions": [{"action": "revert_commit", "params": {"sha": sha}}], "short": sha[:12]}
    (root / "errors-seed1" / "diagnoses.jsonl").write_text(json.dumps(line) + "\n")
    return root


def _compare(*args: Path | str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(SCRIPT), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_commit_ids_are_mapped_by_the_labels(tmp_path: Path) -> None:
    before = _run(tmp_path / "before", "a" * 40)
    after = _run(tmp_path / "after", "b" * 40)
    assert _compare(before, after).returncode == 1  # the ids differ byte for byte
    mapped = _compare("--map-commits", before, after)
    assert mapped.returncode == 0 and "1 files compared, 0 differ" in mapped.stdout


def test_commits_that_do_not_pair_differ(tmp_path: Path) -> None:
    before = _run(tmp_path / "before", "a" * 40)
    after = _run(tmp_path / "after", "b" * 40, subject="deploy cart 3.4.0")
    done = _compare("--map-commits", before, after)
    assert done.returncode == 1 and "differ in subject or time" in done.stdout
