"""The Backtests page's reads: replay reports under `<state>/backtests/`, their faults, totals and
signal windows."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.queries.signals import signals_frame
from sre_space.paths import StatePaths


def backtests(state_dir: str | Path) -> list[dict[str, Any]]:
    """Replay reports under `<state>/backtests/*/report.json`, newest first.

    Each: name, folder, modified (UTC), report (the scored suite), labels (if the folder has
    them) and how many signals, anomalies and incidents the replay wrote.
    """
    root = StatePaths(Path(state_dir)).backtests
    out = []
    for path in root.glob("*/report.json") if root.exists() else ():
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        folder = path.parent
        labels_file = folder / "labels.json"
        try:
            labels = json.loads(labels_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            labels = None
        mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        out.append(
            {
                "name": folder.name,
                "folder": str(folder),
                "modified": mtime.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "report": report if isinstance(report, dict) else {},
                "labels": labels,
                "signals": _count_lines(folder / "signals.jsonl"),
                "anomalies": _count_schema(folder / "anomalies.jsonl", "sre.anomaly/v1"),
                "incidents": len(
                    {json.loads(x).get("id") for x in _lines(folder / "incidents.jsonl")}
                ),
            }
        )
    return sorted(out, key=lambda b: (b["modified"], b["name"]), reverse=True)


def _lines(path: Path) -> list[str]:
    try:
        return [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    except OSError:
        return []


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError:
        return 0


def _count_schema(path: Path, schema: str) -> int:
    ids = set()
    for line in _lines(path):
        data = json.loads(line)
        if data.get("schema") == schema:
            ids.add(data.get("id"))
    return len(ids)


def backtest_signals(folder: str | Path) -> pl.DataFrame:
    """The signal windows a replay wrote (`<folder>/signals.jsonl`) as a frame."""
    return signals_frame(json.loads(line) for line in _lines(Path(folder) / "signals.jsonl"))


def backtest_faults(reports: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """One row per labelled fault across reports: detected, time to detect, culprit localized."""
    rows = []
    for b in reports:
        rep = b.get("report") or {}
        recs = rep.get("recordings") or ([rep] if "faults" in rep else [])
        for rec in recs:
            for f in rec.get("faults") or []:
                rows.append(
                    {
                        "backtest": str(b.get("name", "")),
                        "recording": str(rec.get("recording", "")),
                        "scenario": str(f.get("scenario", "")),
                        "culprit": str(f.get("culprit") or ""),
                        "detected": bool(f.get("detected")),
                        "ttd_s": f.get("ttd_s"),
                        "localized": bool(f.get("culprit_in_services")),
                        "incidents": len(f.get("incidents") or []),
                        "false_incidents": len(rec.get("false_incidents") or []),
                    }
                )
    return pl.DataFrame(
        rows,
        schema={
            "backtest": pl.String(),
            "recording": pl.String(),
            "scenario": pl.String(),
            "culprit": pl.String(),
            "detected": pl.Boolean(),
            "ttd_s": pl.Float64(),
            "localized": pl.Boolean(),
            "incidents": pl.Int64(),
            "false_incidents": pl.Int64(),
        },
    )


def backtest_totals(faults: pl.DataFrame) -> dict[str, Any]:
    """Recall, median time to detect and localization accuracy over a fault table."""
    n = faults.height
    if n == 0:
        return {"faults": 0, "recall": None, "ttd_median_s": None, "localization": None}
    detected = faults.filter(pl.col("detected"))
    ttd = detected["ttd_s"].drop_nulls()
    return {
        "faults": n,
        "recall": detected.height / n,
        "ttd_median_s": float(ttd.median()) if ttd.len() else None,  # type: ignore[arg-type]
        "localization": faults.filter(pl.col("localized")).height / n,
    }
