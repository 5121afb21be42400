"""The compiled wire decoder against the protobuf (upb) decoder: same columns, same rejections."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.otlp_encode import SpanSpec, trace_request
from operators.otlp import DecodeError, DecodeLimits, decode_trace_proto
from operators.otlp.proto_traces import decode_trace_upb
from operators.otlp.spans import SpanBatch
from operators.otlp.text import TextColumn
from operators.otlp.wire import HAVE_WIRE, _wire, decode_requests_wire, decode_trace_wire

BUILD_HINT = (
    "operators.otlp._wire is not built: run `.venv/bin/python setup.py build_ext --inplace`"
)
SELECTED = ("http.route", "http.response.status_code", "rpc.grpc.status_code", "k8s.pod.name")
STATUS_KEYS = ("http.response.status_code", "http.status_code", "rpc.grpc.status_code")
LIMITS = DecodeLimits()
# the attributes of the generated spans, the resources' and missing ones (also repeated)
TEXT_KEYS = (*SELECTED, "a", "b", "service.version")


@pytest.fixture(autouse=True)
def _wire_built() -> None:
    # Never skip: a skipped test looks green while proving nothing.
    assert HAVE_WIRE, BUILD_HINT


# ---------------------------------------------------------------------------------------------
# protobuf wire helpers, to add what the protobuf API cannot: unknown fields, odd encodings


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def ld(field: int, payload: bytes) -> bytes:
    return tag(field, 2) + varint(len(payload)) + payload


def unknown_field(field: int, wire_type: int, payload: int) -> bytes:
    """One field of any wire type; groups hold one varint."""
    if wire_type == 0:
        return tag(field, 0) + varint(payload)
    if wire_type == 1:
        return tag(field, 1) + payload.to_bytes(8, "little")
    if wire_type == 2:
        return ld(field, payload.to_bytes(4, "little"))
    if wire_type == 3:
        return tag(field, 3) + tag(1, 0) + varint(payload) + tag(field, 4)
    return tag(field, 5) + payload.to_bytes(4, "little")


def encode_request(req: ExportTraceServiceRequest, extra: Callable[[str], bytes]) -> bytes:
    """Serialize by hand, appending `extra(level)` to every message (unknown fields)."""
    out = bytearray()
    for rs in req.resource_spans:
        rs_bytes = bytearray(ld(1, rs.resource.SerializeToString() + extra("resource")))
        for ss in rs.scope_spans:
            ss_bytes = bytearray(ld(1, ss.scope.SerializeToString()))
            for span in ss.spans:
                ss_bytes += ld(2, span.SerializeToString() + extra("span"))
            ss_bytes += extra("scope_spans")
            rs_bytes += ld(2, bytes(ss_bytes))
        rs_bytes += extra("resource_spans")
        out += ld(1, bytes(rs_bytes))
    out += extra("request")
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# comparing the two decoders


def outcome(decode: Callable[[bytes, DecodeLimits], SpanBatch], data: bytes) -> Any:
    """("ok", everything the batch shows) or ("rejected",)."""
    try:
        batch = decode(data, LIMITS)
    except DecodeError:
        return ("rejected",)
    except OverflowError:
        # The upb decoder lets numpy refuse out-of-range kinds, times and status codes.
        return ("rejected",)
    return ("ok", snapshot(batch))


def snapshot(batch: SpanBatch) -> Any:
    n = len(batch)
    frame = batch.to_polars(SELECTED)
    return (
        frame.to_dicts(),
        frame.schema,
        [(a.dtype.str, a.tolist()) for a in (batch.kind, batch.status_code, batch.http_status)],
        [[batch.attribute(i, k) for k in ("a", "b", "service.version")] for i in range(n)],
        [batch.events(i) for i in range(n)],
        [batch.resource_attrs[i] for i in range(n)],
    )


def decode_in_one_walk(data: bytes, limits: DecodeLimits) -> SpanBatch:
    """The wire decoder writing the text columns of TEXT_KEYS in its walk."""
    return decode_trace_wire(data, dataclasses.replace(limits, text_keys=TEXT_KEYS))


def assert_same(data: bytes) -> Any:
    upb = outcome(decode_trace_upb, data)
    wire = outcome(decode_trace_wire, data)
    assert wire == upb
    assert outcome(decode_in_one_walk, data) == upb
    assert_text_in_walk(data, TEXT_KEYS)
    if wire[0] == "ok":
        check_codes(decode_trace_wire(data, LIMITS))
        compiled = texts(decode_trace_wire(data, LIMITS).text_columns(TEXT_KEYS))
        assert compiled == texts(decode_trace_upb(data, LIMITS).text_columns(TEXT_KEYS))
        assert texts(decode_in_one_walk(data, LIMITS).text_columns(TEXT_KEYS)) == compiled
    return wire


def assert_text_in_walk(data: bytes, keys: tuple[str, ...]) -> None:
    """decode_spans given text keys (or none: the events alone) rejects what it rejects without
    them, with the same reason, and otherwise adds to the same columns the text columns that
    span_columns writes in a walk of its own."""
    try:
        plain = _wire.decode_spans(data)
    except ValueError as exc:
        for text_keys in (keys, ()):
            with pytest.raises(ValueError) as walked_exc:
                _wire.decode_spans(data, text_keys)
            assert str(walked_exc.value) == str(exc)
        return
    offsets = np.frombuffer(plain["span_offsets"], dtype=np.int64)
    for text_keys in (keys, ()):
        walked = _wire.decode_spans(data, text_keys)
        assert walked.pop("text_columns") == _wire.span_columns(data, offsets, text_keys)
        assert walked == plain


def texts(columns: tuple[list[TextColumn], TextColumn]) -> list[list[str]]:
    """Text columns as Python strings, to compare the compiled ones with the walked ones."""
    out = []
    for offsets, data in [*columns[0], columns[1]]:
        bounds = offsets.tolist()
        out.append([data[a:b].decode() for a, b in pairwise(bounds)])
    return out


def check_codes(batch: SpanBatch) -> None:
    assert batch.op_codes is not None and batch.op_names is not None
    assert batch.svc_codes is not None and batch.svc_names is not None
    assert batch.op_codes.dtype == np.int32 and batch.svc_codes.dtype == np.int32
    assert [batch.op_names[c] for c in batch.op_codes.tolist()] == batch.operation
    assert [batch.svc_names[c] for c in batch.svc_codes.tolist()] == batch.service
    assert len(set(batch.op_names)) == len(batch.op_names)
    assert len(set(batch.svc_names)) == len(batch.svc_names)


# ---------------------------------------------------------------------------------------------
# generated requests

STATUS_VALUES = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([0, 1, 2, 14, 200, 404, 499, 500, 503, 599, 2**31, -(2**31) - 1, 2**40]),
    st.sampled_from(
        ["500", " 503 ", "+42", "-1", "4_2", "0x10", "", "abc", "1e3", "٤٢", "\t200\n", "5" * 5000]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e10, -2147483648.9, 2147483647.5, -0.5, 503.99]),
    st.booleans(),
    st.sampled_from([b"500", b" 7 ", b"\xff", b"", [1, 2], {"code": 500}, [], {}]),
)
PLAIN_VALUES = st.one_of(
    st.text(max_size=12),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.one_of(st.integers(0, 9), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2),
)


@st.composite
def span_specs(draw: st.DrawFn) -> SpanSpec:
    attrs: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(STATUS_KEYS), max_size=3)):
        attrs[key] = draw(STATUS_VALUES)
    for key in draw(st.lists(st.sampled_from(["a", "b", "http.route"]), max_size=3)):
        attrs[key] = draw(PLAIN_VALUES)
    events = draw(
        st.lists(
            st.tuples(
                st.text(max_size=5),
                st.integers(0, 2**63 - 1),
                st.dictionaries(st.sampled_from(["x", "exception.type"]), PLAIN_VALUES, max_size=2),
            ),
            max_size=2,
        )
    )
    return SpanSpec(
        trace_id=draw(st.one_of(st.binary(min_size=16, max_size=16), st.just(b"\x01" * 16))),
        span_id=draw(st.binary(min_size=8, max_size=8)),
        name=draw(st.sampled_from(["GET /", "POST /cart", "Charge", "é ☃", ""])),
        start_ns=draw(st.integers(0, 2**63 - 1)),
        end_ns=draw(st.integers(0, 2**63 - 1)),
        parent_span_id=draw(st.sampled_from([b"", b"\x02" * 8])),
        kind=draw(st.sampled_from([0, 1, 2, 3, 4, 5, 2, 5])),
        status_code=draw(st.sampled_from([0, 1, 2])),
        status_message=draw(st.sampled_from(["", "boom"])),
        attributes=attrs,
        events=events,
    )


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    resources = []
    for _ in range(draw(st.integers(1, 3))):
        res: dict[str, Any] = {"service.name": draw(st.sampled_from(["cart", "checkout", "é"]))}
        if draw(st.booleans()):
            res["service.version"] = draw(st.sampled_from(["1.2.3", 7, True]))
        if draw(st.booleans()):
            res["k8s.pod.name"] = "pod-0"
        resources.append((res, draw(st.lists(span_specs(), max_size=4))))
    req = trace_request(resources)
    # split some scope spans in two: several scopes per resource
    for rs in req.resource_spans:
        spans = rs.scope_spans[0].spans
        cut = draw(st.integers(0, len(spans)))
        if cut < len(spans) and draw(st.booleans()):
            second = rs.scope_spans.add()
            second.scope.name = "other"
            second.spans.extend(spans[cut:])
            del spans[cut:]
    return req


# Unknown numbers, and Span's kind (6, varint), start (7, fixed64) and attributes (9, bytes) with
# another wire type, which protobuf also keeps as unknown fields.
UNKNOWN = st.tuples(
    st.sampled_from(
        [(f, w) for f in (17, 100, 536_870_911) for w in (0, 1, 2, 3, 5)]
        + [(6, w) for w in (1, 2, 3, 5)]
        + [(7, w) for w in (0, 2, 3, 5)]
        + [(9, w) for w in (0, 1, 3, 5)]
    ),
    st.integers(0, 2**32 - 1),
).map(lambda t: (t[0][0], t[0][1], t[1]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_generated_requests_decode_identically(req: ExportTraceServiceRequest) -> None:
    assert_same(req.SerializeToString())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.data())
def test_unknown_fields_are_skipped_identically(
    req: ExportTraceServiceRequest, data: st.DataObject
) -> None:
    def extra(level: str) -> bytes:
        fields = data.draw(st.lists(UNKNOWN, max_size=2), label=level)
        return b"".join(unknown_field(*f) for f in fields)

    raw = encode_request(req, extra)
    result = assert_same(raw)
    # unknown fields change nothing (unless the request was rejected for its values)
    assert result == assert_same(req.SerializeToString())


# Strings of every length around a word (the hash and the UTF-8 check read 8 bytes at a time,
# then the last 1 to 7) with a non-ASCII run at any place in them, valid UTF-8 or not; a few of
# them, so that spans repeat them and some differ in one byte.
STRINGS = st.lists(
    st.tuples(
        st.integers(0, 9),
        st.sampled_from(
            [b"", b"\x80", b"\xff", b"\xc3", b"\xc3\xa9", b"\xe2\x98\x83", b"\xed\xa0\x80"]
        ),
        st.integers(0, 9),
    ).map(lambda t: b"abcdefghi"[: t[0]] + t[1] + b"rstuvwxyz"[: t[2]]),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(STRINGS, st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=8))
def test_names_keys_and_values_of_any_bytes_decode_identically(
    strings: list[bytes], picks: list[tuple[int, int]]
) -> None:
    def request(fields: Callable[[int, int], bytes]) -> bytes:
        spans = b"".join(
            ld(2, ld(1, b"\x01" * 16) + ld(2, b"\x02" * 8) + tag(6, 0) + b"\x02" + fields(i, j))
            for i, j in picks
        )
        resource = ld(1, ld(1, b"service.name") + ld(2, ld(1, b"cart")))
        return ld(1, ld(1, resource) + ld(2, spans))

    def pick(k: int) -> bytes:
        return strings[k % len(strings)]

    # the strings as span names, then as an entry span's attribute keys and values
    assert_same(request(lambda i, _: ld(5, pick(i))))
    assert_same(request(lambda i, j: ld(5, b"op") + ld(9, ld(1, pick(i)) + ld(2, ld(1, pick(j))))))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_rejected_identically(data: bytes) -> None:
    assert_same(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_inside_a_span_are_rejected_identically(junk: bytes) -> None:
    span = ld(1, b"\x01" * 16) + ld(2, b"\x02" * 8) + ld(5, b"op") + tag(6, 0) + b"\x02"
    resource = ld(1, ld(1, b"service.name") + ld(2, ld(1, b"cart")))
    for body in (span + junk, junk + span, span + ld(9, junk), span + ld(15, junk)):
        assert_same(ld(1, ld(1, resource) + ld(2, ld(2, body))))


def small_request() -> bytes:
    req = trace_request(
        [
            (
                {"service.name": "cart", "service.version": "1.0"},
                [
                    SpanSpec(
                        b"\x01" * 16,
                        b"\x02" * 8,
                        "GET /cart",
                        5,
                        9,
                        kind=2,
                        attributes={"http.response.status_code": 503, "http.route": "/c"},
                    ),
                    SpanSpec(
                        b"\x01" * 16,
                        b"\x03" * 8,
                        "SELECT",
                        6,
                        8,
                        b"\x02" * 8,
                        kind=3,
                        status_code=2,
                        events=[("exception", 7, {"exception.type": "E"})],
                    ),
                ],
            ),
            (
                {"service.name": "pay"},
                [
                    SpanSpec(
                        b"\x04" * 16,
                        b"\x05" * 8,
                        "Charge",
                        1,
                        2,
                        attributes={"rpc.grpc.status_code": 14},
                    )
                ],
            ),
        ]
    )
    return req.SerializeToString()


def test_every_truncation_is_rejected_identically() -> None:
    data = small_request()
    accepted = [n for n in range(len(data) + 1) if assert_same(data[:n])[0] == "ok"]
    # only nothing, the first whole ResourceSpans and the whole request parse
    assert accepted[0] == 0 and accepted[-1] == len(data) and len(accepted) == 3


def test_official_example_as_protobuf() -> None:
    """The spec's trace.json example (/work/shared/fixtures/otlp/trace.json) built as protobuf."""
    req = trace_request(
        [
            (
                {"service.name": "my.service"},
                [
                    SpanSpec(
                        trace_id=bytes.fromhex("5B8EFFF798038103D269B633813FC60C"),
                        span_id=bytes.fromhex("EEE19B7EC3C1B174"),
                        parent_span_id=bytes.fromhex("EEE19B7EC3C1B173"),
                        name="I'm a server span",
                        start_ns=1544712660000000000,
                        end_ns=1544712661000000000,
                        kind=2,
                        attributes={"my.span.attr": "some value"},
                    )
                ],
            )
        ],
        scope="my.library",
    )
    scope = req.resource_spans[0].scope_spans[0].scope
    scope.version = "1.0.0"
    kv = scope.attributes.add()
    kv.key = "my.scope.attribute"
    kv.value.string_value = "some scope attribute"
    data = req.SerializeToString()
    assert assert_same(data)[0] == "ok"
    batch = decode_trace_wire(data, LIMITS)
    assert batch.trace_id == [bytes.fromhex("5B8EFFF798038103D269B633813FC60C")]
    assert batch.service == ["my.service"] and batch.operation == ["I'm a server span"]
    assert batch.duration_ns.tolist() == [1_000_000_000]
    assert batch.attribute(0, "my.span.attr") == "some value"
    assert batch.http_status.tolist() == [0] and batch.rpc_grpc_status.tolist() == [-1]


START = 1_700_000_000_000_000_000


def test_a_key_or_events_first_seen_late_leave_the_spans_before_absent() -> None:
    # The walk keeps a key's column, and the events', from the first span that has them: the
    # spans before lack them, so they take their resource's value (k8s.pod.name, a), not "".
    def span(i: int, attributes: dict[str, Any], events: bool = False) -> SpanSpec:
        return SpanSpec(
            trace_id=bytes([i + 1]) * 16, span_id=bytes([i + 1]) * 8, name=f"op{i}",
            start_ns=START, end_ns=START + 1000, attributes=attributes,
            events=[("hit", START, {"n": i})] if events else (),
        )  # fmt: skip

    resource = {"service.name": "cart", "k8s.pod.name": "pod-r", "a": "res-a"}
    spans = [span(0, {}), span(1, {"a": "x"}, events=True), span(2, {"k8s.pod.name": "pod-s"})]
    first = trace_request([(resource, [*spans, span(3, {})])]).SerializeToString()
    assert assert_same(first)[0] == "ok"
    batch = decode_in_one_walk(first, LIMITS)
    columns, events = batch.text_columns(("k8s.pod.name", "a"))
    assert texts((columns, events))[:2] == [
        ["pod-r", "pod-r", "pod-s", "pod-r"],
        ["res-a", "x", "res-a", "res-a"],
    ]
    assert [bool(e) for e in texts((columns, events))[2]] == [False, True, False, False]
    # Two requests in one walk: the second alone has the key on a span.
    second = trace_request([(resource, [span(4, {"b": "y"}), spans[2]])]).SerializeToString()
    alone = trace_request([(resource, [span(5, {})])]).SerializeToString()
    joint = decode_requests_wire([alone, second], dataclasses.replace(LIMITS, text_keys=TEXT_KEYS))
    assert texts(joint.batch.text_columns(("k8s.pod.name", "b")))[:2] == [
        ["pod-r", "pod-r", "pod-s"],
        ["", "y", ""],
    ]


def status_span(value: bytes, kind: int = 2, key: bytes = b"http.response.status_code") -> bytes:
    """A request with one span whose status attribute holds the raw AnyValue bytes `value`."""
    attr = ld(1, key) + ld(2, value)
    span = ld(1, b"\x01" * 16) + ld(2, b"\x02" * 8) + ld(5, b"op") + tag(6, 0) + varint(kind)
    resource = ld(1, ld(1, b"service.name") + ld(2, ld(1, b"cart")))
    return ld(1, ld(1, resource) + ld(2, ld(2, span + ld(9, attr))))


@pytest.mark.parametrize(
    ("value", "http"),
    [
        (tag(3, 0) + varint(503), 503),
        (tag(3, 0) + varint(-1), -1),
        (tag(1, 2) + varint(3) + b"404", 404),
        (tag(3, 0) + varint(503) + ld(1, b"200"), 200),  # the oneof's last member wins
        (ld(1, b"200") + tag(3, 0) + varint(503), 503),
        (ld(1, b"200") + ld(5, b""), 0),  # array value
        (tag(4, 1) + np.float64(503.7).tobytes(), 503),
        (tag(4, 1) + np.float64(math.nan).tobytes(), 0),
        (tag(2, 0) + varint(7), 1),
        (tag(8, 0) + varint(404), 404),  # string_value_strindex is in the oneof
        (ld(7, b" 501 "), 501),  # bytes: int(b" 501 ")
        (tag(3, 2) + varint(1) + b"\x05", 0),  # int_value with the wrong wire type: unknown
        (b"", 0),
    ],
)
def test_status_values_convert_like_python(value: bytes, http: int) -> None:
    data = status_span(value)
    assert assert_same(data)[0] == "ok"
    assert decode_trace_wire(data, LIMITS).http_status.tolist() == [http]
    # only server and consumer spans read it
    assert decode_trace_wire(status_span(value, kind=3), LIMITS).http_status.tolist() == [0]


def test_two_status_values_merge_into_one_anyvalue() -> None:
    attr = ld(1, b"rpc.grpc.status_code") + ld(2, tag(3, 0) + varint(2)) + ld(2, b"")
    span = ld(1, b"\x01" * 16) + ld(2, b"\x02" * 8) + tag(6, 0) + varint(5) + ld(9, attr)
    resource = ld(1, ld(1, b"service.name") + ld(2, ld(1, b"cart")))
    data = ld(1, ld(1, resource) + ld(2, ld(2, span)))
    assert assert_same(data)[0] == "ok"
    assert decode_trace_wire(data, LIMITS).rpc_grpc_status.tolist() == [2]


@pytest.mark.parametrize(
    "value",
    [
        tag(3, 0) + varint(2**31),
        tag(4, 1) + np.float64(math.inf).tobytes(),
        tag(4, 1) + np.float64(3e9).tobytes(),
        ld(1, b"99999999999"),
    ],
)
def test_status_values_outside_int32_are_rejected_by_both(value: bytes) -> None:
    assert assert_same(status_span(value)) == ("rejected",)
    with pytest.raises(DecodeError, match=r"outside int32|infinite"):
        decode_trace_wire(status_span(value), LIMITS)


@pytest.mark.parametrize("kind", [200, -129, 2**32 + 2])
def test_out_of_range_kinds(kind: int) -> None:
    # the enum is an int32 on the wire; numpy refuses what does not fit an int8
    assert_same(status_span(tag(3, 0) + varint(503), kind=kind))


def nested_attribute(depth: int) -> bytes:
    value = tag(3, 0) + varint(1)
    for _ in range(depth):
        value = ld(5, ld(1, value))  # AnyValue.array_value.values[0]
    return status_span(value, key=b"deep")


def test_nesting_limit_matches_upb() -> None:
    results = [assert_same(nested_attribute(d))[0] for d in range(44, 52)]
    assert "ok" in results and "rejected" in results


def test_unknown_group_nesting_limit_matches_upb() -> None:
    def groups(n: int) -> bytes:
        return tag(99, 3) * n + tag(99, 4) * n

    results = [assert_same(status_span(groups(n), key=b"g"))[0] for n in range(90, 100)]
    assert "ok" in results and "rejected" in results


@pytest.mark.parametrize(
    "junk",
    [
        tag(99, 4),  # end-group without a start
        tag(99, 3) + tag(98, 4),  # mismatched end-group
        tag(99, 6),
        tag(99, 7),
        tag(0, 0) + b"\x01",  # field number 0
        b"\xff" * 11,  # varint over 10 bytes
        b"\xb0\x80\x80\x80\x80\x00\x05",  # a 6-byte tag
        tag(5, 2) + b"\x81\x80\x80\x80\x80\x00x",  # a 6-byte length
        tag(5, 2) + b"\x81\x80\x80\x80\x00x",  # a 5-byte length is fine
        tag(5, 2) + b"\x02\xc0\x80",  # overlong UTF-8
        tag(5, 2) + b"\x02\xc0\x80" + ld(5, b"op"),  # a bad name replaced by a good one
        tag(5, 2) + b"\x03\xed\xa0\x80",  # a surrogate
        tag(1, 2) + b"\x01\xff",  # ids are bytes, not UTF-8
        tag(6, 0) + b"\x85\x80\x80\x80\x80\x80\x80\x80\x80\x7f",  # 10-byte varint
        tag(7, 0) + b"\x05",  # a fixed64 field as a varint: unknown
        tag(16, 5) + b"\x00\x00",  # truncated fixed32
    ],
)
def test_malformed_spans_are_judged_identically(junk: bytes) -> None:
    span = ld(1, b"\x01" * 16) + ld(2, b"\x02" * 8) + ld(5, b"op") + junk
    resource = ld(1, ld(1, b"service.name") + ld(2, ld(1, b"cart")))
    assert_same(ld(1, ld(1, resource) + ld(2, ld(2, span))))


def test_repeated_resource_fields_merge() -> None:
    name = ld(1, ld(1, b"service.name") + ld(2, ld(1, b"cart")))
    version = ld(1, ld(1, b"service.version") + ld(2, ld(1, b"9")))
    span = ld(1, b"\x01" * 16) + ld(2, b"\x02" * 8)
    data = ld(1, ld(1, name) + ld(2, ld(2, span)) + ld(1, version))
    assert assert_same(data)[0] == "ok"
    batch = decode_trace_wire(data, LIMITS)
    assert batch.service == ["cart"] and batch.service_version == ["9"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\xff garbage", "invalid ExportTraceServiceRequest protobuf"),
        (tag(5, 0) + b"\x01", "no resourceSpans"),
        (ld(1, ld(2, ld(2, ld(1, b"\x01" * 16)))), "service.name"),
        (
            trace_request(
                [({"service.name": "a"}, [SpanSpec(b"\x01" * 5, b"\x02" * 8, "x", 1, 2)])]
            ).SerializeToString(),
            "5-byte trace_id",
        ),
        (
            trace_request(
                [
                    (
                        {"service.name": "a"},
                        [
                            SpanSpec(b"\x01" * 16, b"\x02" * 8, "x", 1, 2),
                            SpanSpec(b"\x01" * 16, b"\x02" * 3, "x", 1, 2),
                        ],
                    )
                ]
            ).SerializeToString(),
            "span 1 has a 3-byte span_id",
        ),
    ],
)
def test_rejections_name_the_reason(data: bytes, reason: str) -> None:
    for decode in (decode_trace_wire, decode_trace_upb):
        with pytest.raises(DecodeError, match=reason):
            decode(data, LIMITS)


def test_limits_apply_before_decoding() -> None:
    data = small_request()
    with pytest.raises(DecodeError, match="max_message_bytes"):
        decode_trace_wire(data, DecodeLimits(max_message_bytes=len(data) - 1))
    huge = trace_request(
        [
            (
                {"service.name": "a"},
                [SpanSpec(b"\x01" * 16, b"\x02" * 8, "x", 1, 2, attributes={"blob": "x" * 2000})],
            )
        ]
    )
    with pytest.raises(DecodeError, match="'blob' is 2000 bytes"):
        decode_trace_wire(huge.SerializeToString(), DecodeLimits(max_attribute_bytes=1000))


def test_empty_request_is_an_empty_batch() -> None:
    assert assert_same(b"")[0] == "ok"
    assert len(decode_trace_wire(b"", LIMITS)) == 0


def test_dispatch_and_pure_python_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    data = small_request()
    assert decode_trace_proto(data).op_codes is not None
    monkeypatch.setenv("SRE_PURE_PYTHON", "1")
    assert decode_trace_proto(data).op_codes is None
    assert snapshot(decode_trace_proto(data)) == snapshot(decode_trace_wire(data, LIMITS))


def test_lazy_readers_parse_each_span_once() -> None:
    batch = decode_trace_wire(small_request(), LIMITS)
    assert batch.attribute(0, "http.route") == "/c"
    assert batch.attribute(0, "service.version") == "1.0"  # resource fallback
    assert batch.events(1) == [
        {"name": "exception", "time_ns": 7, "attributes": {"exception.type": "E"}}
    ]
    assert json.loads(batch.to_polars()["events"][1])[0]["name"] == "exception"
    assert batch.is_error.tolist() == [True, True, True]


def test_workload_batches_match() -> None:
    from bench.workload import generate

    reqs, _ = generate(3_000, spans_per_request=512, services=8)
    for data in reqs:
        wire, upb = decode_trace_wire(data, LIMITS), decode_trace_upb(data, LIMITS)
        assert wire.to_polars(["http.route"]).equals(upb.to_polars(["http.route"]))
        assert wire.resource_attrs == upb.resource_attrs
        check_codes(wire)


def test_batches_own_their_resource_dicts() -> None:
    # the decoder caches a request's resources: one batch's dicts must not leak into another's
    data = small_request()
    first, second = decode_trace_wire(data, LIMITS), decode_trace_wire(data, LIMITS)
    first.resource_attrs[0]["service.version"] = "changed"
    assert first.attribute(0, "service.version") == "changed"
    assert second.resource_attrs == decode_trace_upb(data, LIMITS).resource_attrs
    assert decode_trace_wire(data, LIMITS).attribute(0, "service.version") == "1.0"
