"""The compiled OTLP/JSON decoder against the Python one (the reference) and the proto path."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.otlp_encode import SpanSpec, to_otlp_json, trace_request
from operators.otlp import DecodeError, DecodeLimits, RawMessage, decode_message
from operators.otlp.json_traces import load_json, trace_json_to_batch
from operators.otlp.json_wire import HAVE_JSON_WIRE, decode_trace_json_wire
from operators.otlp.messages import Decoded
from operators.otlp.proto_traces import decode_trace_upb
from operators.otlp.spans import SpanBatch
from tests.otlp.test_wire import PLAIN_VALUES, check_codes, requests, snapshot

LIMITS = DecodeLimits()
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Names as producers write them: any text but what JSON must escape (a quote, a backslash, a
# control character), which the compiled decoder hands over.
NAMES = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters='"\\'), max_size=12
)


@pytest.fixture(autouse=True)
def _json_built() -> None:
    # Never skip: a skipped test looks green while proving nothing.
    assert HAVE_JSON_WIRE, "operators.otlp._json is not built (setup.py build_ext --inplace)"


def json_bytes(doc: Any, indent: int | None = None) -> bytes:
    """JSON as the Collector writes it: UTF-8, not \\u escapes."""
    separators = None if indent is not None else (",", ":")
    return json.dumps(doc, ensure_ascii=False, indent=indent, separators=separators).encode()


def outcome(decode: Callable[[bytes], SpanBatch | None], data: bytes) -> Any:
    try:
        batch = decode(data)
    except (DecodeError, OverflowError):
        return ("rejected",)
    if batch is None:
        return ("handed over",)
    return ("ok", snapshot(batch))


def reference(data: bytes, limits: DecodeLimits = LIMITS) -> Any:
    def python(raw: bytes) -> SpanBatch:
        oversized = len(raw) > limits.max_attribute_bytes
        return trace_json_to_batch(load_json(raw, limits), limits, oversized=oversized)

    return outcome(python, data)


def fast(data: bytes, limits: DecodeLimits = LIMITS) -> Any:
    return outcome(lambda raw: decode_trace_json_wire(raw, limits), data)


def assert_agrees(data: bytes, limits: DecodeLimits = LIMITS) -> Any:
    """The compiled decoder gives the reference's columns, or hands the request over."""
    got = fast(data, limits)
    if got != ("handed over",):
        assert got == reference(data, limits)
        check_codes(decode_trace_json_wire(data, limits))  # type: ignore[arg-type]
    return got


@st.composite
def plain_requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    """Requests as SDKs send them: integer status codes, any names, events, several resources."""
    resources = []
    for _ in range(draw(st.integers(1, 3))):
        svc = draw(st.sampled_from(["cart", "checkout", "é"]))
        spans = []
        for _ in range(draw(st.integers(0, 5))):
            attrs: dict[str, Any] = {"a": draw(PLAIN_VALUES)} if draw(st.booleans()) else {}
            for key in draw(st.lists(st.sampled_from(["http.response.status_code", "x"]))):
                attrs[key] = draw(st.integers(0, 599))
            if draw(st.booleans()):
                attrs["rpc.grpc.status_code"] = draw(st.integers(0, 16))
            spans.append(
                SpanSpec(
                    trace_id=draw(st.binary(min_size=16, max_size=16)),
                    span_id=draw(st.binary(min_size=8, max_size=8)),
                    name=draw(NAMES),
                    start_ns=draw(st.integers(0, 2**63 - 1)),
                    end_ns=draw(st.integers(0, 2**63 - 1)),
                    parent_span_id=draw(st.sampled_from([b"", b"\x02" * 8])),
                    kind=draw(st.integers(0, 5)),
                    status_code=draw(st.integers(0, 2)),
                    attributes=attrs,
                    events=[("exception", 5, {"exception.type": draw(NAMES)})]
                    if draw(st.booleans())
                    else [],
                )
            )
        resources.append(({"service.name": svc, "service.version": "1.0"}, spans))
    return trace_request(resources)


@SLOW
@given(plain_requests())
def test_proto_and_json_decode_to_identical_columns(req: ExportTraceServiceRequest) -> None:
    data = json_bytes(json.loads(to_otlp_json(req)))
    assert fast(data)[0] == "ok"  # the compiled path took it
    decoded = decode_message(RawMessage("t", 0, 0, data, "traces"), LIMITS)
    assert isinstance(decoded, Decoded) and decoded.spans is not None
    assert snapshot(decoded.spans) == snapshot(decode_trace_upb(req.SerializeToString()))
    assert_agrees(data)


def _vary(doc: Any, rnd: random.Random) -> Any:
    """The spellings OTLP/JSON allows on input: upper-case hex, enum names, int64 as numbers,
    unknown fields, any key order."""
    kinds = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
    codes = ["UNSET", "OK", "ERROR"]
    for rs in doc["resourceSpans"]:
        rs["schemaUrl"] = "https://opentelemetry.io/schemas/1.26.0"
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                if rnd.random() < 0.5:
                    s["traceId"] = s["traceId"].upper()
                if rnd.random() < 0.5:
                    s["kind"] = f"SPAN_KIND_{kinds[s.get('kind', 0)]}"
                if "status" in s and rnd.random() < 0.5:
                    s["status"]["code"] = f"STATUS_CODE_{codes[s['status'].get('code', 0)]}"
                if "startTimeUnixNano" in s and rnd.random() < 0.5:
                    s["startTimeUnixNano"] = int(s["startTimeUnixNano"])
                if rnd.random() < 0.5:
                    s["futureField"] = {"nested": [1, 2.5e-3, None, True, 'x\\u00e9"/']}
                items = list(s.items())
                rnd.shuffle(items)
                s.clear()
                s.update(items)
    return doc


@SLOW
@given(plain_requests(), st.randoms(use_true_random=False), st.sampled_from([None, 0, 2]))
def test_every_allowed_spelling_decodes_the_same(
    req: ExportTraceServiceRequest, rnd: random.Random, indent: int | None
) -> None:
    plain = json_bytes(json.loads(to_otlp_json(req)))
    varied = json_bytes(_vary(json.loads(plain), rnd), indent)
    assert fast(varied) == fast(plain) == reference(varied)
    assert fast(plain)[0] == "ok"


@SLOW
@given(plain_requests())
def test_snake_case_is_handed_to_the_python_decoder(req: ExportTraceServiceRequest) -> None:
    # rename keys in the parsed tree, so a span or attribute named "spanId" stays as it is
    snake = {"startTimeUnixNano": "start_time_unix_nano", "spanId": "span_id"}

    def rename(node: Any) -> Any:
        if isinstance(node, dict):
            return {snake.get(k, k): rename(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rename(v) for v in node]
        return node

    data = json_bytes(rename(json.loads(to_otlp_json(req))))
    if any(ss.spans for rs in req.resource_spans for ss in rs.scope_spans):
        assert fast(data) == ("handed over",)
    decoded = decode_message(RawMessage("t", 0, 0, data, "traces"), LIMITS)
    assert isinstance(decoded, Decoded) and decoded.spans is not None
    assert snapshot(decoded.spans) == snapshot(decode_trace_upb(req.SerializeToString()))


@SLOW
@given(requests(), st.sampled_from([LIMITS, DecodeLimits(max_attribute_bytes=200)]))
def test_odd_values_are_decoded_as_the_reference_does_or_handed_over(
    req: ExportTraceServiceRequest, limits: DecodeLimits
) -> None:
    # status codes as strings, floats, bytes, out of range; names with escapes; big attributes
    assert_agrees(json_bytes(json.loads(to_otlp_json(req))), limits)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_requests(), st.integers(0, 10**6), st.binary(min_size=0, max_size=3), st.booleans())
def test_damaged_json_is_never_accepted_where_the_reference_rejects_it(
    req: ExportTraceServiceRequest, at: int, junk: bytes, cut: bool
) -> None:
    data = json_bytes(json.loads(to_otlp_json(req)))
    at %= len(data)
    damaged = data[:at] if cut else data[:at] + junk + data[at + len(junk) :]
    got = assert_agrees(damaged)
    if reference(damaged) == ("rejected",):
        assert got == ("handed over",)


def test_entry_span_status_is_read_and_other_spans_are_not_judged_on_it() -> None:
    def span(kind: int, value: Any, sid: int) -> SpanSpec:
        attrs = {"http.response.status_code": value, "rpc.grpc.status_code": 0}
        return SpanSpec(b"\x01" * 16, bytes([sid]) * 8, "op", 1, 2, kind=kind, attributes=attrs)

    req = trace_request([({"service.name": "a"}, [span(2, 503, 1), span(3, 503, 2)])])
    data = to_otlp_json(req).encode()
    batch = decode_trace_json_wire(data, LIMITS)
    assert batch is not None
    assert batch.http_status.tolist() == [503, 0]
    assert batch.rpc_grpc_status.tolist() == [0, -1]
    assert batch.is_error.tolist() == [True, False]
    # a value the compiled walk does not read, on an entry span: the Python decoder's call
    odd = data.replace(b'{"intValue":"503"}', b'{"stringValue":"503"}', 1)
    assert decode_trace_json_wire(odd, LIMITS) is None
    assert reference(odd) == reference(data)
