"""Call-graph edges from parent links across services inside a batch."""

from __future__ import annotations

from bench.otlp_encode import SpanSpec, trace_request
from operators.otlp import decode_trace_proto
from operators.signals.graph import call_edges, sampled


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
