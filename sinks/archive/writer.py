"""Writes decoded span batches to `<state>/spans/dt=YYYY-MM-DD/hour=HH/*.parquet`.

Rows are buffered per worker and written in chunks, one file per chunk and event hour, so the
archive holds a few large files instead of one per export request. Names carry the worker and a
sequence number, so workers never collide and a restart never overwrites.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from operators.otlp.messages import Decoded
from operators.sampling import keep_mask

NS_PER_HOUR = 3_600 * 10**9


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
    ) -> None:
        self.root = Path(root)
        self.selected = tuple(selected_attributes)
        self.sample_rate = sample_rate
        self.flush_rows = flush_rows
        self.writer_id = writer_id
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
        """Write what is buffered; returns the files written."""
        if not self._frames:
            return []
        frame = pl.concat(self._frames, how="vertical_relaxed")
        self._frames, self._rows = [], 0
        frame = frame.with_columns((pl.col("end_ns") // NS_PER_HOUR).alias("_hour"))
        written = []
        for (hour,), part in frame.partition_by("_hour", as_dict=True).items():
            start = time.gmtime(int(hour) * 3600)
            folder = (
                self.root / f"dt={time.strftime('%Y-%m-%d', start)}" / f"hour={start.tm_hour:02d}"
            )
            folder.mkdir(parents=True, exist_ok=True)
            self._seq += 1
            path = folder / f"part-{self.writer_id}-{self._run}-{self._seq:06d}.parquet"
            tmp = path.with_suffix(".tmp")
            part.drop("_hour").sort("end_ns").write_parquet(tmp, compression="zstd")
            os.replace(tmp, path)  # readers never see a half-written file
            written.append(path)
        return written


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
