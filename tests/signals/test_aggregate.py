"""Batch aggregation: windows, counts, errors, exemplars, journeys and metrics, merged in any order."""

from __future__ import annotations

import random
from functools import reduce

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.otlp_encode import PointSpec, SpanSpec, metrics_request, trace_request
from chaos import SITE_CONFIG
from operators.otlp import decode_metrics_proto, decode_trace_proto
from operators.otlp.spans import SpanBatch
from operators.signals import (
    CujPartial,
    SignalSpec,
    finalize,
    merge_partials,
    metric_partials,
    span_partials,
)
from sre_space.settings import load_pipeline_config

# The checkout journey is the shop's: its site file declares it.
SPEC = SignalSpec.from_config(load_pipeline_config(SITE_CONFIG))
W = SPEC.window_ns
T0 = 1_767_571_200 * 10**9  # 2026-01-05T00:00:00Z


def _span(
    i: int, svc_op: str, end_ns: int, dur_ns: int, error: bool = False, **attrs: object
) -> SpanSpec:
    return SpanSpec(
        i.to_bytes(16, "big"),
        i.to_bytes(8, "big"),
        svc_op,
        end_ns - dur_ns,
        end_ns,
        kind=2,
        status_code=2 if error else 0,
        attributes=attrs,
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=50))
def test_window_assignment_is_by_end_time(offsets: list[int]) -> None:
    spans = [_span(i, "op", T0 + off, 1000) for i, off in enumerate(offsets)]
    batch = decode_trace_proto(trace_request([({"service.name": "s"}, spans)]).SerializeToString())
    parts = span_partials(batch, SPEC)
    got = {p.window: p.count for p in parts}
    want: dict[int, int] = {}
    for off in offsets:
        w = (T0 + off) // W
        want[w] = want.get(w, 0) + 1
    assert got == want
    for p in parts:
        sig = finalize(p, W)
        assert sig.window_start < sig.window_end


def test_counts_errors_quantiles_and_exemplars() -> None:
    rng = np.random.default_rng(3)
    durs = (rng.lognormal(3, 1, size=400) * 1e6).astype(np.int64)
    spans = [
        _span(i + 1, "GET /cart", T0 + 1_000 + i, int(d), error=(i % 10 == 0))
        for i, d in enumerate(durs)
    ]
    batch = decode_trace_proto(
        trace_request(
            [({"service.name": "cart", "service.version": "2"}, spans)]
        ).SerializeToString()
    )
    [part] = [p for p in span_partials(batch, SPEC) if p.key == "span|cart|GET /cart"]
    sig = finalize(part, W)
    assert (sig.count, sig.errors) == (400, 40)
    assert sig.versions == {"2": 400}
    ms = durs / 1e6
    for q, got in ((50, sig.p50_ms), (95, sig.p95_ms), (99, sig.p99_ms)):
        assert abs(got - np.percentile(ms, q)) <= 0.01 * np.percentile(ms, q) + 0.001
    slowest = int(np.argmax(durs)) + 1
    assert sig.slowest_trace_ids[0] == slowest.to_bytes(16, "big").hex()
    failing_durs = {(i + 1): d for i, d in enumerate(durs) if i % 10 == 0}
    top_fail = max(failing_durs, key=failing_durs.__getitem__)
    assert sig.failing_trace_ids[0] == top_fail.to_bytes(16, "big").hex()
    assert len(sig.slowest_trace_ids) == SPEC.exemplars


def test_partials_merge_to_the_same_window_whatever_the_batching() -> None:
    rng = random.Random(5)
    spans = [
        _span(
            i + 1,
            f"op{i % 3}",
            T0 + rng.randrange(3 * W),
            rng.randrange(1, 10**9),
            error=rng.random() < 0.2,
        )
        for i in range(600)
    ]
    whole = span_partials(
        decode_trace_proto(trace_request([({"service.name": "s"}, spans)]).SerializeToString()),
        SPEC,
    )
    chunks = [spans[i : i + 37] for i in range(0, len(spans), 37)]
    pieces = [
        p
        for c in chunks
        for p in span_partials(
            decode_trace_proto(trace_request([({"service.name": "s"}, c)]).SerializeToString()),
            SPEC,
        )
    ]
    rng.shuffle(pieces)

    def by_key(parts: list) -> dict:
        groups: dict = {}
        for p in parts:
            groups.setdefault((p.key, p.window), []).append(p)
        return {k: finalize(reduce(merge_partials, v, None), W) for k, v in groups.items()}

    assert by_key(pieces) == by_key(whole)


def test_checkout_journey_conversion() -> None:
    spans = []
    i = 0
    for n, (svc_op, attrs) in enumerate(
        [("POST /cart/items", {})] * 10 + [("POST /checkout", {})] * 8
    ):
        i += 1
        spans.append((("cart" if n < 10 else "checkout"), _span(i, svc_op, T0 + i, 10, **attrs)))
    for outcome in ["approved"] * 6 + ["declined"] * 2:
        i += 1
        spans.append(
            ("payment", _span(i, "POST /payments", T0 + i, 10, **{"app.payment.outcome": outcome}))
        )
    resources = {}
    for svc, sp in spans:
        resources.setdefault(svc, []).append(sp)
    req = trace_request([({"service.name": svc}, sps) for svc, sps in resources.items()])
    [cuj] = [
        p
        for p in span_partials(decode_trace_proto(req.SerializeToString()), SPEC)
        if p.key == "cuj|checkout"
    ]
    sig = finalize(cuj, W)
    assert sig.steps == [10, 8, 6]
    assert (sig.started, sig.completed, sig.conversion) == (10, 6, 0.6)


def test_memory_saturation_is_the_worst_instance_against_its_own_limit() -> None:
    mib = 1024 * 1024
    req = metrics_request(
        [
            (
                {"service.name": "cart", "k8s.pod.name": "cart-0"},
                [
                    PointSpec("container.memory.usage", 100 * mib, T0 + 1, unit="By"),
                    PointSpec("container.memory.usage", 200 * mib, T0 + 2, unit="By"),
                    PointSpec("k8s.container.memory_limit", 256 * mib, T0 + 2, unit="By"),
                    PointSpec("k8s.container.restarts", 1, T0 + 2, is_sum=True, monotonic=True),
                ],
            ),
            (
                {"service.name": "cart", "k8s.pod.name": "cart-1"},
                [
                    PointSpec("container.memory.usage", 220 * mib, T0 + 2, unit="By"),
                    PointSpec("k8s.container.memory_limit", 512 * mib, T0 + 2, unit="By"),
                    PointSpec("k8s.container.restarts", 2, T0 + 2, is_sum=True, monotonic=True),
                ],
            ),
        ]
    )
    sigs = {
        finalize(p, W).key[2]: finalize(p, W)
        for p in metric_partials(decode_metrics_proto(req.SerializeToString()), SPEC)
    }
    mem = sigs["memory"]
    assert mem.utilization == round(200 / 256, 6)  # cart-0: 200/256 beats cart-1: 220/512
    assert mem.value == 220 * mib and mem.limit == 512 * mib and mem.count == 3
    # each pod's own utilization too, its last point in the window against its own limit
    assert mem.instances == {"cart-0": round(200 / 256, 6), "cart-1": round(220 / 512, 6)}
    # Any other gauge or sum: a series per instance, a cumulative sum's newest point as it is.
    restarts = sigs["k8s.container.restarts{k8s.pod.name=cart-1}"]
    assert restarts.instances is None and restarts.value == 2.0  # not a saturation signal
    assert restarts.temporality == "cumulative" and restarts.attributes == {
        "k8s.pod.name": "cart-1"
    }
    assert sigs["k8s.container.restarts{k8s.pod.name=cart-0}"].value == 1.0


def _flagged(i: int, end_ns: int, variant: str, kind: int = 2) -> SpanSpec:
    event = (
        "feature_flag",
        end_ns - 500,
        {"feature_flag.key": "new_rules", "feature_flag.variant": variant},
    )
    return SpanSpec(
        i.to_bytes(16, "big"),
        i.to_bytes(8, "big"),
        "POST /pay",
        end_ns - 1000,
        end_ns,
        kind=kind,
        events=[event],
    )


def test_flags_are_the_newest_server_span_s_whatever_the_batching() -> None:
    # Off, then on within one window; the newest evaluation is what the window reports.
    spans = [_flagged(i + 1, T0 + 1_000 + i * 1000, "off" if i < 30 else "on") for i in range(40)]
    client = [_flagged(99, T0 + 900_000, "off", kind=3)]  # a client span's events do not count
    whole = span_partials(_batch(spans + client), SPEC)
    halves = span_partials(_batch(spans[20:]), SPEC) + span_partials(_batch(spans[:20]), SPEC)
    for parts in (whole, halves):
        mine = [p for p in parts if p.key == "span|pay|POST /pay"]
        sig = finalize(reduce(merge_partials, mine, None), W)  # type: ignore[arg-type]
        assert sig.flags == {"new_rules": "on"}
    plain = span_partials(_batch([_span(1, "GET /", T0 + 5, 1)]), SPEC)
    assert finalize(plain[0], W).flags is None


def _batch(spans: list[SpanSpec]) -> SpanBatch:
    return decode_trace_proto(trace_request([({"service.name": "pay"}, spans)]).SerializeToString())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 6), st.booleans()),
        min_size=40,
        max_size=300,
    )
)
def test_exemplars_are_each_group_s_longest_ties_broken_by_trace_id(
    spans: list[tuple[str, int, bool]],
) -> None:
    # Few distinct durations, so ties at the k-th place are the rule; groups are large enough
    # that only some spans are sorted.
    specs = [
        _span(i + 1, op, T0 + 10_000, dur * 1000, error=err)
        for i, (op, dur, err) in enumerate(spans)
    ]
    for part in span_partials(_batch(specs), SPEC):
        mine = [
            (d * 1000, (i + 1).to_bytes(16, "big").hex(), e)
            for i, (o, d, e) in enumerate(spans)
            if o == part.operation
        ]
        want = sorted(((d, t) for d, t, _ in mine), reverse=True)[: SPEC.exemplars]
        want_failing = sorted(((d, t) for d, t, e in mine if e), reverse=True)[: SPEC.exemplars]
        assert part.slowest == want
        assert part.failing == want_failing


def test_a_sliced_journey_counts_each_value_apart_and_the_whole_once() -> None:
    # The shop's checkout is sliced by loyalty level: gold payments declined, silver approved,
    # one payment without the attribute (in the whole journey, in no slice).
    spans = [
        ("checkout", _span(i, "POST /checkout", T0 + i, 10, **{"app.loyalty_level": lvl}))
        for i, lvl in enumerate(["gold"] * 4 + ["silver"] * 6, start=1)
    ]
    payments = [("gold", "declined")] * 3 + [("gold", "approved")] + [("silver", "approved")] * 6
    for i, (lvl, outcome) in enumerate(payments, start=100):
        attrs = {"app.payment.outcome": outcome, "app.loyalty_level": lvl}
        spans.append(("payment", _span(i, "POST /payments", T0 + i, 10, **attrs)))
    spans.append(
        (
            "payment",
            _span(200, "POST /payments", T0 + 200, 10, **{"app.payment.outcome": "approved"}),
        )
    )
    resources: dict[str, list[SpanSpec]] = {}
    for svc, sp in spans:
        resources.setdefault(svc, []).append(sp)
    req = trace_request([({"service.name": svc}, sps) for svc, sps in resources.items()])
    batch = decode_trace_proto(req.SerializeToString())
    sigs = {p.key: finalize(p, W) for p in span_partials(batch, SPEC) if p.key.startswith("cuj|")}
    assert sorted(sigs) == [
        "cuj|checkout",
        "cuj|checkout{app.loyalty_level=gold}",
        "cuj|checkout{app.loyalty_level=silver}",
    ]
    assert sigs["cuj|checkout"].steps == [0, 10, 8] and sigs["cuj|checkout"].attributes is None
    gold = sigs["cuj|checkout{app.loyalty_level=gold}"]
    assert gold.steps == [0, 4, 1] and gold.attributes == {"app.loyalty_level": "gold"}
    assert gold.key == ("cuj", "", "checkout{app.loyalty_level=gold}")
    assert sigs["cuj|checkout{app.loyalty_level=silver}"].steps == [0, 6, 6]
    # Split over two batches, the slices merge to the same windows.
    half = len(spans) // 2
    parts: list[CujPartial] = []
    for chunk in (spans[:half], spans[half:]):
        res: dict[str, list[SpanSpec]] = {}
        for svc, sp in chunk:
            res.setdefault(svc, []).append(sp)
        r = trace_request([({"service.name": svc}, sps) for svc, sps in res.items()])
        parts += [
            p
            for p in span_partials(decode_trace_proto(r.SerializeToString()), SPEC)
            if isinstance(p, CujPartial)
        ]
    merged: dict[str, list[int]] = {}
    for p in parts:
        merged[p.key] = [a + b for a, b in zip(merged.get(p.key, [0, 0, 0]), p.steps, strict=True)]
    assert merged == {k: s.steps for k, s in sigs.items()}
