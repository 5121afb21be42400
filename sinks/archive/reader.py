"""Reads the span archive back as a polars lazy frame, pruned to the hours a query needs."""

from __future__ import annotations

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
