"""Build real OTLP export requests: protobuf bytes, and OTLP/JSON as the Collector writes it.

The synthetic workloads' and the tests' encoder (the shop encodes its own batches), so that what
the pipeline reads in a benchmark or a test is what a real OpenTelemetry SDK or Collector sends.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


@dataclass(slots=True)
class SpanSpec:
    """One span to encode; ids are raw bytes (16 and 8), times in ns since the epoch."""

    trace_id: bytes
    span_id: bytes
    name: str
    start_ns: int
    end_ns: int
    parent_span_id: bytes = b""
    kind: int = 2
    status_code: int = 0
    status_message: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[tuple[str, int, Mapping[str, Any]]] = ()


@dataclass(slots=True)
class PointSpec:
    """One gauge or sum data point."""

    name: str
    value: float
    ts_ns: int
    unit: str = ""
    is_sum: bool = False
    monotonic: bool = False
    attributes: Mapping[str, Any] = field(default_factory=dict)


def set_any(target: AnyValue, value: Any) -> None:
    """Fill an AnyValue from a Python value."""
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, list | tuple):
        for v in value:
            set_any(target.array_value.values.add(), v)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            kv = target.kvlist_value.values.add()
            kv.key = k
            set_any(kv.value, v)
    else:
        target.string_value = str(value)


def add_attributes(target: Any, attributes: Mapping[str, Any]) -> None:
    """Append key/values to a repeated KeyValue field."""
    for k, v in attributes.items():
        kv: KeyValue = target.add()
        kv.key = k
        set_any(kv.value, v)


def trace_request(
    resources: Iterable[tuple[Mapping[str, Any], Sequence[SpanSpec]]],
    scope: str = "sre-space",
) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest with one ResourceSpans per (resource attributes, spans)."""
    req = ExportTraceServiceRequest()
    for res_attrs, spans in resources:
        rs = req.resource_spans.add()
        add_attributes(rs.resource.attributes, res_attrs)
        ss = rs.scope_spans.add()
        ss.scope.name = scope
        for sp in spans:
            s = ss.spans.add()
            s.trace_id = sp.trace_id
            s.span_id = sp.span_id
            if sp.parent_span_id:
                s.parent_span_id = sp.parent_span_id
            s.name = sp.name
            s.kind = sp.kind
            s.start_time_unix_nano = sp.start_ns
            s.end_time_unix_nano = sp.end_ns
            if sp.status_code:
                s.status.code = sp.status_code
                s.status.message = sp.status_message
            add_attributes(s.attributes, sp.attributes)
            for ev_name, ev_ts, ev_attrs in sp.events:
                e = s.events.add()
                e.name = ev_name
                e.time_unix_nano = ev_ts
                add_attributes(e.attributes, ev_attrs)
    return req


def metrics_request(
    resources: Iterable[tuple[Mapping[str, Any], Sequence[PointSpec]]],
    scope: str = "sre-space",
) -> ExportMetricsServiceRequest:
    """An ExportMetricsServiceRequest: one metric per point name and resource, gauges or sums."""
    req = ExportMetricsServiceRequest()
    for res_attrs, points in resources:
        rm = req.resource_metrics.add()
        add_attributes(rm.resource.attributes, res_attrs)
        sm = rm.scope_metrics.add()
        sm.scope.name = scope
        metrics: dict[str, Any] = {}
        for p in points:
            m = metrics.get(p.name)
            if m is None:
                m = metrics[p.name] = sm.metrics.add()
                m.name = p.name
                m.unit = p.unit
                if p.is_sum:
                    m.sum.aggregation_temporality = 2  # cumulative
                    m.sum.is_monotonic = p.monotonic
            dp = m.sum.data_points.add() if p.is_sum else m.gauge.data_points.add()
            dp.time_unix_nano = p.ts_ns
            if p.is_sum and p.monotonic:
                dp.as_int = round(p.value)
            else:
                dp.as_double = float(p.value)
            add_attributes(dp.attributes, p.attributes)
    return req


def to_otlp_json(req: ExportTraceServiceRequest | ExportMetricsServiceRequest) -> str:
    """OTLP/JSON as the Collector's file exporter writes it: hex ids, integer enums, one line."""
    obj = MessageToDict(req, use_integers_for_enums=True)
    for rs in obj.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                _hex_ids(s)
                for link in s.get("links", []):
                    _hex_ids(link)
    return json.dumps(obj, separators=(",", ":"))


def _hex_ids(obj: dict[str, Any]) -> None:
    # protobuf's JSON mapping writes bytes as base64; OTLP/JSON requires hex.
    for key in _ID_FIELDS:
        if key in obj:
            obj[key] = base64.b64decode(obj[key]).hex()
