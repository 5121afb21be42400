"""Write contract span frames and metric samples as OTLP/JSON, the way real producers vary it:
upper-case hex ids, 64-bit integers as strings or numbers, enums as names or integers."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

_KINDS = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
]
_FIXED = {
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "service_version",
    "operation",
    "kind",
    "status_code",
    "http_status",
    "rpc_grpc_status",
    "start_ns",
    "end_ns",
    "duration_ns",
    "is_error",
    "events",
}


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def spans_request(df: pl.DataFrame, style: int = 0) -> dict[str, Any]:
    """One ExportTraceServiceRequest (OTLP/JSON) holding every span of `df`."""
    resource_spans = []
    for (service, version), group in df.group_by(
        ["service", "service_version"], maintain_order=True
    ):
        spans = []
        for r in group.to_dicts():
            attrs = [_attr(k, v) for k, v in r.items() if k not in _FIXED and v]
            if r["http_status"]:
                attrs.append(_attr("http.response.status_code", int(r["http_status"])))
            if r["rpc_grpc_status"] >= 0:
                attrs.append(_attr("rpc.grpc.status_code", int(r["rpc_grpc_status"])))
            span: dict[str, Any] = {
                "traceId": r["trace_id"].upper() if style else r["trace_id"],
                "spanId": r["span_id"].upper() if style else r["span_id"],
                "parentSpanId": r["parent_span_id"],
                "name": r["operation"],
                "kind": _KINDS[r["kind"]] if style else r["kind"],
                "startTimeUnixNano": str(r["start_ns"]) if style else r["start_ns"],
                "endTimeUnixNano": str(r["end_ns"]) if style else r["end_ns"],
                "attributes": attrs,
                "status": {
                    "code": ("STATUS_CODE_ERROR" if style else 2) if r["status_code"] == 2 else 0
                },
                "unknownField": {"ignored": True},
            }
            if r["events"]:
                span["events"] = [
                    {
                        "name": ev["name"],
                        "timeUnixNano": str(ev.get("time_ns", r["start_ns"])),
                        "attributes": [
                            _attr(k, v) for k, v in (ev.get("attributes") or {}).items()
                        ],
                    }
                    for ev in json.loads(r["events"])
                ]
            spans.append(span)
        resource_spans.append(
            {
                "resource": {
                    "attributes": [
                        _attr("service.name", service),
                        _attr("service.version", version),
                    ]
                },
                "scopeSpans": [{"scope": {"name": "synth"}, "spans": spans}],
            }
        )
    return {"resourceSpans": resource_spans}


def metrics_request(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """One ExportMetricsServiceRequest with a gauge point per sample."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        by_service.setdefault(s["service"], []).append(
            {
                "name": s["metric"],
                "gauge": {
                    "dataPoints": [
                        {
                            "timeUnixNano": str(s["time_ns"]),
                            "asDouble": s["value"],
                            "attributes": [_attr(k, v) for k, v in s.get("attributes", {}).items()],
                        }
                    ]
                },
            }
        )
    return {
        "resourceMetrics": [
            {
                "resource": {"attributes": [_attr("service.name", svc)]},
                "scopeMetrics": [{"metrics": m}],
            }
            for svc, m in by_service.items()
        ]
    }
