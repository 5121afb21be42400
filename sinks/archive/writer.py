"""Writes decoded span batches to `<state>/spans/dt=YYYY-MM-DD/hour=HH/*.parquet`.

Rows are buffered per worker and written in chunks, one file per chunk and event hour, so the
archive holds a few large files instead of one per export request. Names carry the worker and a
sequence number, so workers never collide and a restart never overwrites.

Retention (`archive.max_age_hours`, `archive.max_bytes`): after each flush the writer drops the
oldest hour partitions, by event time (the spans it wrote), not by the wall clock.
"""

from __future__ import annotations

import calendar
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from operators.otlp.messages import Decoded
from operators.sampling import keep_mask

NS_PER_HOUR = 3_600 * 10**9


@dataclass(frozen=True, slots=True)
class Retention:
    """How much span archive to keep: event hours before the newest span's hour, and bytes."""

    max_age_hours: int
    max_bytes: int


def enforce_retention(
    root: str | Path, *, max_age_hours: int, max_bytes: int, now_ns: int
) -> list[Path]:
    """Delete the hour partitions more than `max_age_hours` before the hour of `now_ns` (event
    time), then the oldest others while the archive is over `max_bytes`; the newest partition
    (being written) stays whatever its size. Returns the folders removed, oldest first."""
    partitions = sorted(
        (_hour_of(folder), folder) for folder in Path(root).glob("dt=*/hour=*") if folder.is_dir()
    )
    sizes = {folder: _size(folder) for _, folder in partitions}
    total = sum(sizes.values())
    cutoff = now_ns // NS_PER_HOUR - max_age_hours
    removed: list[Path] = []
    for hour, folder in partitions[:-1]:
        if hour >= cutoff and total <= max_bytes:
            break
        total -= sizes[folder]
        # Another worker of the flow may be removing the same folder.
        shutil.rmtree(folder, ignore_errors=True)
        with suppress(OSError):
            folder.parent.rmdir()  # the day, once its last hour is gone
        removed.append(folder)
    return removed


def _hour_of(folder: Path) -> int:
    """Hours since the epoch of a `dt=YYYY-MM-DD/hour=HH` partition."""
    day = calendar.timegm(time.strptime(folder.parent.name.removeprefix("dt="), "%Y-%m-%d"))
    return day // 3600 + int(folder.name.removeprefix("hour="))


def _size(folder: Path) -> int:
    total = 0
    for file in folder.glob("*.parquet"):
        with suppress(FileNotFoundError):  # removed meanwhile by another worker
            total += file.stat().st_size
    return total


class SpanArchive:
    """A buffer of span frames flushed to hour partitions as Parquet."""

    def __init__(
        self,
        root: str | Path,
        selected_attributes: Sequence[str] = (),
        *,
        sample_rate: float = 1.0,
        flush_rows: int = 50_000,
        writer_id: str = "0",
        retention: Retention | None = None,
    ) -> None:
        self.root = Path(root)
        self.selected = tuple(selected_attributes)
        self.sample_rate = sample_rate
        self.flush_rows = flush_rows
        self.writer_id = writer_id
        self.retention = retention
        self._newest_ns = 0  # the archive's event time "now", for the retention
        self._frames: list[pl.DataFrame] = []
        self._rows = 0
        self._seq = 0
        # A restart must never overwrite an earlier run's files.
        self._run = uuid.uuid4().hex[:8]

    def add(self, decoded: Decoded) -> None:
        """Buffer the kept spans of one decoded request."""
        batch = decoded.spans
        if batch is None or len(batch) == 0:
            return
        mask = keep_mask(batch, self.sample_rate)
        rows = None if mask.all() else np.flatnonzero(mask).tolist()
        if rows == []:
            return
        frame = batch.to_polars(self.selected, rows)
        self._frames.append(frame)
        self._rows += frame.height
        if self._rows >= self.flush_rows:
            self.flush()

    def flush(self) -> list[Path]:
        """Write what is buffered, then enforce the retention; returns the files written."""
        if not self._frames:
            return []
        frame = pl.concat(self._frames, how="vertical_relaxed")
        self._frames, self._rows = [], 0
        # The median, not the newest span: one span from a skewed clock must not age out the rest.
        self._newest_ns = max(self._newest_ns, int(frame["end_ns"].sort()[frame.height // 2]))
        cutoff = self._oldest_kept_hour()
        frame = frame.with_columns((pl.col("end_ns") // NS_PER_HOUR).alias("_hour"))
        written = []
        for (hour,), part in frame.partition_by("_hour", as_dict=True).items():
            if int(hour) < cutoff:
                continue  # late spans the retention would drop at once
            start = time.gmtime(int(hour) * 3600)
            folder = (
                self.root / f"dt={time.strftime('%Y-%m-%d', start)}" / f"hour={start.tm_hour:02d}"
            )
            self._seq += 1
            path = folder / f"part-{self.writer_id}-{self._run}-{self._seq:06d}.parquet"
            _write(part.drop("_hour").sort("end_ns"), path)
            written.append(path)
        if self.retention is not None:
            enforce_retention(
                self.root,
                max_age_hours=self.retention.max_age_hours,
                max_bytes=self.retention.max_bytes,
                now_ns=self._newest_ns,
            )
        return written

    def _oldest_kept_hour(self) -> int:
        if self.retention is None:
            return 0
        return self._newest_ns // NS_PER_HOUR - self.retention.max_age_hours


def _write(frame: pl.DataFrame, path: Path) -> None:
    """Write `frame` to `path` through a temporary file, so readers never see half a file."""
    tmp = path.with_suffix(".tmp")
    for attempt in (1, 2):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            frame.write_parquet(tmp, compression="zstd")
            os.replace(tmp, path)
            return
        except FileNotFoundError:
            # Another worker's retention removed the partition between mkdir and write.
            if attempt == 2:
                raise


class _Partition(StatelessSinkPartition[Decoded]):
    def __init__(self, archive: SpanArchive) -> None:
        self._archive = archive

    def write_batch(self, items: list[Decoded]) -> None:
        for item in items:
            self._archive.add(item)

    def close(self) -> None:
        self._archive.flush()


class ArchiveSink(DynamicSink[Decoded]):
    """The span archive as a Bytewax sink (one buffer per worker)."""

    def __init__(
        self, root: str | Path, selected_attributes: Sequence[str], **options: Any
    ) -> None:
        self.root = root
        self.selected = tuple(selected_attributes)
        self.options = options

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(
            SpanArchive(self.root, self.selected, writer_id=str(worker_index), **self.options)
        )
