"""OTLP/JSON trace requests to a SpanBatch, as real producers write them.

OTLP/JSON differs from protobuf's generic JSON mapping: trace and span ids are hex (either case),
not base64. 64-bit integers come as strings or numbers; enums as integers or their names; unknown
fields are ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from operators.otlp.errors import DecodeError, DecodeLimits
from operators.otlp.spans import (
    ENTRY_KINDS,
    HTTP_STATUS_KEYS,
    RPC_STATUS_KEY,
    AttributeReader,
    AttributesReader,
    EventsReader,
    SpanBatch,
    SpanColumns,
)
from operators.otlp.values import int_or, json_any, json_attrs, resource_version, value_size

SPAN_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def load_json(data: bytes | str, limits: DecodeLimits) -> dict[str, Any]:
    """Parse one OTLP/JSON document, bounded in size; DecodeError on anything else."""
    limits.check_size(data)
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"OTLP/JSON must be an object, got {type(obj).__name__}")
    return obj


def decode_trace_json(data: bytes | str, limits: DecodeLimits | None = None) -> SpanBatch:
    """Decode an OTLP/JSON ExportTraceServiceRequest (or Jaeger v3 `result` wrapper).

    Uses the compiled decoder when it is built and takes the request (unless SRE_PURE_PYTHON=1).
    """
    limits = limits or DecodeLimits()
    if isinstance(data, bytes) and os.environ.get("SRE_PURE_PYTHON") != "1":
        from operators.otlp import json_wire

        limits.check_size(data)
        batch = json_wire.decode_trace_json_wire(data, limits)
        if batch is not None:
            return batch
    obj = load_json(data, limits)
    return trace_json_to_batch(obj, limits, oversized=len(data) > limits.max_attribute_bytes)


def trace_json_to_batch(
    obj: dict[str, Any], limits: DecodeLimits | None = None, *, oversized: bool = True
) -> SpanBatch:
    """Columns from a parsed OTLP/JSON trace request."""
    limits = limits or DecodeLimits()
    if "result" in obj and isinstance(obj["result"], dict):
        obj = obj["result"]  # Jaeger API v3 wraps the request
    resource_spans = _get(obj, "resourceSpans", "resource_spans")
    if resource_spans is None:
        raise DecodeError("OTLP/JSON trace request has no resourceSpans")
    if not isinstance(resource_spans, list):
        raise DecodeError("resourceSpans must be a list")

    cols = SpanColumns()
    http: list[int] = []
    rpc: list[int] = []
    flat: list[dict[str, Any]] = []

    try:
        for r_index, rs in enumerate(resource_spans):
            resource = rs.get("resource") or {}
            attrs = json_attrs(resource.get("attributes"))
            if oversized:
                _check_sizes(attrs, limits.max_attribute_bytes, "resource")
            svc = attrs.get("service.name")
            if not isinstance(svc, str) or not svc:
                raise DecodeError(
                    f"resourceSpans[{r_index}] has no service.name resource attribute"
                )
            ver = resource_version(attrs)
            scopes = _get(rs, "scopeSpans", "scope_spans") or []
            for ss in scopes:
                for s in ss.get("spans") or []:
                    flat.append(s)
                    cols.service.append(svc)
                    cols.version.append(ver)
                    cols.res_attrs.append(attrs)
                    cols.names.append(str(s.get("name", "")))
                    kind = _enum(s.get("kind", 0), SPAN_KINDS, "kind")
                    cols.kinds.append(kind)
                    st = s.get("status") or {}
                    cols.status.append(_enum(st.get("code", 0), STATUS_CODES, "status.code"))
                    start = _get(s, "startTimeUnixNano", "start_time_unix_nano")
                    cols.starts.append(int(start or 0))
                    cols.ends.append(int(_get(s, "endTimeUnixNano", "end_time_unix_nano") or 0))
                    cols.trace_ids.append(_hex_id(_get(s, "traceId", "trace_id"), 16, "traceId"))
                    cols.span_ids.append(_hex_id(_get(s, "spanId", "span_id"), 8, "spanId"))
                    parent = _get(s, "parentSpanId", "parent_span_id")
                    cols.parents.append(_hex_id(parent, 8, "parentSpanId") if parent else b"")
                    h, g = 0, -1
                    span_attrs = s.get("attributes")
                    if oversized and span_attrs:
                        _check_sizes(json_attrs(span_attrs), limits.max_attribute_bytes, "span")
                    if kind in ENTRY_KINDS and span_attrs:
                        for kv in span_attrs:
                            key = kv.get("key")
                            if key in HTTP_STATUS_KEYS:
                                h = int_or(json_any(kv.get("value")), 0)
                            elif key == RPC_STATUS_KEY:
                                g = int_or(json_any(kv.get("value")), -1)
                    http.append(h)
                    rpc.append(g)
    except DecodeError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        raise DecodeError(f"malformed OTLP/JSON trace request: {exc!r}") from None

    status = (np.asarray(http, dtype=np.int32), np.asarray(rpc, dtype=np.int32))
    return cols.batch(status, json_readers(flat.__getitem__))


def json_readers(
    span_at: Callable[[int], dict[str, Any]],
) -> tuple[AttributeReader, AttributesReader, EventsReader]:
    """The attribute, attributes and events readers of a SpanBatch over parsed OTLP/JSON spans."""

    def read_attr(i: int, key: str) -> Any:
        for kv in span_at(i).get("attributes") or []:
            if kv.get("key") == key:
                return json_any(kv.get("value"))
        return None

    def read_attrs(i: int, wanted: frozenset[str]) -> dict[str, Any]:
        return {
            kv.get("key"): json_any(kv.get("value"))
            for kv in span_at(i).get("attributes") or []
            if kv.get("key") in wanted
        }

    def read_events(i: int) -> list[dict[str, Any]]:
        return [
            {
                "name": e.get("name", ""),
                "time_ns": int(_get(e, "timeUnixNano", "time_unix_nano") or 0),
                "attributes": json_attrs(e.get("attributes")),
            }
            for e in span_at(i).get("events") or []
        ]

    return read_attr, read_attrs, read_events


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _enum(value: Any, names: dict[str, int], what: str) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value in names:
            return names[value]
        if value.isdigit():
            return int(value)
    raise DecodeError(f"unknown {what} {value!r}; expected an integer or one of {sorted(names)}")


def _hex_id(value: Any, size: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise DecodeError(f"{what} must be a hex string, got {type(value).__name__}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise DecodeError(
            f"{what} {value[:64]!r} is not hex (OTLP/JSON ids are hex, not base64)"
        ) from None
    if len(raw) != size:
        raise DecodeError(f"{what} {value[:64]!r} is {len(raw)} bytes; OTLP requires {size}")
    return raw


def _check_sizes(attrs: dict[str, Any], limit: int, where: str) -> None:
    for key, value in attrs.items():
        size = value_size(value)
        if size > limit:
            raise DecodeError(
                f"{where} attribute {key!r} is {size} bytes, over max_attribute_bytes={limit}"
            )
