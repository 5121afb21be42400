"""The span archive's retention: the oldest event hours go first, past the age or the byte budget."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.workload import T0_NS, generate
from operators.otlp import decode_trace_proto
from operators.otlp.messages import Decoded
from sinks.archive import Retention, SpanArchive, writer
from sinks.archive.writer import NS_PER_HOUR, PartitionSizes, enforce_retention


def _hours(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.glob("dt=*/hour=*"))


def _partition(root: Path, day: str, hour: int, size: int) -> Path:
    folder = root / f"dt={day}" / f"hour={hour:02d}"
    folder.mkdir(parents=True)
    (folder / "part-0.parquet").write_bytes(b"x" * size)
    return folder


def test_aged_hours_go_then_the_oldest_while_over_budget(tmp_path: Path) -> None:
    for hour in (22, 23):
        _partition(tmp_path, "2026-01-04", hour, 100)
    for hour in (0, 1, 2):
        _partition(tmp_path, "2026-01-05", hour, 100)
    now = T0_NS + 2 * NS_PER_HOUR + 1  # 2026-01-05 02:00 and a bit
    removed = enforce_retention(tmp_path, max_age_hours=3, max_bytes=10**6, now_ns=now)
    assert [p.relative_to(tmp_path).as_posix() for p in removed] == ["dt=2026-01-04/hour=22"]
    removed = enforce_retention(tmp_path, max_age_hours=3, max_bytes=250, now_ns=now)
    assert len(removed) == 2  # 400 bytes left: two oldest hours drop to get under 250
    assert _hours(tmp_path) == ["dt=2026-01-05/hour=01", "dt=2026-01-05/hour=02"]
    assert not (tmp_path / "dt=2026-01-04").exists()  # the emptied day goes too
    # The newest hour is being written: it stays even alone over the budget.
    enforce_retention(tmp_path, max_age_hours=3, max_bytes=10, now_ns=now)
    assert _hours(tmp_path) == ["dt=2026-01-05/hour=02"]


def _spans_at(hour: int, n: int = 50, seed: int = 1) -> Decoded:
    requests, _ = generate(n, seed=seed, spans_per_request=n, start_ns=T0_NS + hour * NS_PER_HOUR)
    return Decoded("test", 0, hour, spans=decode_trace_proto(requests[0]))


def test_the_writer_keeps_event_hours_within_the_age(tmp_path: Path) -> None:
    archive = SpanArchive(tmp_path, flush_rows=10**6, retention=Retention(2, 10**12))
    for hour in range(5):
        archive.add(_spans_at(hour))
        assert archive.flush()
    assert _hours(tmp_path) == [f"dt=2026-01-05/hour={h:02d}" for h in (2, 3, 4)]
    archive.add(_spans_at(0, seed=2))  # late spans of an hour already dropped
    assert archive.flush() == []
    # One span from a skewed clock, far ahead, does not age out the archive.
    archive.add(_spans_at(4, seed=3))
    archive.add(_spans_at(1_000, n=1))
    archive.flush()
    assert _hours(tmp_path)[:3] == [f"dt=2026-01-05/hour={h:02d}" for h in (2, 3, 4)]


def test_the_writer_keeps_the_archive_within_its_bytes(tmp_path: Path) -> None:
    archive = SpanArchive(tmp_path, flush_rows=10**6, retention=Retention(1_000, 1))
    for hour in range(3):
        archive.add(_spans_at(hour))
        archive.flush()
    assert _hours(tmp_path) == ["dt=2026-01-05/hour=02"]


def test_partition_sizes_count_again_only_the_folders_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = (
        _partition(tmp_path, "2026-01-04", 22, 100),
        _partition(tmp_path, "2026-01-04", 23, 7),
    )
    os.utime(old, ns=(T0_NS, T0_NS))  # settled long ago; `new` changed just now
    counted: list[str] = []
    count = writer._size
    monkeypatch.setattr(writer, "_size", lambda folder: counted.append(folder) or count(folder))
    sizes = PartitionSizes()
    folders = [str(old), str(new)]
    assert sizes.count(folders) == {str(old): 100, str(new): 7}
    assert sizes.count(folders) == {str(old): 100, str(new): 7}
    # The settled folder is counted once; the fresh one each time (its mtime may not move yet).
    assert counted == [str(old), str(new), str(new)]
    (old / "part-1.parquet").write_bytes(b"x" * 50)  # a file added changes the folder's mtime
    (old / "part-1.tmp").write_bytes(b"x" * 50)  # being written aside: not counted
    assert sizes.count(folders)[str(old)] == 150
    shutil.rmtree(new)
    assert sizes.count(folders)[str(new)] == 0
