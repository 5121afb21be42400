"""Any poll of export requests, archived and read back, is the span frame its requests decode to:
the joins across requests (names, text, ids, numbers) and the one-value columns lose nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.otlp_encode import SpanSpec, trace_request
from operators.otlp import DecodeLimits, RawMessage, decode_message
from operators.otlp.messages import Decoded
from sinks.archive import SpanArchive
from sinks.archive.reader import scan_spans

T0 = 1_767_571_200 * 10**9
SELECTED = ("http.route", "k8s.pod.name")
LIMITS = DecodeLimits(text_keys=SELECTED)

_text = st.sampled_from(["", "a", "b", "é", "GET /x"])
_span = st.builds(
    lambda k, name, dur, kind, status, route, parent: SpanSpec(
        bytes([k % 7 + 1]) * 16,
        k.to_bytes(8, "big"),
        name,
        T0 + k,
        T0 + k + dur,
        parent_span_id=bytes([parent]) * 8 if parent else b"",
        kind=kind,
        status_code=status,
        attributes={"http.route": route} if route else {},
    ),
    st.integers(min_value=1, max_value=2**40),
    _text,
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=2),
    _text,
    st.integers(min_value=0, max_value=3),
)
_resource = st.tuples(
    st.sampled_from(["svc", "db", "edge"]),
    st.sampled_from(["", "1.0", "2.0"]),
    _text,
    st.lists(_span, min_size=1, max_size=5),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(_resource, min_size=1, max_size=3), min_size=1, max_size=5))
def test_an_archived_poll_reads_back_as_its_requests_decode(
    requests: list[list[tuple[str, str, str, list[SpanSpec]]]],
) -> None:
    decoded = []
    for offset, resources in enumerate(requests):
        groups = [
            (
                {
                    "service.name": svc,
                    **({"service.version": ver} if ver else {}),
                    **({"k8s.pod.name": pod} if pod else {}),
                },
                spans,
            )
            for svc, ver, pod, spans in resources
        ]
        data = trace_request(groups).SerializeToString()
        out = decode_message(RawMessage("t", 0, offset, data, "traces"), LIMITS)
        assert isinstance(out, Decoded) and out.spans is not None
        decoded.append(out)
    want = pl.concat([d.spans.to_polars(SELECTED) for d in decoded if d.spans is not None])
    with tempfile.TemporaryDirectory() as folder:
        archive = SpanArchive(folder, SELECTED)
        archive.add(decoded)  # one poll: converted together
        archive.flush()
        got = scan_spans(Path(folder), T0, T0 + 2**41 + 10**9 + 1).collect()
    columns = [c for c in want.columns if c != "attributes"]
    assert got.select(columns).rows() == want.select(columns).rows()
