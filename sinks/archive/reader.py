"""Reads the span archive back as a polars lazy frame, pruned to the hours a query needs.

The files hold the ids as bytes (archives written before, as hex text); either way the frame has
them as lower-case hex text, "" for a root's parent, as `SpanBatch.to_polars` does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl

NS_PER_HOUR = 3_600 * 10**9
ID_COLUMNS = ("trace_id", "span_id", "parent_span_id")


def archive_files(root: str | Path, start_ns: int, end_ns: int) -> list[Path]:
    """Parquet files of the hour partitions overlapping [start_ns, end_ns)."""
    root = Path(root)
    files: list[Path] = []
    for hour in range(start_ns // NS_PER_HOUR, (end_ns - 1) // NS_PER_HOUR + 1):
        t = time.gmtime(hour * 3600)
        folder = root / f"dt={time.strftime('%Y-%m-%d', t)}" / f"hour={t.tm_hour:02d}"
        files.extend(sorted(folder.glob("*.parquet")))
    return files


def scan_files(files: Sequence[str | Path]) -> pl.LazyFrame:
    """Archive files as one lazy frame with hex ids (an empty frame when none)."""
    # Files of both layouts (an archive written across the upgrade) are scanned apart: one scan
    # takes its types from its first file.
    layouts: dict[bool, tuple[list[str], list[str]]] = {}
    for file in files:
        schema = pl.read_parquet_schema(file)
        ids = [c for c in ID_COLUMNS if schema.get(c) == pl.Binary]
        layouts.setdefault(bool(ids), (ids, []))[1].append(str(file))
    frames = [
        pl.scan_parquet(group).with_columns(pl.col(ids).bin.encode("hex").fill_null(""))
        for ids, group in layouts.values()
    ]
    if not frames:
        return pl.LazyFrame()
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def scan_spans(root: str | Path, start_ns: int, end_ns: int) -> pl.LazyFrame:
    """Spans that ended in [start_ns, end_ns), as a lazy frame (empty frame when none)."""
    files = archive_files(root, start_ns, end_ns)
    if not files:
        return pl.LazyFrame()
    return scan_files(files).filter((pl.col("end_ns") >= start_ns) & (pl.col("end_ns") < end_ns))
