"""Encoders: simulator spans and metric points to OTLP export requests.

Two outputs from the same records: protobuf messages (`ExportTraceServiceRequest`,
`ExportMetricsServiceRequest`; `.SerializeToString()` is what the Collector's Kafka exporter writes)
and OTLP/JSON dicts as the Collector's file exporter writes them: lowerCamelCase, ids in lowercase
hex (not protobuf-JSON's base64), 64-bit integers as decimal strings, enums as integers, default
values left out. The JSON is built directly rather than through `json_format`, which is an order of
magnitude slower; the tests check that both encodings describe the same request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from chaos import otlp_wire
from chaos.cluster import Pod
from chaos.metrics import DEFS, PodPoints
from chaos.requests import Span

SCOPE_NAME = "sre-space.chaos.shop"
SCOPE_VERSION = "0.1.0"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE


# -- values ----------------------------------------------------------------------------------------
def any_value(v: Any) -> AnyValue:
    """A Python scalar as an OTLP AnyValue (bool before int: bool is an int in Python)."""
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def json_value(v: Any) -> dict[str, Any]:
    """A Python scalar as an OTLP/JSON AnyValue (int64 as a decimal string)."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def _kvs(attrs: Iterable[tuple[str, Any]]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs]


def _json_kvs(attrs: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [{"key": k, "value": json_value(v)} for k, v in attrs]


def _group(items: Iterable[Any], pod_of: Any) -> dict[Pod, list[Any]]:
    groups: dict[Pod, list[Any]] = {}
    for item in items:
        groups.setdefault(pod_of(item), []).append(item)
    return groups


# -- traces ----------------------------------------------------------------------------------------
def traces_bytes(spans: Sequence[Span]) -> bytes:
    """Spans as a serialized ExportTraceServiceRequest (what the Collector's Kafka exporter writes)."""
    return otlp_wire.traces_bytes(spans, SCOPE_NAME, SCOPE_VERSION, SCHEMA_URL)


def traces_proto(spans: Sequence[Span]) -> ExportTraceServiceRequest:
    """Spans as one ExportTraceServiceRequest, one ResourceSpans per pod."""
    return ExportTraceServiceRequest.FromString(traces_bytes(spans))


def traces_proto_reference(spans: Sequence[Span]) -> ExportTraceServiceRequest:
    """The same request built through the protobuf message API (slow; the tests' reference)."""
    req = ExportTraceServiceRequest()
    for pod, group in _group(spans, lambda s: s[3]).items():
        rs = req.resource_spans.add(schema_url=SCHEMA_URL)
        rs.resource.attributes.extend(_kvs(pod.resource))
        ss = rs.scope_spans.add()
        ss.scope.name = SCOPE_NAME
        ss.scope.version = SCOPE_VERSION
        for tid, sid, pid, _pod, name, kind, start, end, status, msg, attrs, events in group:
            sp = ss.spans.add(
                trace_id=tid.to_bytes(16, "big"),
                span_id=sid.to_bytes(8, "big"),
                parent_span_id=pid.to_bytes(8, "big") if pid else b"",
                name=name,
                kind=kind,
                start_time_unix_nano=start,
                end_time_unix_nano=end,
                attributes=_kvs(attrs),
            )
            if events:
                for ev_name, ev_time, ev_attrs in events:
                    sp.events.add(time_unix_nano=ev_time, name=ev_name, attributes=_kvs(ev_attrs))
            if status:
                sp.status.code = status
                if msg:
                    sp.status.message = msg
    return req


def traces_json(spans: Sequence[Span]) -> dict[str, Any]:
    """Spans as one OTLP/JSON trace export request (file-exporter shape, hex ids), as data."""
    doc: dict[str, Any] = json.loads(traces_json_line(spans))
    return doc


# Serialized `{"key":..,"value":{..}}` fragments for attribute pairs that repeat (routes, methods,
# status codes, flags...): the JSON line is assembled from strings instead of through json.dumps,
# which is where most of a recording's time went. Keyed by type too, since True == 1 in Python.
_KV_CACHE: dict[tuple[str, type, Any], str] = {}
_KV_CACHE_MAX = 200_000
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _kv_json(key: str, v: Any) -> str:
    ck = (key, type(v), v)
    frag = _KV_CACHE.get(ck)
    if frag is not None:
        return frag
    if isinstance(v, bool):
        value = '{"boolValue":true}' if v else '{"boolValue":false}'
    elif isinstance(v, int):
        value = f'{{"intValue":"{v}"}}'
    elif isinstance(v, float):
        value = f'{{"doubleValue":{_dumps(v)}}}'
    else:
        value = f'{{"stringValue":{_dumps(str(v))}}}'
    frag = f'{{"key":{_dumps(key)},"value":{value}}}'
    if not isinstance(v, float):  # floats (cart values) rarely repeat: do not grow the cache
        if len(_KV_CACHE) >= _KV_CACHE_MAX:
            _KV_CACHE.clear()
        _KV_CACHE[ck] = frag
    return frag


def _kvs_json(attrs: Iterable[tuple[str, Any]]) -> str:
    return "[" + ",".join([_kv_json(k, v) for k, v in attrs]) + "]"


_SCOPE_JSON = _dumps({"name": SCOPE_NAME, "version": SCOPE_VERSION})
_SCHEMA_JSON = _dumps(SCHEMA_URL)


def traces_json_line(spans: Sequence[Span]) -> str:
    """Spans as one OTLP/JSON line (no newline); `json.loads` of it equals `traces_json`."""
    out = []
    for pod, group in _group(spans, lambda s: s[3]).items():
        js = []
        for tid, sid, pid, _pod, name, kind, start, end, status, msg, attrs, events in group:
            parts = [f'{{"traceId":"{tid:032x}","spanId":"{sid:016x}"']
            if pid:
                parts.append(f',"parentSpanId":"{pid:016x}"')
            parts.append(
                f',"name":{_dumps(name)},"kind":{kind},"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}"'
            )
            if attrs:
                parts.append(',"attributes":' + _kvs_json(attrs))
            if events:
                evs = ",".join(
                    f'{{"timeUnixNano":"{t}","name":{_dumps(n)},"attributes":{_kvs_json(a)}}}'
                    for n, t, a in events
                )
                parts.append(f',"events":[{evs}]')
            if status:
                if msg:
                    parts.append(f',"status":{{"message":{_dumps(msg)},"code":{status}}}')
                else:
                    parts.append(f',"status":{{"code":{status}}}')
            parts.append("}")
            js.append("".join(parts))
        out.append(
            f'{{"resource":{{"attributes":{_kvs_json(pod.resource)}}},'
            f'"scopeSpans":[{{"scope":{_SCOPE_JSON},"spans":[{",".join(js)}]}}],'
            f'"schemaUrl":{_SCHEMA_JSON}}}'
        )
    return '{"resourceSpans":[' + ",".join(out) + "]}"


# -- metrics ---------------------------------------------------------------------------------------
def _metric_groups(pp: PodPoints) -> dict[str, list[tuple[Any, tuple[tuple[str, Any], ...]]]]:
    groups: dict[str, list[tuple[Any, tuple[tuple[str, Any], ...]]]] = {}
    for name, value, attrs in pp.points:
        groups.setdefault(name, []).append((value, attrs))
    return groups


def metrics_proto(snapshot: Sequence[PodPoints], time_ns: int) -> ExportMetricsServiceRequest:
    """One snapshot of data points as an ExportMetricsServiceRequest, one ResourceMetrics per pod."""
    req = ExportMetricsServiceRequest()
    for pp in snapshot:
        rm = req.resource_metrics.add(schema_url=SCHEMA_URL)
        rm.resource.attributes.extend(_kvs(pp.pod.resource))
        sm = rm.scope_metrics.add()
        sm.scope.name = SCOPE_NAME
        sm.scope.version = SCOPE_VERSION
        for name, points in _metric_groups(pp).items():
            spec = DEFS[name]
            m = sm.metrics.add(name=name, description=spec.description, unit=spec.unit)
            if spec.kind == "sum":
                m.sum.aggregation_temporality = CUMULATIVE
                m.sum.is_monotonic = spec.monotonic
                container = m.sum.data_points
            else:
                container = m.gauge.data_points
            for value, attrs in points:
                dp = container.add(time_unix_nano=time_ns, attributes=_kvs(attrs))
                if spec.kind == "sum":
                    dp.start_time_unix_nano = pp.start_ns
                if spec.is_int:
                    dp.as_int = int(value)
                else:
                    dp.as_double = float(value)
    return req


def metrics_json(snapshot: Sequence[PodPoints], time_ns: int) -> dict[str, Any]:
    """One snapshot of data points as an OTLP/JSON metrics export request."""
    out = []
    t = str(time_ns)
    for pp in snapshot:
        ms = []
        for name, points in _metric_groups(pp).items():
            spec = DEFS[name]
            dps = []
            for value, attrs in points:
                dp: dict[str, Any] = {}
                if attrs:
                    dp["attributes"] = _json_kvs(attrs)
                if spec.kind == "sum":
                    dp["startTimeUnixNano"] = str(pp.start_ns)
                dp["timeUnixNano"] = t
                if spec.is_int:
                    dp["asInt"] = str(int(value))
                else:
                    dp["asDouble"] = float(value)
                dps.append(dp)
            m: dict[str, Any] = {"name": name, "description": spec.description, "unit": spec.unit}
            if spec.kind == "sum":
                m["sum"] = {"dataPoints": dps, "aggregationTemporality": int(CUMULATIVE)}
                if spec.monotonic:
                    m["sum"]["isMonotonic"] = True
            else:
                m["gauge"] = {"dataPoints": dps}
            ms.append(m)
        out.append(
            {
                "resource": {"attributes": _json_kvs(pp.pod.resource)},
                "scopeMetrics": [
                    {"scope": {"name": SCOPE_NAME, "version": SCOPE_VERSION}, "metrics": ms}
                ],
                "schemaUrl": SCHEMA_URL,
            }
        )
    return {"resourceMetrics": out}


def dumps(doc: dict[str, Any]) -> str:
    """One JSON line (compact, deterministic)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
