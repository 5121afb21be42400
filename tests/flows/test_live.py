"""The paced source: emissions come out in order, when due at the requested speed (fake clock),
and flat out they run through the real flow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main

from bench.workload import generate
from flows.build import build_signals
from flows.live import Emission, PacedSource, _Paced
from sre_space.settings import load_pipeline_config

S = 1_000_000_000


def test_emissions_are_released_when_due() -> None:
    now = [100.0]
    emissions: list[Emission] = [(0, "traces", b"a"), (S, "traces", b"b"), (3 * S, "metrics", b"c")]
    part = _Paced(iter(emissions), speed=2.0, source="t", max_batch=10, clock=lambda: now[0])
    assert [m.value for m in part.next_batch()] == [b"a"]  # b is due 0.5 s later at speed 2
    assert part.next_awake() is not None
    now[0] += 0.5
    assert [m.value for m in part.next_batch()] == [b"b"]
    now[0] += 1.0
    assert [(m.value, m.signal, m.offset) for m in part.next_batch()] == [(b"c", "metrics", 2)]
    with pytest.raises(StopIteration):
        part.next_batch()


def test_flat_out_through_the_flow() -> None:
    requests, truth = generate(2_000, seed=1, spans_per_request=100, rate_per_s=500.0)

    def emissions() -> Iterator[Emission]:
        for i, req in enumerate(requests):
            yield int(truth.end_ns[min(i * 100 + 99, len(truth.end_ns) - 1)]), "traces", req

    flow = Dataflow("live_test")
    raw = op.input("live", flow, PacedSource(emissions, speed=0))
    streams = build_signals(flow, raw, load_pipeline_config(), deterministic_clock=True)
    out: list = []
    op.output("out", streams.signals, TestingSink(out))
    run_main(flow)
    assert sum(s.count for s in out if s.kind == "span") == 2_000
