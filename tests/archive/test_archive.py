"""The span archive: what the flow writes is what the Brain reads back, sampled but never losing errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from bench.workload import generate, iter_json_lines
from flows.replay import replay
from operators.otlp import decode_trace_proto
from operators.otlp.messages import Decoded
from operators.sampling import keep_mask
from sinks.archive import SpanArchive
from sinks.archive.reader import scan_spans
from sinks.archive.writer import enforce_retention
from sre_space.settings import load_pipeline_config


def test_replay_archives_every_span_partitioned_by_hour(tmp_path: Path) -> None:
    # 2 000 spans at 0.5/s span a little over an hour of event time: two hour partitions.
    requests, truth = generate(2_000, seed=4, spans_per_request=100, rate_per_s=0.5)
    path = tmp_path / "rec.jsonl"
    path.write_text("".join(line + "\n" for line in iter_json_lines(requests)))
    archive = tmp_path / "spans"
    replay([path], tmp_path / "out", load_pipeline_config(), archive=archive)
    hours = sorted(p.relative_to(archive).as_posix() for p in archive.glob("dt=*/hour=*"))
    assert len(hours) >= 2
    frame = scan_spans(archive, int(truth.end_ns.min()), int(truth.end_ns.max()) + 1).collect()
    assert frame.height == 2_000
    assert sorted(frame["duration_ns"].to_list()) == sorted(truth.duration_ns.tolist())
    assert frame["is_error"].sum() == int(truth.error.sum())
    assert set(frame.columns) >= {
        "trace_id",
        "span_id",
        "service",
        "operation",
        "http.route",
        "events",
    }
    # A query window prunes to its hour partitions and filters exactly.
    lo, hi = int(truth.end_ns[100]), int(truth.end_ns[200])
    window = scan_spans(archive, lo, hi).collect()
    assert window.height == int(((truth.end_ns >= lo) & (truth.end_ns < hi)).sum())
    removed = enforce_retention(
        archive, max_age_hours=0, max_bytes=10**12, now_ns=int(truth.end_ns.max())
    )
    assert removed and scan_spans(archive, lo, hi).collect().height == 0


def test_sampling_keeps_errors_slow_spans_and_whole_traces() -> None:
    requests, _ = generate(4_000, seed=6, spans_per_request=4_000, error_rate=0.05)
    batch = decode_trace_proto(requests[0])
    mask = keep_mask(batch, rate=0.1)
    assert mask[batch.is_error].all()
    dur = batch.duration_ns
    assert mask[dur >= np.quantile(dur, 0.95)].all()
    share = mask.mean()
    assert 0.1 < share < 0.3  # ~10% sampled plus errors and tail
    # Decided by trace id: the same trace id gives the same answer in any batch.
    again = keep_mask(batch, rate=0.1)
    assert (again == mask).all()
    frame = pl.DataFrame({"trace": [t.hex() for t in batch.trace_id], "keep": mask})
    assert frame.height == len(batch)


def test_frame_of_kept_rows_equals_the_filtered_full_frame() -> None:
    requests, _ = generate(600, seed=8, spans_per_request=600, error_rate=0.1)
    batch = decode_trace_proto(requests[0])
    mask = keep_mask(batch, rate=0.2)
    selected = ("http.route", "http.request.method", "k8s.pod.name")
    full = batch.to_polars(selected).filter(pl.Series(mask))
    kept = batch.to_polars(selected, np.flatnonzero(mask).tolist())
    assert kept.equals(full)
    assert 0 < kept.height < len(batch)


def test_a_poll_added_at_once_writes_what_its_requests_added_one_by_one_write(
    tmp_path: Path,
) -> None:
    # Requests of mixed sizes (small ones are converted together) through the sampler and not.
    sizes = [300, 50, 9_000, 700, 20, 4_000, 5_000, 100]
    requests = [
        decode_trace_proto(generate(n, seed=i, spans_per_request=n, error_rate=0.05)[0][0])
        for i, n in enumerate(sizes)
    ]
    polls = [Decoded(source="rec", partition=0, offset=i, spans=b) for i, b in enumerate(requests)]
    selected = ("http.route", "http.request.method", "no.such.attribute")
    for rate in (1.0, 0.3):
        written = []
        for name, add in (
            ("one", lambda a: [a.add(p) for p in polls]),
            ("all", lambda a: a.add(polls)),
        ):
            archive = SpanArchive(
                tmp_path / f"{name}-{rate}", selected, sample_rate=rate, flush_rows=3_000
            )
            add(archive)
            files = archive.flush()
            written.append([pq.read_table(f).to_pylist() for f in files])
        assert written[0] == written[1]
        assert sum(map(len, written[0])) > 0
