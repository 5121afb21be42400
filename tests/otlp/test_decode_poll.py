"""A poll's trace requests decoded in one compiled walk give each request what decoding it alone
gives: the same batch, text columns and end times, or the same dead letter."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.otlp_encode import SpanSpec, trace_request
from operators.otlp import DecodeLimits, RawMessage, decode_message
from operators.otlp.messages import JOINT_BYTES, Decoded, decode_poll, is_json, span_batches
from operators.otlp.wire import HAVE_WIRE, _wire
from sre_space.records import DeadLetter
from tests.otlp.test_wire import TEXT_KEYS, requests, snapshot, texts

pytestmark = pytest.mark.skipif(not HAVE_WIRE, reason="the compiled decoder is not built")

LIMITS = DecodeLimits(text_keys=TEXT_KEYS)


def poll_of(values: list[bytes], signal: str = "traces") -> list[RawMessage]:
    return [RawMessage("t", 3, 100 + i, v, signal) for i, v in enumerate(values)]  # type: ignore[arg-type]


def outcome(item: Decoded | DeadLetter) -> Any:
    if isinstance(item, DeadLetter):
        return ("dead", item.reason, item.offset)
    spans = item.spans
    assert spans is not None
    ends = item.end_range() if len(spans) else None
    return (
        "ok",
        item.offset,
        item.span_count(),
        ends,
        snapshot(spans),
        texts(spans.text_columns(TEXT_KEYS)),
        texts(spans.text_columns(("a", "k8s.pod.name"))),  # a second walk, over the joint bytes
    )


def assert_as_one_by_one(values: list[bytes]) -> list[Decoded | DeadLetter]:
    poll = poll_of(values)
    together = decode_poll(poll, LIMITS)
    assert [outcome(d) for d in together] == [outcome(decode_message(m, LIMITS)) for m in poll]
    return together


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests(), min_size=2, max_size=5))
def test_generated_polls_decode_as_one_by_one(reqs: list[ExportTraceServiceRequest]) -> None:
    values = [r.SerializeToString() for r in reqs]
    together = assert_as_one_by_one(values)
    decoded = [d for d in together if isinstance(d, Decoded)]
    # One walk when none is refused, and none opens like JSON: a request whose first resource is
    # 123 bytes long starts b"\n{", so it is tried as JSON, alone (`messages._AMBIGUOUS`).
    if len(decoded) == len(reqs) and not any(is_json(v) for v in values):
        assert all(d.part is not None and d.part[1] == k for k, d in enumerate(decoded))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.data())
def test_a_request_cut_in_two_is_two_requests(
    req: ExportTraceServiceRequest, data: st.DataObject
) -> None:
    """Joined, the two halves are the whole request again; walked each on its own, a half cut
    inside a field is refused as it is alone (cut between resources, it is a request)."""
    raw = req.SerializeToString()
    cut = data.draw(st.integers(1, max(1, len(raw) - 1)))
    assert_as_one_by_one([raw, raw[:cut], raw[cut:], raw])


def small(service: str, n: int, t0: int = 10**18) -> bytes:
    spans = [
        SpanSpec(
            trace_id=bytes([k + 1]) * 16,
            span_id=bytes([k + 1]) * 8,
            name=f"op{k % 2}",
            start_ns=t0 + k,
            end_ns=t0 + 1000 * k + 5,
            attributes={"a": f"v{k}"},
        )
        for k in range(n)
    ]
    return trace_request([({"service.name": service}, spans)]).SerializeToString()


def test_requests_without_spans_and_refused_ones_keep_their_place() -> None:
    values = [small("cart", 0), small("cart", 3), small("cart", 0), small("shop", 2), small("a", 0)]
    together = assert_as_one_by_one(values)
    assert all(isinstance(d, Decoded) and d.part is not None for d in together)
    assert [d.span_count() for d in together if isinstance(d, Decoded)] == [0, 3, 0, 2, 0]
    truncated = small("cart", 2)[:-3]
    together = assert_as_one_by_one([small("cart", 3), truncated, small("shop", 2)])
    assert isinstance(together[1], DeadLetter)
    assert all(isinstance(d, Decoded) and d.part is None for d in (together[0], together[2]))


def test_other_messages_split_the_walks() -> None:
    json = b'{"resourceSpans": []}'
    poll = poll_of([small("a", 2), small("b", 2), json, small("c", 1)])
    poll.append(RawMessage("t", 3, 200, small("d", 1), "traces", error="torn record"))
    poll.append(RawMessage("t", 3, 201, small("e", 1), "auto"))
    together = decode_poll(poll, LIMITS)
    assert [outcome(d) for d in together] == [outcome(decode_message(m, LIMITS)) for m in poll]
    parts = [d.part if isinstance(d, Decoded) else None for d in together]
    assert parts[0] is not None and parts[1] is not None and parts[0][0] is parts[1][0]
    assert parts[2:] == [None] * 4  # JSON, a lone request, a source's error, an untyped one


def test_walks_end_at_joint_bytes() -> None:
    value = small("cart", 1)
    values = [value] * (JOINT_BYTES // len(value) + 3)
    together = decode_poll(poll_of(values), LIMITS)
    joints = [d.part[0] for d in together if isinstance(d, Decoded) and d.part is not None]
    assert len({id(j) for j in joints}) == 2 and len(joints) == len(values)
    first = joints[0]
    assert len(first.batch) * len(value) >= JOINT_BYTES > (len(first.batch) - 1) * len(value)


def test_large_requests_are_decoded_alone() -> None:
    span = SpanSpec(b"\x01" * 16, b"\x01" * 8, "x" * (JOINT_BYTES // 2), 1, 2)
    big = trace_request([({"service.name": "a"}, [span])]).SerializeToString()
    values = [small("a", 1), small("b", 1), big, small("c", 1), small("d", 1)]
    together = assert_as_one_by_one(values)
    parts = [d.part if isinstance(d, Decoded) else None for d in together]
    assert parts[2] is None and all(parts[k] is not None for k in (0, 1, 3, 4))


def test_pure_python_decodes_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRE_PURE_PYTHON", "1")
    together = decode_poll(poll_of([small("a", 2), small("b", 2)]), LIMITS)
    assert all(isinstance(d, Decoded) and d.part is None for d in together)


def test_span_batches_join_consecutive_requests_of_a_walk() -> None:
    together = decode_poll(poll_of([small("a", 2), small("b", 0), small("c", 3)]), LIMITS)
    alone = decode_message(poll_of([small("z", 4)])[0], LIMITS)
    assert isinstance(alone, Decoded)
    items = [d for d in together if isinstance(d, Decoded)]
    batches = span_batches([*items, alone, *items[2:]])
    assert [len(b) for b in batches] == [5, 4, 3]
    assert batches[0] is items[0].part[0].batch  # type: ignore[index]
    assert batches[0].service == ["a", "a", "c", "c", "c"]
    # a request whose own batch was made counts as a batch of its own
    assert items[2].spans is not None
    assert [len(b) for b in span_batches(items)] == [2, 3]


def test_end_ranges_come_from_one_reduction() -> None:
    values = [
        small("a", 0),
        small("a", 3, t0=500),
        small("a", 0),
        small("a", 2, t0=10),
        small("a", 0),
    ]
    together = decode_poll(poll_of(values), LIMITS)
    joint = together[0].part[0]  # type: ignore[union-attr]
    assert [joint.end_range(k) for k in (1, 3)] == [(505, 2505), (15, 1015)]


def test_decode_requests_walks_each_request_on_its_own() -> None:
    one, two = small("a", 2), small("b", 1)
    both = _wire.decode_requests([one, two], TEXT_KEYS)
    assert np.frombuffer(both.pop("request_spans"), np.int64).tolist() == [0, 2, 3]
    assert np.frombuffer(both.pop("request_resources"), np.int64).tolist() == [0, 1, 2]
    # Requests end to end are one request of both's resources (protobuf merges repeated fields):
    # the same columns, the span offsets into the requests as if end to end.
    assert both == _wire.decode_spans(one + two, TEXT_KEYS)
    with pytest.raises(ValueError, match=r"^request 1: "):
        _wire.decode_requests([one, one[:-1], two])
    with pytest.raises(TypeError):
        _wire.decode_requests((one, two))
    with pytest.raises(TypeError):
        _wire.decode_requests([one, bytearray(two)])


def test_rows_of_a_batch_read_their_own_spans() -> None:
    together = decode_poll(poll_of([small("a", 3), small("b", 2)]), LIMITS)
    joint = together[0].part[0]  # type: ignore[union-attr]
    second = joint.batch.rows(3, 5)
    assert joint.batch.rows(0, 5) is joint.batch
    assert second.service == ["b", "b"] and second.operation == ["op0", "op1"]
    assert [second.attribute(i, "a") for i in range(2)] == ["v0", "v1"]
    assert second.trace_id == [b"\x01" * 16, b"\x02" * 16]
    assert texts(second.text_columns(("a",))) == [["v0", "v1"], ["", ""]]
    assert second.is_error.tolist() == [False, False]
