"""Call-graph edges from parent links across services inside a batch."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.otlp_encode import SpanSpec, trace_request
from operators.otlp import decode_trace_proto
from operators.otlp.spans import SpanBatch
from operators.signals.graph import _call_edges_by_dict, call_edges, sampled


def _span(sid: int, parent: int, kind: int) -> SpanSpec:
    return SpanSpec(
        b"\x01" * 16,
        sid.to_bytes(8, "big"),
        f"op{sid}",
        1,
        2,
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        kind=kind,
    )


def test_edges_follow_parent_links_across_services() -> None:
    req = trace_request(
        [
            ({"service.name": "frontend"}, [_span(1, 0, 2), _span(2, 1, 3)]),  # server, then client
            ({"service.name": "checkout"}, [_span(3, 2, 2), _span(4, 3, 3)]),
            (
                {"service.name": "payment"},
                [_span(5, 4, 2), _span(6, 99, 2)],
            ),  # 99: parent elsewhere
        ]
    )
    assert call_edges(decode_trace_proto(req.SerializeToString())) == {
        ("frontend", "checkout"),
        ("checkout", "payment"),
    }


def test_sampling_is_by_offset() -> None:
    assert [o for o in range(10) if sampled(o, 4)] == [0, 4, 8]
    assert all(sampled(o, 1) for o in range(5))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.integers(1, 12),  # span ids repeat: the last one with the id is the parent
            st.sampled_from([b"", b"\x07", None]),  # no parent, a malformed one, or span 1..12
            st.integers(1, 12),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_the_compiled_columns_give_the_edges_a_dict_of_span_ids_gives(
    spans: list[tuple[str, int, bytes | None, int]],
) -> None:
    by_service: dict[str, list[SpanSpec]] = {}
    for service, sid, parent, parent_sid in spans:
        span = _span(sid, parent_sid if parent is None else 0, 2)
        if parent:
            span = dataclasses.replace(span, parent_span_id=parent)
        by_service.setdefault(service, []).append(span)
    req = trace_request([({"service.name": s}, group) for s, group in by_service.items()])
    batch = decode_trace_proto(req.SerializeToString())
    assert batch.svc_codes is not None and batch.packed_ids is not None
    lists = unpacked(batch)  # as the decoders that pack no ids give it
    assert call_edges(batch) == call_edges(lists) == _call_edges_by_dict(batch)


def unpacked(batch: SpanBatch) -> SpanBatch:
    """`batch` with its ids as lists only."""
    return dataclasses.replace(
        batch,
        _trace_id=batch.trace_id,
        _span_id=batch.span_id,
        _parent_span_id=batch.parent_span_id,
        packed_ids=None,
    )
