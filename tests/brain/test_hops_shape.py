"""Hop time and cut-short requests on hand-built traces: a slow pod is the common participant of
the inflated hops; a service that stops calling on is where requests were cut, without status."""

from __future__ import annotations

import polars as pl

from sinks.brain.config import DiagnosisConfig
from sinks.brain.hops import hop_shift
from sinks.brain.population import enrich
from sinks.brain.shape import shape_shift
from tests.brain.builders import S, frame


def _trace(slow_hop_ms: float, cut: bool = False) -> list[S]:
    """entry -> (a, b): `a` answers `slow_hop_ms` late on the wire; `cut`: b returns at once."""
    spans = [
        S("r", "", "entry", "GET /", 0, 40 + slow_hop_ms),
        S("ca", "r", "entry", "call a", 1, 9 + slow_hop_ms, kind=3),
        S("sa", "ca", "a", "serve a", 2, 8),
        S("cb", "r", "entry", "call b", 10 + slow_hop_ms, 30 + slow_hop_ms, kind=3),
        S("sb", "cb", "b", "serve b", 11 + slow_hop_ms, 29 + slow_hop_ms),
    ]
    if not cut:
        spans += [
            S("cc", "sb", "b", "call c", 12 + slow_hop_ms, 20 + slow_hop_ms, kind=3),
            S("sc", "cc", "c", "serve c", 13 + slow_hop_ms, 19 + slow_hop_ms),
        ]
    return spans


def _frames(slow_ms: float, cut: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    base = pl.concat([frame(_trace(0.0), f"b{i}", i * 100.0) for i in range(30)])
    inc = pl.concat([frame(_trace(slow_ms, cut), f"i{i}", 10_000 + i * 100.0) for i in range(30)])
    cfg = DiagnosisConfig()
    return enrich(inc, cfg), enrich(base, cfg)


def test_the_pod_behind_the_inflated_hops_ranks_first() -> None:
    inc, base = _frames(200.0, cut=False)
    report = hop_shift(inc, base, 30)
    assert report.participants.get_column("service")[0] == "a"
    assert report.reference == "each hop's baseline"
    # Without a baseline, the window's other hops are the reference.
    alone = hop_shift(inc, base.clear(), 30)
    assert alone.participants.get_column("service")[0] == "a"
    assert alone.reference == "the window's median hop time"
    healthy = hop_shift(*_frames(0.0, cut=False)[::-1], 30)
    assert healthy.participants.height == 0


def test_requests_cut_short_point_at_the_service_that_stopped_calling() -> None:
    inc, base = _frames(0.0, cut=True)
    report = shape_shift(inc, base, 30, 30)
    assert report.loci.get_column("service")[0] == "b"
    assert shape_shift(base, base, 30, 30).loci.height == 0


def _queued(consumed: bool, worker_cut: bool = False) -> list[S]:
    """entry publishes a message (PRODUCER); `consumed`: the worker's CONSUMER span (same trace,
    child of the producer) has arrived; the worker then calls a store unless `worker_cut`."""
    spans = [
        S("r", "", "entry", "POST /order", 0, 20),
        S("p", "r", "entry", "orders publish", 5, 7, kind=4),
    ]
    if consumed:
        spans.append(S("w", "p", "worker", "orders process", 50, 90, kind=5))
        if not worker_cut:
            spans += [
                S("cs", "w", "worker", "store put", 55, 80, kind=3),
                S("ss", "cs", "store", "put", 56, 79),
            ]
    return spans


def test_a_lagging_consumer_is_not_a_request_cut_short_at_the_producer() -> None:
    cfg = DiagnosisConfig()
    base = enrich(pl.concat([frame(_queued(True), f"b{i}", i * 100.0) for i in range(30)]), cfg)
    # The queue lags: most messages are not consumed within the window.
    lagging = enrich(
        pl.concat([frame(_queued(i % 5 == 0), f"i{i}", 10_000 + i * 100.0) for i in range(30)]),
        cfg,
    )
    assert shape_shift(lagging, base, 30, 30).loci.height == 0
    # The consumer's own work is still judged: a worker that stops calling the store is a cut.
    cut = enrich(
        pl.concat([frame(_queued(True, True), f"c{i}", 10_000 + i * 100.0) for i in range(30)]),
        cfg,
    )
    assert shape_shift(cut, base, 30, 30).loci.get_column("service")[0] == "worker"
