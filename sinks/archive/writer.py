"""Writes decoded span batches to `<state>/spans/dt=YYYY-MM-DD/hour=HH/*.parquet`.

Rows are buffered per worker as Arrow batches and written by a thread in chunks, one file per chunk
and event hour, so the archive holds a few large files instead of one per export request. Names
carry the worker and a sequence number, so workers never collide and a restart never overwrites.

Retention (`archive.max_age_hours`, `archive.max_bytes`): after each flush the writer drops the
oldest hour partitions, by event time (the spans it wrote), not by the wall clock; it counts
again only the partitions whose folder changed (`PartitionSizes`).
"""

from __future__ import annotations

import calendar
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from operators.otlp.messages import Decoded, span_batches
from operators.sampling import TailPolicy, TraceSampler, notable, trace_keys
from sinks.archive.columns import span_record_batch
from sinks.archive.reader import file_name
from sre_space.settings import PipelineConfig

NS_PER_HOUR = 3_600 * 10**9
# Requests are converted together up to this many spans: a conversion's fixed cost is most of a
# 512-span request's, and fewer, longer batches cost the writer less too (a 512-span poll of 64
# requests in one: caller 0.39 -> 0.32, writer 0.24 -> 0.21 CPU-s per 1M spans; 8192-span
# requests by four: writer 0.23 -> 0.21). A flush may hold up to this many rows over flush_rows.
JOIN_SPANS = 32768
_TIME_COLUMNS = ("start_ns", "end_ns")
# Per-column choices, measured with `python -m bench.archive` (writer CPU and bytes per span):
# span ids are random bytes, so compressing them costs and saves nothing; LZ4 is about a fifth
# cheaper than zstd elsewhere for a few percent more bytes, except on the events' JSON, where
# zstd is worth it. Trace ids keep LZ4: a trace's spans mostly come together (6-span traces:
# 16 -> 4.9 B/span). Text columns are Parquet dictionaries; the names, and attribute columns
# with one value in a batch (mostly "": absent), arrive as Arrow dictionaries sharing one
# dictionary per file (`_table`), so Parquet writes their codes instead of hashing each span's
# text (operation: 37 -> 12 ms per 1M spans and 2.6 -> 0.4 B/span; an absent attribute 9 -> 5
# ms). Columns but the ids are required (no nulls: see `span_record_batch`), which spares
# Parquet their definition levels.
_RAW_COLUMNS = frozenset(("span_id", "parent_span_id"))
_ZSTD_COLUMNS = frozenset(("events",))


@dataclass(frozen=True, slots=True)
class Retention:
    """How much span archive to keep: event hours before the newest span's hour, and bytes."""

    max_age_hours: int
    max_bytes: int


def enforce_retention(
    root: str | Path,
    *,
    max_age_hours: int,
    max_bytes: int,
    now_ns: int,
    sizes: PartitionSizes | None = None,
) -> list[Path]:
    """Delete the hour partitions more than `max_age_hours` before the hour of `now_ns` (event
    time), then the oldest others while the archive is over `max_bytes`; the newest partition
    (being written) stays whatever its size. Returns the folders removed, oldest first.
    `sizes` keeps the partitions' byte counts from one call to the next (a writer's)."""
    partitions = _partitions(str(root))
    size = (sizes or PartitionSizes()).count([folder for _, folder in partitions])
    total = sum(size.values())
    cutoff = now_ns // NS_PER_HOUR - max_age_hours
    removed: list[Path] = []
    for hour, folder in partitions[:-1]:
        if hour >= cutoff and total <= max_bytes:
            break
        total -= size[folder]
        # Another worker of the flow may be removing the same folder.
        shutil.rmtree(folder, ignore_errors=True)
        with suppress(OSError):
            os.rmdir(os.path.dirname(folder))  # the day, once its last hour is gone
        removed.append(Path(folder))
    return removed


class PartitionSizes:
    """The bytes of the hour partitions' Parquet files, counted again only in the folders that
    changed since: stating every file of the archive at each flush cost the writer more CPU than
    the Parquet itself once the archive was full (2 GiB, ~1,300 files).

    A file added to or removed from a folder changes the folder's mtime, and files are never
    rewritten in place (written aside, then renamed in). A folder changed within the last
    `_SETTLED_NS` is counted each time: a change in the same clock tick leaves its mtime as is.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[int, int]] = {}  # folder: (its mtime, its files' bytes)

    def count(self, folders: Sequence[str]) -> dict[str, int]:
        """The bytes of each folder's Parquet files (0 for a folder removed meanwhile)."""
        known, self._known = self._known, {}  # forgets the folders gone
        settled = time.time_ns() - _SETTLED_NS
        out = {}
        for folder in folders:
            try:
                mtime = os.stat(folder).st_mtime_ns
            except FileNotFoundError:  # removed meanwhile by another worker
                out[folder] = 0
                continue
            hit = known.get(folder)
            size = hit[1] if hit is not None and hit[0] == mtime else _size(folder)
            if mtime < settled:
                self._known[folder] = (mtime, size)
            out[folder] = size
        return out


_SETTLED_NS = 2 * 10**9  # above the mtime granularity of common filesystems (FAT's: 2 s)


def _partitions(root: str) -> list[tuple[int, str]]:
    """The `dt=YYYY-MM-DD/hour=HH` folders under `root` as (hours since the epoch, path), oldest
    first."""
    found = []
    for day in _entries(root, "dt="):
        if day.is_dir():
            for hour in _entries(day.path, "hour="):
                if hour.is_dir():
                    found.append((_hour_of(day.name, hour.name), hour.path))
    return sorted(found)


def _entries(folder: str, prefix: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return [e for e in entries if e.name.startswith(prefix)]
    except FileNotFoundError:  # removed meanwhile by another worker
        return []


def _hour_of(day: str, hour: str) -> int:
    """Hours since the epoch of the partition `dt=YYYY-MM-DD/hour=HH`."""
    year, month, date = map(int, day.removeprefix("dt=").split("-"))
    return calendar.timegm((year, month, date, 0, 0, 0)) // 3600 + int(hour.removeprefix("hour="))


def _size(folder: str) -> int:
    total = 0
    for file in _entries(folder, ""):
        if file.name.endswith(".parquet") and not file.name.startswith("."):
            with suppress(FileNotFoundError):  # removed meanwhile by another worker
                total += file.stat().st_size
    return total


class SpanArchive:
    """Kept spans as Arrow batches, flushed to hour partitions as Parquet by a writer thread.

    `add` converts and samples on the caller's thread; every `flush_rows` rows, or once the buffered
    spans' end times are `flush_seconds` apart (event time: at any traffic the Brain reads an
    incident's onset within seconds, not after the next `flush_rows` spans), the buffer goes to a
    bounded queue (`max_queued` flushes) that one thread drains, so the caller waits only when the
    disk falls behind, and memory stays within about (max_queued + 2) x flush_rows spans (a flush
    may be up to `JOIN_SPANS` over), plus 4 x flush_rows spans waiting for their trace decision when
    sampling.
    """

    def __init__(
        self,
        root: str | Path,
        selected_attributes: Sequence[str] = (),
        *,
        sample_rate: float = 1.0,
        flush_rows: int = 50_000,
        flush_seconds: float = 15.0,
        writer_id: str = "0",
        retention: Retention | None = None,
        decision_wait_s: float = 30.0,
        max_queued: int = 2,
    ) -> None:
        self.root = Path(root)
        self.selected = tuple(selected_attributes)
        self.sample_rate = sample_rate
        self.flush_rows = flush_rows
        self.flush_ns = int(flush_seconds * 1e9)
        self.writer_id = writer_id
        self.retention = retention
        self._sampler: TraceSampler[pa.RecordBatch] = TraceSampler(
            TailPolicy(
                sample_rate,
                wait_ns=int(decision_wait_s * 1e9),
                max_pending_spans=4 * flush_rows,
            )
        )
        self._batches: list[pa.RecordBatch] = []
        self._rows = 0
        self._oldest_ns: int | None = None  # the buffered spans' earliest end
        self._files = _FileWriter(self.root, writer_id, retention)
        self._queue: queue.Queue[list[pa.RecordBatch] | None] = queue.Queue(max_queued)
        self._thread: threading.Thread | None = None

    def add(self, decoded: Decoded | Sequence[Decoded]) -> None:
        """Buffer the kept spans of decoded requests (after the trace decision wait).

        Small requests (a poll's) are converted to Arrow together, about `JOIN_SPANS` spans at a
        time; when sampling, each is then sampled on its own, as if added one by one.
        """
        items = [decoded] if isinstance(decoded, Decoded) else decoded
        run: list[Decoded] = []
        size = 0
        for d in items:
            count = d.span_count()
            if count == 0:
                continue
            run.append(d)
            size += count
            if size >= JOIN_SPANS:
                self._add_run(run)
                run, size = [], 0
        if run:
            self._add_run(run)

    def _add_run(self, run: list[Decoded]) -> None:
        if self.sample_rate >= 1.0:
            batches = span_batches(run)  # requests decoded together: one batch
        else:
            batches = [d.spans for d in run if d.spans is not None]
        records = span_record_batch(batches, self.selected)
        if self.sample_rate >= 1.0:
            # Whole: a slice per request would be a chunk per request and column for the writer.
            self._buffer(records)
            return
        start = 0
        for batch in batches:
            # zero-copy: the slices share the poll's buffers
            part = records.slice(start, len(batch))
            start += len(batch)
            keys = trace_keys(batch)
            for item, keep in self._sampler.offer(part, keys, notable(batch), batch.end_ns):
                self._buffer(item.filter(_mask(keep)))

    def _buffer(self, records: pa.RecordBatch) -> None:
        if records.num_rows == 0:
            return
        self._batches.append(records)
        self._rows += records.num_rows
        end = _int64s(records.column("end_ns"))
        oldest = int(end.min())
        if self._oldest_ns is None or oldest < self._oldest_ns:
            self._oldest_ns = oldest
        if self._rows >= self.flush_rows or int(end.max()) - self._oldest_ns >= self.flush_ns:
            self._hand_off()

    def _hand_off(self) -> None:
        self._files.raise_failure()
        if not self._batches:
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._drain, name=f"span-archive-{self.writer_id}", daemon=True
            )
            self._thread.start()
        self._queue.put(self._batches)  # blocks while the writer is `max_queued` flushes behind
        self._batches, self._rows, self._oldest_ns = [], 0, None

    def _drain(self) -> None:
        while (batches := self._queue.get()) is not None:
            self._files.write(batches)

    def flush(self) -> list[Path]:
        """Decide what waits, write everything buffered and wait for the writer; returns the
        files written since the last flush."""
        for item, keep in self._sampler.drain():
            self._buffer(item.filter(_mask(keep)))
        self._hand_off()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        # Arrow's allocator keeps freed pages for reuse; give them back once idle. Not after each
        # file: that cost the writer a tenth of its CPU (the next file faults the pages in again)
        # and left the flow's peak RSS as it was (bench.throughput, kafka: 470-500 MiB either way).
        pa.default_memory_pool().release_unused()
        self._files.raise_failure()
        return self._files.take_written()


class _FileWriter:
    """Writes buffered batches as one Parquet file per event hour, then applies the retention."""

    def __init__(self, root: Path, writer_id: str, retention: Retention | None) -> None:
        self.root = root
        self.writer_id = writer_id
        self.retention = retention
        self._newest_ns = 0  # the archive's event time "now", for the retention
        self._seq = 0
        # A restart must never overwrite an earlier run's files.
        self._run = uuid.uuid4().hex[:8]
        self._written: list[Path] = []
        self._sizes = PartitionSizes()
        self._failure: BaseException | None = None

    def raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise RuntimeError(f"span archive writer failed: {failure}") from failure

    def take_written(self) -> list[Path]:
        written, self._written = self._written, []
        return written

    def write(self, batches: list[pa.RecordBatch]) -> None:
        try:
            self._write(_table(batches))
        except Exception as exc:  # reported on the dataflow's thread at its next add or flush
            self._failure = exc

    def _write(self, table: pa.Table) -> None:
        end = np.concatenate([_int64s(chunk) for chunk in table.column("end_ns").chunks])
        # The median, not the newest span: one span from a skewed clock must not age out the rest.
        self._newest_ns = max(self._newest_ns, int(np.median(end)))
        cutoff = self._oldest_kept_hour()
        hours = end // NS_PER_HOUR
        first, last = int(hours.min()), int(hours.max())
        # Nearly always one hour: a sort (np.unique) of every flush only to learn that costs.
        unique = [first] if first == last else np.unique(hours).tolist()
        for hour in unique:
            if hour < cutoff:
                continue  # late spans the retention would drop at once
            # Rows stay in arrival order: a file is one row group, so sorting would not prune.
            part = table
            if len(unique) > 1:
                rows = np.flatnonzero(hours == hour)
                index = pa.Array.from_buffers(pa.int64(), len(rows), [None, pa.py_buffer(rows)])
                part = table.take(index)
            start = time.gmtime(hour * 3600)
            folder = (
                self.root / f"dt={time.strftime('%Y-%m-%d', start)}" / f"hour={start.tm_hour:02d}"
            )
            self._seq += 1
            path = folder / file_name(self.writer_id, self._run, self._seq)
            _write(part, path)
            self._written.append(path)
        if self.retention is not None:
            enforce_retention(
                self.root,
                max_age_hours=self.retention.max_age_hours,
                max_bytes=self.retention.max_bytes,
                now_ns=self._newest_ns,
                sizes=self._sizes,
            )

    def _oldest_kept_hour(self) -> int:
        if self.retention is None:
            return 0
        return self._newest_ns // NS_PER_HOUR - self.retention.max_age_hours


def _table(batches: list[pa.RecordBatch]) -> pa.Table:
    """The batches as one table whose dictionary columns share one dictionary per column.

    Parquet writes a dictionary column's codes as they are only while its dictionary stays the
    same; at the first chunk with another it hashes every value instead (each poll's names come
    in their own order). A text column that is a dictionary in some batches (one value) and plain
    in others is made plain: `Table.from_batches` needs one type.
    """
    schema = batches[0].schema
    if all(batch.schema.equals(schema) for batch in batches):  # a third of the cost of below
        return pa.Table.from_batches(batches).unify_dictionaries()
    columns = []
    for i in range(len(schema)):
        chunks = [batch.column(i) for batch in batches]
        if len({chunk.type for chunk in chunks}) > 1:
            chunks = [_plain(chunk) for chunk in chunks]
        columns.append(pa.chunked_array(chunks))
    # The batches' fields, their nulls declared as they were (no nulls: a required column).
    fields = [field.with_type(column.type) for field, column in zip(schema, columns, strict=True)]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields)).unify_dictionaries()


def _plain(array: pa.Array) -> pa.Array:
    return array.dictionary_decode() if isinstance(array, pa.DictionaryArray) else array


def _int64s(array: pa.Array) -> np.ndarray:
    # From the buffer: Array.to_numpy() imports pandas, a second of CPU (the column has no nulls).
    values = np.frombuffer(array.buffers()[1], dtype=np.int64)
    return values[array.offset : array.offset + len(array)]


def _mask(keep: np.ndarray) -> pa.Array:
    bits = np.packbits(keep, bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(keep), [None, pa.py_buffer(bits)])


def _codec(column: str) -> str:
    return "none" if column in _RAW_COLUMNS else "zstd" if column in _ZSTD_COLUMNS else "lz4"


def _is_text(type_: pa.DataType) -> bool:
    return bool(pa.types.is_string(type_) or pa.types.is_dictionary(type_))


def _write(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` through a temporary file, so readers never see half a file."""
    tmp = path.with_suffix(".tmp")
    columns = table.column_names
    for attempt in (1, 2):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            pq.write_table(
                table,
                tmp,
                compression={c: _codec(c) for c in columns},
                compression_level={c: 1 for c in columns if _codec(c) == "zstd"},
                # Times are near-sorted integers: split into byte streams, their high bytes
                # repeat and LZ4 packs them to 3.4 to 4 B each, at half the CPU of deltas (3.2
                # to 3.7 B; 9 to 14 against 4 to 5 ns a span) and a fifth of plain LZ4's.
                column_encoding=dict.fromkeys(_TIME_COLUMNS, "BYTE_STREAM_SPLIT"),
                # Names and attributes repeat: a dictionary each. Ids are unique, and the few
                # values of the small numbers compress as well without one.
                use_dictionary=[f.name for f in table.schema if _is_text(f.type)],
                # Statistics prune by time; for random ids they cost and never prune.
                write_statistics=list(_TIME_COLUMNS),
                store_schema=False,  # readers see the text columns as plain strings
            )
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
        self._archive.add(items)

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

    @classmethod
    def from_config(
        cls, root: str | Path, config: PipelineConfig, *, retained: bool = True
    ) -> ArchiveSink:
        """The archive `config` describes (its `archive` and selected attributes); `retained`:
        with its retention (a backtest's archive keeps its whole recording, however old)."""
        archive = config.archive
        retention = Retention(archive.max_age_hours, archive.max_bytes) if retained else None
        return cls(
            root,
            config.signals.selected_attributes,
            sample_rate=archive.sample_rate,
            flush_rows=archive.flush_rows,
            flush_seconds=archive.flush_seconds,
            decision_wait_s=archive.decision_wait_seconds,
            retention=retention,
        )

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(
            SpanArchive(self.root, self.selected, writer_id=str(worker_index), **self.options)
        )
