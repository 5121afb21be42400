"""The version a resource reports: `service.version`, else its container image's tag (semantic
conventions), the same in every span decoder; a Deployment's replica counts from the Kubernetes
cluster receiver are the Deployment's service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bench.otlp_encode import PointSpec, SpanSpec, metrics_request, to_otlp_json, trace_request
from operators.otlp import DecodeLimits
from operators.otlp.json_traces import decode_trace_json
from operators.otlp.json_wire import HAVE_JSON_WIRE, decode_trace_json_wire
from operators.otlp.metrics import decode_metrics_json, decode_metrics_proto
from operators.otlp.proto_traces import decode_trace_upb
from operators.otlp.spans import SpanBatch
from operators.otlp.values import image_tag
from operators.otlp.wire import HAVE_WIRE, decode_trace_wire

LIMITS = DecodeLimits()

# (resource attributes besides service.name, the version its spans report)
RESOURCES: list[tuple[dict[str, Any], str]] = [
    ({"service.version": "1.4.2", "container.image.tags": ["9.9.9"]}, "1.4.2"),
    ({"container.image.tags": ["2.3.1", "latest"]}, "2.3.1"),
    ({"container.image.name": "registry.example.com:5000/docs/inkwell:2.4.0"}, "2.4.0"),
    ({"container.image.name": "registry.example.com:5000/docs/inkwell"}, ""),
    ({"container.image.name": "registry.example.com/inkwell@sha256:" + "ab" * 32}, ""),
    ({"service.version": "", "container.image.tags": ["3.0.0"]}, "3.0.0"),
    ({}, ""),
]


def _request() -> bytes:
    resources = []
    for i, (attrs, _want) in enumerate(RESOURCES):
        span = SpanSpec(
            trace_id=bytes([i + 1]) * 16,
            span_id=bytes([i + 1]) * 8,
            name="GET /documents",
            start_ns=1_000 + i,
            end_ns=2_000 + i,
        )
        resources.append(({"service.name": f"svc{i}", **attrs}, [span]))
    return trace_request(resources).SerializeToString()


def _json(data: bytes) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    return to_otlp_json(ExportTraceServiceRequest.FromString(data)).encode()


def _wire_json(data: bytes) -> SpanBatch:
    batch = decode_trace_json_wire(_json(data), LIMITS)
    assert batch is not None, "the compiled JSON decoder handed the request back"
    return batch


DECODERS: list[tuple[str, Callable[[bytes], SpanBatch]]] = [
    ("upb", lambda d: decode_trace_upb(d, LIMITS)),
    ("wire", lambda d: decode_trace_wire(d, LIMITS)),
    ("json", lambda d: decode_trace_json(_json(d), LIMITS)),
    ("json_wire", _wire_json),
]


@pytest.mark.parametrize("decode", [d for _, d in DECODERS], ids=[n for n, _ in DECODERS])
def test_every_span_decoder_reports_service_version_else_the_image_tag(
    decode: Callable[[bytes], SpanBatch],
) -> None:
    # Never skip: a decoder that is not built must fail, not look green.
    assert HAVE_WIRE and HAVE_JSON_WIRE
    batch = decode(_request())
    got = dict(zip(batch.service, batch.service_version, strict=True))
    assert got == {f"svc{i}": want for i, (_a, want) in enumerate(RESOURCES)}


def test_image_tag_reads_the_semantic_convention_attributes() -> None:
    assert image_tag({"container.image.tags": "1.0"}) == "1.0"
    assert image_tag({"container.image.tags": ["", "1.1"]}) == "1.1"
    assert image_tag({"container.image.name": "inkwell:1.2"}) == "1.2"
    assert image_tag({"container.image.name": "localhost:5000/inkwell"}) == ""
    assert image_tag({"container.image.tags": [], "container.image.name": "a/b:1.3"}) == "1.3"
    assert image_tag({"container.image.name": 7}) == ""


@pytest.mark.parametrize("encoding", ["proto", "json"])
def test_deployment_metrics_without_a_service_name_belong_to_the_deployment(encoding: str) -> None:
    point = PointSpec(name="k8s.deployment.available", value=4.0, ts_ns=5_000)
    req = metrics_request(
        [
            ({"k8s.deployment.name": "inkwell", "k8s.namespace.name": "docs"}, [point]),
            ({"service.name": "quill", "k8s.deployment.name": "quill-v2"}, [point]),
        ]
    )
    if encoding == "proto":
        batch = decode_metrics_proto(req.SerializeToString(), LIMITS)
    else:
        batch = decode_metrics_json(to_otlp_json(req), LIMITS)
    assert batch.service == ["inkwell", "quill"]  # service.name wins where it is set
    assert batch.metric == ["k8s.deployment.available"] * 2 and batch.value == [4.0, 4.0]
