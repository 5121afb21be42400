"""Up to when the archive holds every worker's spans: the least of the writers' newest, since each
worker flushes its own buffer (one worker ahead of another must not pass for the whole archive)."""

from __future__ import annotations

import time
from pathlib import Path

from bench.otlp_encode import SpanSpec, trace_request
from operators.otlp import decode_trace_proto
from operators.otlp.messages import Decoded
from sinks.archive import SpanArchive
from sinks.archive.reader import covered_until, writer_of

T0 = 1_767_571_200 * 10**9
S = 10**9


def _request(ends_s: list[int]) -> Decoded:
    spans = [
        SpanSpec(bytes([k + 1]) * 16, bytes([k + 1]) * 8, "op", T0 + (e - 1) * S, T0 + e * S)
        for k, e in enumerate(ends_s)
    ]
    data = trace_request([({"service.name": "svc"}, spans)]).SerializeToString()
    return Decoded(source="t", partition=0, offset=0, spans=decode_trace_proto(data))


def test_the_archive_is_covered_up_to_the_slowest_writer_s_newest_span(tmp_path: Path) -> None:
    ahead, behind = SpanArchive(tmp_path, writer_id="0"), SpanArchive(tmp_path, writer_id="1")
    ahead.add(_request([10, 20, 90]))
    ahead.flush()
    behind.add(_request([15, 40]))
    behind.flush()
    # Worker 1 has spans up to 100 s in memory, not yet flushed: its 40 s is the bound.
    behind.add(_request([70, 100]))
    assert covered_until(tmp_path, T0, T0 + 600 * S) == T0 + 40 * S
    behind.flush()
    assert covered_until(tmp_path, T0, T0 + 600 * S) == T0 + 90 * S
    # A writer with no spans in the range does not hold it back: the range's own newest.
    assert covered_until(tmp_path, T0 + 95 * S, T0 + 600 * S) == T0 + 100 * S
    # At most the range's end; no spans from its start on: None.
    assert covered_until(tmp_path, T0, T0 + 50 * S) == T0 + 50 * S - 1
    assert covered_until(tmp_path, T0 + 200 * S, T0 + 600 * S) is None
    assert covered_until(tmp_path / "none", T0, T0 + 600 * S) is None


def test_a_restarted_writer_is_one_writer_and_other_names_are_their_own() -> None:
    # A restart keeps the worker id and takes a new run id: its files are one writer's.
    assert writer_of("part-0-1a2b3c4d-000001.parquet") == "0"
    assert writer_of("part-0-9f8e7d6c-000001.parquet") == "0"
    assert writer_of("part-shard-a-1a2b3c4d-000002.parquet") == "shard-a"
    assert writer_of("part-old.parquet") == "part-old.parquet"
    assert writer_of("spans.parquet") == "spans.parquet"


def test_a_quiet_archive_writes_its_spans_once_they_span_flush_seconds(tmp_path: Path) -> None:
    # A few spans a second: flush_rows would take hours to fill. Event time decides instead.
    archive = SpanArchive(tmp_path, flush_rows=50_000, flush_seconds=15.0)
    archive.add(_request([10, 12]))
    archive.add(_request([20]))
    assert covered_until(tmp_path, T0, T0 + 600 * S) is None  # 10 s apart: still buffered
    archive.add(_request([26]))  # 16 s after the oldest buffered span
    deadline = time.monotonic() + 30
    while covered_until(tmp_path, T0, T0 + 600 * S) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert covered_until(tmp_path, T0, T0 + 600 * S) == T0 + 26 * S
    archive.add(_request([30]))
    archive.flush()
    assert covered_until(tmp_path, T0, T0 + 600 * S) == T0 + 30 * S
