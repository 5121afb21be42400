"""Decoders on the official OTLP examples, on generated requests, and on hostile input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.otlp_encode import PointSpec, SpanSpec, metrics_request, to_otlp_json, trace_request
from operators.otlp import (
    DecodeError,
    DecodeLimits,
    RawMessage,
    decode_message,
    decode_metrics_json,
    decode_metrics_proto,
    decode_trace_json,
    decode_trace_proto,
)
from sre_space.records import DeadLetter

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "otlp"
if not FIXTURES.exists():  # CI lays shared/ beside the clone; a developer has it at ../shared
    FIXTURES = Path("/work/shared/fixtures/otlp")


def _spans() -> list[SpanSpec]:
    return [
        SpanSpec(
            b"\x01" * 16,
            b"\x02" * 8,
            "GET /cart",
            1_000,
            3_000_000,
            kind=2,
            attributes={"http.response.status_code": 200, "http.route": "/cart"},
        ),
        SpanSpec(
            b"\x01" * 16,
            b"\x03" * 8,
            "SELECT",
            2_000,
            1_002_000,
            parent_span_id=b"\x02" * 8,
            kind=3,
            status_code=2,
            events=[("exception", 5, {"exception.type": "Boom"})],
        ),
        SpanSpec(
            b"\x04" * 16,
            b"\x05" * 8,
            "GET /cart",
            10,
            20,
            kind=2,
            attributes={"http.response.status_code": 503},
        ),
        SpanSpec(
            b"\x06" * 16,
            b"\x07" * 8,
            "Charge",
            10,
            20,
            kind=2,
            attributes={"rpc.grpc.status_code": 14},
        ),
    ]


def _request() -> ExportTraceServiceRequest:
    return trace_request(
        [({"service.name": "cart", "service.version": "1.2.3", "k8s.pod.name": "cart-0"}, _spans())]
    )


def test_official_trace_example_reads_hex_ids_not_base64() -> None:
    batch = decode_trace_json((FIXTURES / "trace.json").read_bytes())
    assert batch.trace_id == [bytes.fromhex("5B8EFFF798038103D269B633813FC60C")]
    assert batch.span_id == [bytes.fromhex("EEE19B7EC3C1B174")]
    assert batch.parent_span_id == [bytes.fromhex("EEE19B7EC3C1B173")]
    assert batch.service == ["my.service"]
    assert batch.operation == ["I'm a server span"]
    assert batch.kind.tolist() == [2]
    assert batch.duration_ns.tolist() == [1_000_000_000]
    assert batch.attribute(0, "my.span.attr") == "some value"


def test_official_metrics_example_keeps_gauges_and_sums() -> None:
    batch = decode_metrics_json((FIXTURES / "metrics.json").read_bytes())
    assert sorted(zip(batch.metric, batch.value, batch.is_sum, strict=True)) == [
        ("my.counter", 5.0, True),
        ("my.gauge", 10.0, False),
    ]


def test_proto_and_json_decode_to_the_same_columns() -> None:
    req = _request()
    a = decode_trace_proto(req.SerializeToString())
    b = decode_trace_json(to_otlp_json(req))
    fa, fb = (
        a.to_polars(["http.route", "k8s.pod.name"]),
        b.to_polars(["http.route", "k8s.pod.name"]),
    )
    assert fa.equals(fb)
    rows = fa.to_dicts()
    assert rows[0]["service_version"] == "1.2.3"
    assert rows[0]["http.route"] == "/cart" and rows[0]["k8s.pod.name"] == "cart-0"
    assert json.loads(rows[1]["events"])[0]["attributes"] == {"exception.type": "Boom"}
    # status ERROR, HTTP 5xx on a server span, non-OK gRPC: all errors; HTTP 200 is not
    assert fa["is_error"].to_list() == [False, True, True, True]


def test_json_variants_real_producers_write() -> None:
    doc = json.loads(to_otlp_json(_request()))
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["traceId"] = span["traceId"].upper()
    span["kind"] = "SPAN_KIND_SERVER"
    span["startTimeUnixNano"] = int(span["startTimeUnixNano"])  # number instead of string
    span["someFutureField"] = {"x": 1}
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["status"] = {"code": "STATUS_CODE_ERROR"}
    batch = decode_trace_json(json.dumps(doc))
    assert batch.trace_id[0] == b"\x01" * 16
    assert batch.kind.tolist()[0] == 2
    assert batch.status_code.tolist()[1] == 2
    assert batch.start_ns.tolist()[0] == 1_000


def test_metrics_proto_and_json_agree() -> None:
    req = metrics_request(
        [
            (
                {"service.name": "cart", "k8s.pod.name": "cart-0"},
                [
                    PointSpec("container.memory.usage", 1.5e8, 10, unit="By"),
                    PointSpec(
                        "k8s.container.restarts",
                        2,
                        10,
                        is_sum=True,
                        monotonic=True,
                        attributes={"reason": "OOMKilled"},
                    ),
                ],
            )
        ]
    )
    a = decode_metrics_proto(req.SerializeToString())
    b = decode_metrics_json(to_otlp_json(req))
    assert a == b
    assert a.instance == ["cart-0", "cart-0"]
    assert a.value == [1.5e8, 2.0]


@pytest.mark.parametrize(
    ("value", "signal", "reason"),
    [
        (b"\x00\xff garbage \x13\x37" * 5, "traces", "protobuf"),
        (b"{not json", "traces", "invalid JSON"),
        (b"[1, 2]", "auto", "must be an object"),
        (b'{"resourceSpans": [{"resource": {}, "scopeSpans": []}]}', "auto", "service.name"),
        (b'{"hello": 1}', "auto", "neither"),
    ],
)
def test_bad_input_becomes_a_dead_letter_with_a_reason(
    value: bytes, signal: str, reason: str
) -> None:
    out = decode_message(RawMessage("otlp_spans", 3, 42, value, signal), DecodeLimits())  # type: ignore[arg-type]
    assert isinstance(out, DeadLetter)
    assert reason in out.reason
    assert (out.source, out.partition, out.offset, out.size) == ("otlp_spans", 3, 42, len(value))


def test_truncated_protobuf_is_rejected() -> None:
    data = _request().SerializeToString()
    out = decode_message(
        RawMessage("otlp_spans", 0, 1, data[: len(data) - 7], "traces"), DecodeLimits()
    )
    assert isinstance(out, DeadLetter)


def test_bad_id_lengths_are_rejected() -> None:
    req = trace_request([({"service.name": "a"}, [SpanSpec(b"\x01" * 5, b"\x02" * 8, "x", 1, 2)])])
    with pytest.raises(DecodeError, match="trace_id"):
        decode_trace_proto(req.SerializeToString())
    doc = json.loads(to_otlp_json(_request()))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "AQEBAQEBAQEBAQEBAQEBAQ=="
    with pytest.raises(DecodeError, match="not hex"):
        decode_trace_json(json.dumps(doc))


def test_oversized_attribute_is_rejected_in_both_encodings() -> None:
    huge = "x" * (2 * 1024 * 1024)
    req = trace_request(
        [
            (
                {"service.name": "a"},
                [SpanSpec(b"\x01" * 16, b"\x02" * 8, "x", 1, 2, attributes={"blob": huge})],
            )
        ]
    )
    limits = DecodeLimits(max_message_bytes=16 * 1024 * 1024, max_attribute_bytes=1024 * 1024)
    with pytest.raises(DecodeError, match="'blob' is 2097152 bytes"):
        decode_trace_proto(req.SerializeToString(), limits)
    with pytest.raises(DecodeError, match="'blob'"):
        decode_trace_json(to_otlp_json(req), limits)
    with pytest.raises(DecodeError, match="max_message_bytes"):
        decode_trace_proto(req.SerializeToString(), DecodeLimits(max_message_bytes=1000))


span_strategy = st.builds(
    lambda tid, sid, name, start, dur, kind, status, http: SpanSpec(
        tid,
        sid,
        name,
        start,
        start + dur,
        kind=kind,
        status_code=status,
        attributes={"http.response.status_code": http} if http else {},
    ),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=8, max_size=8),
    st.text(max_size=20),
    st.integers(min_value=0, max_value=2**62),
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=2),
    st.integers(min_value=0, max_value=599),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=10), st.lists(span_strategy, max_size=8)),
        min_size=1,
        max_size=4,
    )
)
def test_generated_requests_round_trip_in_both_encodings(resources: list) -> None:
    req = trace_request([({"service.name": svc}, spans) for svc, spans in resources])
    expected = [(svc, s) for svc, spans in resources for s in spans]
    proto, js = req.SerializeToString(), to_otlp_json(req)
    # and through the flow's entry, which tells the encodings apart by their first bytes
    entry = [
        decode_message(RawMessage("t", 0, 0, data, "auto"), DecodeLimits())
        for data in (proto, js.encode())
    ]
    batches = [decode_trace_proto(proto), decode_trace_json(js)]
    for out in entry:
        assert not isinstance(out, DeadLetter), out.reason
        if expected:  # a request without spans decodes to no batch or an empty one
            assert out.spans is not None
            batches.append(out.spans)
    for batch in batches:
        assert len(batch) == len(expected)
        assert batch.service == [svc for svc, _ in expected]
        assert batch.operation == [s.name for _, s in expected]
        assert batch.trace_id == [s.trace_id for _, s in expected]
        assert batch.duration_ns.tolist() == [s.end_ns - s.start_ns for _, s in expected]
        want_err = [
            s.status_code == 2
            or (s.kind == 2 and s.attributes.get("http.response.status_code", 0) >= 500)
            for _, s in expected
        ]
        assert batch.is_error.tolist() == want_err


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_crash_the_decoder(data: bytes) -> None:
    out = decode_message(RawMessage("t", 0, 0, data, "traces"), DecodeLimits())
    assert out is not None
    assert isinstance(out, DeadLetter) or out.spans is not None
    assert np.all(out.spans.duration_ns >= 0) if not isinstance(out, DeadLetter) else True


def test_oversized_resource_or_event_attribute_is_rejected_on_both_proto_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from operators.otlp import proto_traces

    huge = "y" * 300_000
    limits = DecodeLimits(max_attribute_bytes=100_000)
    small = [SpanSpec(bytes([i]) * 16, bytes([i]) * 8, "op", 1, 2) for i in range(1, 40)]
    in_resource = trace_request([({"service.name": "a", "blob": huge}, small)])
    in_event = trace_request(
        [
            (
                {"service.name": "a"},
                [
                    *small,
                    SpanSpec(
                        b"\x09" * 16,
                        b"\x09" * 8,
                        "x",
                        1,
                        2,
                        events=[("exception", 1, {"stack": huge})],
                    ),
                ],
            )
        ]
    )
    fine = trace_request([({"service.name": "a"}, small * 50)])  # big request, small attributes
    for pure in ("0", "1"):
        monkeypatch.setenv("SRE_PURE_PYTHON", pure)
        with pytest.raises(DecodeError, match="resource attribute 'blob'"):
            proto_traces.decode_trace_proto(in_resource.SerializeToString(), limits)
        with pytest.raises(DecodeError, match="event 'exception'"):
            proto_traces.decode_trace_proto(in_event.SerializeToString(), limits)
        assert len(proto_traces.decode_trace_proto(fine.SerializeToString(), limits)) == 39 * 50


@pytest.mark.parametrize("first_resource_bytes", [123, 91])  # b"{" and b"["
@pytest.mark.parametrize("signal", ["auto", "traces", "metrics"])
def test_a_protobuf_request_that_starts_like_json_is_decoded(
    first_resource_bytes: int, signal: str
) -> None:
    # Field 1's tag is b"\n" and a one-byte length follows: a request whose first resource is
    # 123 or 91 bytes long (a small one, one span or point) starts with b"\n{" or b"\n[", which
    # reads as whitespace before JSON. It was dead-lettered as invalid JSON.
    metrics = signal == "metrics"
    for pad in range(200):
        name = "op" + "x" * pad
        if metrics:
            req = metrics_request([({"service.name": "svc"}, [PointSpec(name, 1.0, 10)])], scope="")
            first = req.resource_metrics[0].ByteSize()
        else:
            span = SpanSpec(b"\x01" * 16, b"\x02" * 8, name, 1_000, 2_000)
            req = trace_request([({"service.name": "svc"}, [span])], scope="")
            first = req.resource_spans[0].ByteSize()
        if first == first_resource_bytes:
            break
    data = req.SerializeToString()
    assert data[:2] == b"\n" + bytes([first_resource_bytes])
    out = decode_message(RawMessage("t", 0, 0, data, signal), DecodeLimits())  # type: ignore[arg-type]
    assert not isinstance(out, DeadLetter), out.reason
    if metrics:
        assert out.metrics is not None and out.metrics.metric == [name]
    else:
        assert out.spans is not None and out.spans.operation == [name]
    # JSON that fails keeps its own reason, not the protobuf's.
    bad = decode_message(RawMessage("t", 0, 0, b"\n{not json", "auto"), DecodeLimits())
    assert isinstance(bad, DeadLetter) and "invalid JSON" in bad.reason


# A metric is a gauge or a sum, never both: its kind follows from its name here.
_point = st.builds(
    lambda name, value, ts, unit, attrs: PointSpec(
        name, value, ts, unit=unit, is_sum=name.endswith("restarts"), attributes=attrs
    ),
    st.sampled_from(["cpu", "container.memory.usage", "k8s.container.restarts", "x" * 16]),
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
    st.integers(min_value=0, max_value=2**62),
    st.sampled_from(["", "By", "1"]),
    st.dictionaries(st.sampled_from(["state", "reason"]), st.text(max_size=8)),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=10), st.lists(_point, min_size=1, max_size=6)),
        min_size=1,
        max_size=4,
    )
)
def test_generated_metrics_decode_alike_from_both_encodings_through_the_entry(
    resources: list,
) -> None:
    req = metrics_request([({"service.name": svc}, points) for svc, points in resources])
    outs = [
        decode_message(RawMessage("t", 0, 0, data, "metrics"), DecodeLimits())
        for data in (req.SerializeToString(), to_otlp_json(req).encode())
    ]
    for out in outs:
        assert not isinstance(out, DeadLetter), out.reason
        assert out.metrics is not None
    proto, js = (out.metrics for out in outs if not isinstance(out, DeadLetter))
    assert proto == js
    assert sorted(proto.metric) == sorted(p.name for _, points in resources for p in points)
