"""A poll's requests aggregated together give the windows one request at a time gives, also when
they were decoded together, and a poll whose joining could change what is late is aggregated one
request at a time."""

from __future__ import annotations

from functools import reduce
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.otlp_encode import SpanSpec, trace_request
from bench.workload import shop_requests
from chaos import SITE_CONFIG
from flows.build import partials_of
from operators.otlp import DecodeLimits, RawMessage, decode_message
from operators.otlp.messages import Decoded, decode_poll
from operators.signals import Partial, SignalSpec, finalize, merge_partials, span_partials
from operators.signals.batches import _joined_triples, _triples_each, joinable, span_view
from sre_space.records import DeadLetter
from sre_space.settings import load_pipeline_config

SPEC = SignalSpec.from_config(load_pipeline_config(SITE_CONFIG))
W = SPEC.window_ns
LATENESS = 5 * 10**9
T0 = 1_767_571_200 * 10**9  # 2026-01-05T00:00:00Z


def _poll(requests: list[bytes], together: bool = False) -> list[Decoded | DeadLetter]:
    """The requests decoded one by one, or `together` as the flow decodes a poll (`decode_poll`:
    one compiled walk, each request its rows of the walk's batch)."""
    raw = [RawMessage("t", 0, i, data, "traces") for i, data in enumerate(requests)]
    if together:
        return decode_poll(raw, DecodeLimits())
    return [decode_message(m, DecodeLimits()) for m in raw]


def _windows(parts: list[Partial]) -> dict[tuple[str, int], dict[str, Any]]:
    by_key: dict[tuple[str, int], list[Partial]] = {}
    for p in parts:
        by_key.setdefault((p.key, p.window), []).append(p)
    return {k: finalize(reduce(merge_partials, v), W).to_dict() for k, v in by_key.items()}


def test_a_poll_of_the_shop_s_requests_gives_the_windows_of_its_requests_one_by_one() -> None:
    # The shop's spans: several services per request, versions, errors, the checkout journey
    # (with an attribute step) and feature-flag events, in requests of 64 spans.
    requests = shop_requests(3000, seed=2, spans_per_request=64)
    poll = _poll(requests)
    batches = [d.spans for d in poll if isinstance(d, Decoded) and d.spans is not None]
    assert len(batches) > 10 and joinable(batches, LATENESS)
    joined = partials_of(poll, SPEC, LATENESS)
    one_by_one = [p for b in batches for p in span_partials(b, SPEC)]
    assert len(joined) < len(one_by_one)  # joined: one partial per key and window of the poll
    assert {k[0].split("|")[0] for k in _windows(joined)} == {"span", "cuj"}
    expected = _windows(one_by_one)  # once: merging adds to the first partial of a window
    assert _windows(joined) == expected
    together = _poll(requests, together=True)
    assert all(isinstance(d, Decoded) and d.part is not None for d in together)
    assert _windows(partials_of(together, SPEC, LATENESS)) == expected


def _request(svc: str, ends: list[int]) -> bytes:
    spans = [
        SpanSpec(i.to_bytes(16, "big"), i.to_bytes(8, "big"), "GET /", end - 1000, end, kind=2)
        for i, end in enumerate(ends, 1)
    ]
    return trace_request([({"service.name": svc}, spans)]).SerializeToString()


def test_a_request_behind_an_earlier_one_by_more_than_the_lateness_is_not_joined() -> None:
    newer = _request("a", [T0 + 30 * 10**9])
    older = _request("a", [T0 + 1 * 10**9])  # 29 s older: late behind `newer` one at a time
    within = _request("a", [T0 + 27 * 10**9])  # 3 s older: on time either way
    late_poll, ok_poll = _poll([newer, older]), _poll([newer, within])
    batches = [d.spans for d in late_poll if isinstance(d, Decoded) and d.spans is not None]
    assert not joinable(batches, LATENESS)
    # One partial per request, in request order: the window step sees the old one after the new
    # one, as it would one request at a time, and counts it late.
    parts = partials_of(late_poll, SPEC, LATENESS)
    assert [(p.window, p.max_ts_ns) for p in parts] == [
        ((T0 + 30 * 10**9) // W, T0 + 30 * 10**9),
        ((T0 + 1 * 10**9) // W, T0 + 1 * 10**9),
    ]
    ok_batches = [d.spans for d in ok_poll if isinstance(d, Decoded) and d.spans is not None]
    assert joinable(ok_batches, LATENESS)
    assert [finalize(p, W).count for p in partials_of(ok_poll, SPEC, LATENESS)] == [1, 1]
    assert joinable(list(reversed(batches)), LATENESS)  # oldest first is in order
    # decoded together, the same: each request's end times come from the walk's batch
    together = _poll([newer, older], together=True)
    assert all(isinstance(d, Decoded) and d.part is not None for d in together)
    assert [(p.window, p.max_ts_ns) for p in partials_of(together, SPEC, LATENESS)] == [
        (p.window, p.max_ts_ns) for p in parts
    ]


def test_a_poll_s_triples_are_numbered_as_request_by_request() -> None:
    # Requests whose names come in different orders, repeat across requests, and several
    # versions of one service: the joined numbering is the one `triples` request by request gives.
    def request(resources: list[tuple[str, str, list[str]]]) -> bytes:
        spans = [
            (
                {"service.name": svc, "service.version": ver},
                [
                    SpanSpec(bytes([k + 1]) * 16, bytes([k + 1]) * 8, op, T0, T0 + 1000)
                    for k, op in enumerate(ops)
                ],
            )
            for svc, ver, ops in resources
        ]
        return trace_request(spans).SerializeToString()

    poll = _poll(
        [
            request([("b", "2", ["y", "x", "y"]), ("a", "1", ["x"])]),
            request([("a", "1", ["z", "x"]), ("b", "1", ["y"])]),
            request([("c", "1", ["x"]), ("b", "2", ["x", "y"])]),
        ]
    )
    batches = [d.spans for d in poll if isinstance(d, Decoded) and d.spans is not None]
    joined = _joined_triples(batches)
    assert joined is not None
    codes, keys = _triples_each(batches)
    assert joined[1] == keys and joined[0].tolist() == codes.tolist()
    assert len(keys) == 6  # (b, y, 2), (b, x, 2) and (a, x, 1) are in two requests
    view = span_view(batches)
    assert [view.keys[c] for c in view.codes.tolist()] == [
        (s, o, v)
        for b in batches
        for s, o, v in zip(b.service, b.operation, b.service_version, strict=True)
    ]


_names = st.sampled_from(["a", "b", "c", "d"])
_resource = st.tuples(
    _names, st.sampled_from(["1", "2", ""]), st.lists(_names, min_size=1, max_size=6)
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_resource, min_size=1, max_size=3), min_size=1, max_size=6))
def test_any_poll_s_triples_are_numbered_as_request_by_request(
    polls: list[list[tuple[str, str, list[str]]]],
) -> None:
    requests = []
    for resources in polls:
        groups = [
            (
                {"service.name": svc, **({"service.version": ver} if ver else {})},
                [
                    SpanSpec(bytes([k + 1]) * 16, bytes([k + 1]) * 8, op, T0, T0 + 1000)
                    for k, op in enumerate(ops)
                ],
            )
            for svc, ver, ops in resources
        ]
        requests.append(trace_request(groups).SerializeToString())
    batches = [d.spans for d in _poll(requests) if isinstance(d, Decoded) and d.spans is not None]
    joined = _joined_triples(batches)
    assert joined is not None
    codes, keys = _triples_each(batches)
    assert joined[1] == keys and joined[0].tolist() == codes.tolist()
