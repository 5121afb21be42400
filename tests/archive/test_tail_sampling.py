"""Tail sampling keeps whole traces: a trace's spans spread over export requests are kept together."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.otlp_encode import SpanSpec, trace_request
from operators.otlp import decode_trace_proto
from operators.otlp.messages import Decoded
from operators.sampling import TailPolicy, TraceSampler
from sinks.archive import SpanArchive
from sinks.archive.reader import scan_files

T0_NS = 1_767_571_200 * 10**9


def recording(traces: int, seed: int) -> tuple[list[bytes], dict[str, int], set[str]]:
    """Export requests of 40 spans, event-time ordered, so each trace spans several requests;
    a failing span, when a trace has one, ends last and so arrives after the others. Returns the
    requests, the span count of each trace and the traces with an error."""
    rng = np.random.default_rng(seed)
    ids = rng.bytes(16 * traces + 8 * traces * 8)
    spans: list[SpanSpec] = []
    sizes: dict[str, int] = {}
    failing: set[str] = set()
    for t in range(traces):
        trace_id = ids[16 * t : 16 * t + 16]
        start = T0_NS + t * 50_000_000  # a trace every 50 ms; each lasts up to 2 s
        n = int(rng.integers(3, 8))
        error_at = n - 1 if rng.random() < 0.1 else -1
        sizes[trace_id.hex()] = n
        if error_at >= 0:
            failing.add(trace_id.hex())
        for k in range(n):
            at = 16 * traces + 8 * (8 * t + k)
            end = start + (k + 1) * 250_000_000
            spans.append(
                SpanSpec(
                    trace_id=trace_id,
                    span_id=ids[at : at + 8],
                    name=f"op{k}",
                    start_ns=end - int(rng.integers(1, 40)) * 1_000_000,
                    end_ns=end,
                    status_code=2 if k == error_at else 0,
                )
            )
    spans.sort(key=lambda s: s.end_ns)
    requests = [
        trace_request([({"service.name": "svc"}, spans[i : i + 40])]).SerializeToString()
        for i in range(0, len(spans), 40)
    ]
    return requests, sizes, failing


def test_every_kept_trace_is_whole_and_every_failing_trace_is_kept(tmp_path: Path) -> None:
    requests, sizes, failing = recording(600, seed=3)
    archive = SpanArchive(tmp_path, sample_rate=0.1, flush_rows=500)
    for i, data in enumerate(requests):
        archive.add(Decoded(source="rec", partition=0, offset=i, spans=decode_trace_proto(data)))
    archive.flush()
    kept = scan_files(list(tmp_path.glob("dt=*/hour=*/*.parquet"))).collect()
    per_trace = dict(kept.group_by("trace_id").len().iter_rows())
    # the failing spans end their traces, in a later request than the trace's first spans
    assert failing and failing <= per_trace.keys()
    assert all(per_trace[t] == sizes[t] for t in per_trace)
    assert 0 < len(per_trace) < len(sizes)  # a sample, not everything


def test_a_batch_is_held_until_the_wait_has_passed_in_event_time() -> None:
    sampler: TraceSampler[str] = TraceSampler(TailPolicy(rate=0.0001, wait_ns=10))
    keys = np.array([2**63 + 1, 2**63 + 2], dtype=np.uint64)  # far above the sampled share
    quiet = np.zeros(2, dtype=bool)
    assert sampler.offer("a", keys, quiet, np.array([100, 100])) == []
    # trace 2 fails later, within the wait: batch "a" keeps its span of trace 2
    assert sampler.offer("b", keys[1:], np.ones(1, dtype=bool), np.array([105])) == []
    [(item, keep)] = sampler.offer(
        "c", np.array([2**63 + 3], dtype=np.uint64), quiet[:1], np.array([111])
    )
    assert item == "a" and keep.tolist() == [False, True]
    assert [(i, k.tolist()) for i, k in sampler.drain()] == [("b", [True]), ("c", [False])]


def test_the_pending_spans_are_bounded() -> None:
    sampler: TraceSampler[int] = TraceSampler(
        TailPolicy(rate=0.5, wait_ns=10**12, max_pending_spans=10)
    )
    released = []
    for i in range(5):
        keys = np.arange(4 * i, 4 * i + 4, dtype=np.uint64) + np.uint64(2**63)
        released += sampler.offer(i, keys, np.zeros(4, dtype=bool), np.full(4, i))
    assert [i for i, _ in released] == [0, 1, 2]  # at most 10 spans wait
