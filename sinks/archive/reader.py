"""Reads the span archive back as a polars lazy frame, pruned to the hours a query needs, and
says up to when every writer's spans are on disk (`covered_until`).

The files hold the ids as bytes, and neither `duration_ns` nor `is_error` (archives written before:
hex text, the duration, the flag); either way the frame has the columns of `SpanBatch.to_polars`,
ids as lower-case hex text ("" for a root's parent), though not in its order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from operators.otlp.spans import SPAN_KIND_SERVER, STATUS_CODE_ERROR

NS_PER_HOUR = 3_600 * 10**9
ID_COLUMNS = ("trace_id", "span_id", "parent_span_id")
# `SpanBatch.is_error` from the columns it reads: status ERROR, HTTP 5xx on a server span, or a
# non-OK gRPC code (the decoders store both codes for server and consumer spans only)
IS_ERROR = (
    (pl.col("status_code") == STATUS_CODE_ERROR)
    | ((pl.col("kind") == SPAN_KIND_SERVER) & (pl.col("http_status") >= 500))
    | (pl.col("rpc_grpc_status") > 0)
)


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
    """Archive files as one lazy frame in the span frame's types (an empty frame when none)."""
    # Files of several layouts (an archive written across the upgrade) are scanned apart: one
    # scan takes its types from its first file.
    layouts: dict[tuple[tuple[str, ...], bool, bool], list[str]] = {}
    for file in files:
        schema = pl.read_parquet_schema(file)
        ids = tuple(c for c in ID_COLUMNS if schema.get(c) == pl.Binary)
        layout = (ids, "duration_ns" in schema, "is_error" in schema)
        layouts.setdefault(layout, []).append(str(file))
    frames = []
    for (ids, has_duration, has_error), group in layouts.items():
        frame = pl.scan_parquet(group).with_columns(pl.col(ids).bin.encode("hex").fill_null(""))
        if not has_duration:
            # clamped at zero, as `SpanBatch.duration_ns` (a skewed clock's end before its start)
            duration = (pl.col("end_ns") - pl.col("start_ns")).clip(lower_bound=0)
            frame = frame.with_columns(duration.alias("duration_ns"))
        if not has_error:
            frame = frame.with_columns(IS_ERROR.alias("is_error"))
        frames.append(frame)
    if not frames:
        return pl.LazyFrame()
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def scan_spans(root: str | Path, start_ns: int, end_ns: int) -> pl.LazyFrame:
    """Spans that ended in [start_ns, end_ns), as a lazy frame (empty frame when none)."""
    files = archive_files(root, start_ns, end_ns)
    if not files:
        return pl.LazyFrame()
    return scan_files(files).filter((pl.col("end_ns") >= start_ns) & (pl.col("end_ns") < end_ns))


def covered_until(root: str | Path, start_ns: int, end_ns: int) -> int | None:
    """Up to when the archive holds every writer's spans of [start_ns, end_ns): the least newest
    span end, from start_ns on, among the writers with spans there, at most end_ns - 1 (None:
    none has). Each worker flushes its own buffer: one worker's newest span says nothing of what
    another still holds in memory."""
    by_writer: dict[str, list[Path]] = {}
    for file in archive_files(root, start_ns, end_ns):
        by_writer.setdefault(writer_of(file.name), []).append(file)
    newest = []
    for files in by_writer.values():
        frame = scan_files(files).filter(pl.col("end_ns") >= start_ns)
        value = frame.select(pl.col("end_ns").max()).collect().item()
        if value is not None:
            newest.append(int(value))
    return min(*newest, end_ns - 1) if newest else None


def file_name(writer: str, run: str, seq: int) -> str:
    """An archive file's name: its writer (worker), the writer's run and the file's sequence."""
    return f"part-{writer}-{run}-{seq:06d}.parquet"


def writer_of(name: str) -> str:
    """The writer (worker) id in an archive file's name (`file_name`); a name of another form
    is a writer of its own."""
    if not name.startswith("part-"):
        return name
    parts = name.removeprefix("part-").rsplit("-", 2)
    return parts[0] if len(parts) == 3 else name
