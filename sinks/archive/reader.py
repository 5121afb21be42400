"""Reads the span archive back as a polars lazy frame, pruned to the hours a query needs."""

from __future__ import annotations

import calendar
import shutil
import time
from pathlib import Path

import polars as pl

NS_PER_HOUR = 3_600 * 10**9


def archive_files(root: str | Path, start_ns: int, end_ns: int) -> list[Path]:
    """Parquet files of the hour partitions overlapping [start_ns, end_ns)."""
    root = Path(root)
    files: list[Path] = []
    for hour in range(start_ns // NS_PER_HOUR, (end_ns - 1) // NS_PER_HOUR + 1):
        t = time.gmtime(hour * 3600)
        folder = root / f"dt={time.strftime('%Y-%m-%d', t)}" / f"hour={t.tm_hour:02d}"
        files.extend(sorted(folder.glob("*.parquet")))
    return files


def scan_spans(root: str | Path, start_ns: int, end_ns: int) -> pl.LazyFrame:
    """Spans that ended in [start_ns, end_ns), as a lazy frame (empty frame when none)."""
    files = archive_files(root, start_ns, end_ns)
    if not files:
        return pl.LazyFrame()
    return pl.scan_parquet(files).filter(
        (pl.col("end_ns") >= start_ns) & (pl.col("end_ns") < end_ns)
    )


def enforce_retention(
    root: str | Path, *, max_age_hours: int, max_bytes: int, now_ns: int
) -> list[Path]:
    """Delete hour partitions older than `max_age_hours` (event time) or beyond `max_bytes`, oldest
    first; returns the folders removed."""
    root = Path(root)
    folders = sorted(p for p in root.glob("dt=*/hour=*") if p.is_dir())
    removed: list[Path] = []
    cutoff = now_ns // NS_PER_HOUR - max_age_hours
    sizes = {f: sum(x.stat().st_size for x in f.glob("*.parquet")) for f in folders}
    total = sum(sizes.values())
    for folder in folders:
        day = folder.parent.name.removeprefix("dt=")
        hour = int(folder.name.removeprefix("hour="))
        t = calendar.timegm(time.strptime(day, "%Y-%m-%d")) // 3600 + hour
        if t < cutoff or total > max_bytes:
            total -= sizes[folder]
            shutil.rmtree(folder)
            removed.append(folder)
    return removed
