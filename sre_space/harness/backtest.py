"""Backtests: each labelled recording replayed on its own, its incidents scored against its labels.

`sre-space replay FILE... --out DIR --labels [LABELS...]` writes one folder per recording
(`DIR/<name>/signals.jsonl`, `anomalies.jsonl`, `incidents.jsonl`) and `DIR/report.json`, and
prints the table: per scenario detected or not, time to detect, incidents per fault; false
incidents per clean hour, precision and recall.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from operators.scout.detect.scoring import score_recording, score_suite
from sinks.brain.scoring import label_commits
from sre_space.harness.diagnose_replay import (
    diagnose_replay,
    score_fault_diagnoses,
    summarize_diagnoses,
)
from sre_space.records import Incident, read_jsonl
from sre_space.settings import PipelineConfig
from sre_space.timeutil import rfc3339_to_ns

Replayer = Callable[[Sequence[Path], Path], dict[str, Path]]


def labels_path(recording: str | Path) -> Path:
    """Where the chaos recorder puts a recording's labels: `FILE.labels.json`."""
    return Path(f"{recording}.labels.json")


def run_name(recording: str | Path) -> str:
    """A folder name for a recording's outputs."""
    name = Path(recording).name
    for suffix in (".gz", ".jsonl", ".json", ".pb", ".proto"):
        name = name.removesuffix(suffix)
    return name


def score_one(
    recording: str | Path,
    folder: Path,
    files: dict[str, Path],
    label: dict[str, Any],
    config: PipelineConfig | None = None,
) -> dict[str, Any]:
    """Score one replayed recording: detection against its labels, then the Brain's diagnoses
    (on the spans as the replay's `config` selects them)."""
    incidents = read_jsonl(str(files["incidents"]), Incident)
    result = score_recording(
        incidents,
        label if label.get("onset") else None,
        start=rfc3339_to_ns(label["start"]),
        end=rfc3339_to_ns(label["stop"]),
        name=run_name(recording),
    )
    result["scenario"] = label.get("scenario", "")
    result["seed"] = label.get("seed")
    diagnoses = diagnose_replay([recording], folder, commits=label_commits(label), config=config)
    score_fault_diagnoses(result, diagnoses, label)
    return result


def backtest(
    recordings: Sequence[str | Path],
    labels: Sequence[str | Path] | None,
    out: str | Path,
    replay_one: Replayer,
    config: PipelineConfig | None = None,
) -> dict[str, Any]:
    """Replay and score every recording; write and return the suite report."""
    out = Path(out)
    label_files = [Path(p) for p in labels] if labels else [labels_path(r) for r in recordings]
    if len(label_files) != len(recordings):
        message = (
            f"--labels names {len(label_files)} files for {len(recordings)} recordings; "
            "give one per recording, in the same order, or none to use FILE.labels.json"
        )
        raise ValueError(message)
    scored = []
    for recording, label_file in zip(recordings, label_files, strict=True):
        try:
            label = json.loads(label_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read labels {label_file}: {exc}") from None
        folder = out / run_name(recording)
        files = replay_one([Path(recording)], folder)
        scored.append(score_one(recording, folder, files, label, config))
    report = score_suite(scored)
    summarize_diagnoses(report)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True), encoding="utf-8")
    return report
