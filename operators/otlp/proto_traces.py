"""ExportTraceServiceRequest (otlp_proto bytes) to a SpanBatch, one pass per scope, columnar.

Fixed fields are pulled with one list comprehension per column over a scope's spans (C-speed
iteration over upb messages). The per-span attribute walk, the expensive part, runs only for
server and consumer spans, whose HTTP/gRPC status decides their error flag, and is put off until
the status is read when the raw bytes prove that no span carries an error code.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError as ProtoDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from operators.otlp.errors import DecodeError, DecodeLimits
from operators.otlp.spans import (
    ENTRY_KINDS,
    HTTP_STATUS_KEYS,
    RPC_STATUS_KEY,
    SpanBatch,
    SpanColumns,
)
from operators.otlp.values import int_or, proto_any, proto_attrs, resource_version, value_size


def parse_trace_request(data: bytes, limits: DecodeLimits) -> ExportTraceServiceRequest:
    """Parse and sanity-check the bytes; raise DecodeError with a reason."""
    limits.check_size(data)
    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(data)
    except ProtoDecodeError as exc:
        raise DecodeError(f"invalid ExportTraceServiceRequest protobuf: {exc}") from None
    if data and not req.resource_spans:
        # Random bytes can parse as unknown fields only; a real request has resource spans.
        raise DecodeError(
            f"{len(data)} bytes parsed to an ExportTraceServiceRequest with no resourceSpans "
            "(wrong message type or garbage)"
        )
    if len(data) > limits.max_attribute_bytes:
        _check_attribute_sizes(req, limits.max_attribute_bytes)
    return req


def decode_trace_proto(data: bytes, limits: DecodeLimits | None = None) -> SpanBatch:
    """Decode otlp_proto bytes into a SpanBatch; DecodeError names what is wrong.

    Uses the compiled wire decoder when it is built (unless SRE_PURE_PYTHON=1), else upb.
    """
    from operators.otlp import wire

    if wire.use_wire():
        return wire.decode_trace_wire(data, limits or DecodeLimits())
    return decode_trace_upb(data, limits)


def decode_trace_upb(data: bytes, limits: DecodeLimits | None = None) -> SpanBatch:
    """decode_trace_proto through protobuf's upb parser (the fallback, and the tests' oracle)."""
    req = parse_trace_request(data, limits or DecodeLimits())
    return trace_request_to_batch(req, error_codes_possible=not status_codes_clean(data))


# A KeyValue holding a status key whose AnyValue is an int_value that cannot mean an error:
# HTTP below 500 (varint: one byte, or two bytes up to 499), gRPC exactly 0.
_CLEAN_STATUS = {
    b"http.response.status_code": re.compile(
        rb"\x0a\x19http\.response\.status_code\x12[\x02\x03]\x18"
        rb"(?:[\x00-\x7f]|[\x80-\xff][\x01\x02]|[\x80-\xf3]\x03)"
    ),
    b"http.status_code": re.compile(
        rb"\x0a\x10http\.status_code\x12[\x02\x03]\x18"
        rb"(?:[\x00-\x7f]|[\x80-\xff][\x01\x02]|[\x80-\xf3]\x03)"
    ),
    b"rpc.grpc.status_code": re.compile(rb"\x0a\x14rpc\.grpc\.status_code\x12\x02\x18\x00"),
}


def status_codes_clean(data: bytes) -> bool:
    """True when the raw request proves that no span carries an HTTP 5xx or a non-OK gRPC code.

    Every occurrence of a status key in the bytes must be a KeyValue with a harmless int value;
    anything else (a 5xx, a string value, the key's text inside some other value) says "maybe",
    and the decoder then walks the attributes. So the shortcut never changes a result.
    """
    for key, clean in _CLEAN_STATUS.items():
        total = data.count(key)
        if total and total != len(clean.findall(data)):
            return False
    return True


def trace_request_to_batch(
    req: ExportTraceServiceRequest, *, error_codes_possible: bool = True
) -> SpanBatch:
    """Columns from a parsed request; the attribute walk runs only if error codes are possible."""
    cols = SpanColumns()
    flat: list[Any] = []

    for r_index, rs in enumerate(req.resource_spans):
        attrs = proto_attrs(rs.resource.attributes)
        svc = attrs.get("service.name")
        if not isinstance(svc, str) or not svc:
            raise DecodeError(f"resourceSpans[{r_index}] has no service.name resource attribute")
        ver = resource_version(attrs)
        for ss in rs.scope_spans:
            # One pass over the upb container; the comprehensions then walk a plain list.
            spans = list(ss.spans)
            n = len(spans)
            if n == 0:
                continue
            flat.extend(spans)
            cols.service.extend([svc] * n)
            cols.version.extend([ver] * n)
            cols.res_attrs.extend([attrs] * n)
            cols.names.extend([s.name for s in spans])
            cols.kinds.extend([s.kind for s in spans])
            cols.status.extend([s.status.code for s in spans])
            cols.starts.extend([s.start_time_unix_nano for s in spans])
            cols.ends.extend([s.end_time_unix_nano for s in spans])
            cols.trace_ids.extend([s.trace_id for s in spans])
            cols.span_ids.extend([s.span_id for s in spans])
            cols.parents.extend([s.parent_span_id for s in spans])

    _check_ids(cols.trace_ids, 16, "trace_id")
    _check_ids(cols.span_ids, 8, "span_id")

    def load_status() -> tuple[np.ndarray, np.ndarray]:
        return _scan_status(flat, cols.kinds)

    def read_attr(i: int, key: str) -> Any:
        for kv in flat[i].attributes:
            if kv.key == key:
                return proto_any(kv.value)
        return None

    def read_attrs(i: int, wanted: frozenset[str]) -> dict[str, Any]:
        return {kv.key: proto_any(kv.value) for kv in flat[i].attributes if kv.key in wanted}

    def read_events(i: int) -> list[dict[str, Any]]:
        return [
            {"name": e.name, "time_ns": e.time_unix_nano, "attributes": proto_attrs(e.attributes)}
            for e in flat[i].events
        ]

    status = load_status() if error_codes_possible else (None, None)
    return cols.batch(status, (read_attr, read_attrs, read_events), load_status)


def _scan_status(flat: list[Any], kinds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """HTTP and gRPC status of entry spans: the per-span attribute walk."""
    http: list[int] = []
    rpc: list[int] = []
    for s, kind in zip(flat, kinds, strict=True):
        h, g = 0, -1
        if kind in ENTRY_KINDS:
            # The last occurrence of a key wins, and only it is converted (as the C decoder does).
            hv = gv = None
            for kv in s.attributes:
                key = kv.key
                if key in HTTP_STATUS_KEYS:
                    hv = kv.value
                elif key == RPC_STATUS_KEY:
                    gv = kv.value
            if hv is not None:
                h = hv.int_value if hv.HasField("int_value") else _status_int(hv, 0)
            if gv is not None:
                g = gv.int_value if gv.HasField("int_value") else _status_int(gv, -1)
        http.append(h)
        rpc.append(g)
    return np.asarray(http, dtype=np.int32), np.asarray(rpc, dtype=np.int32)


def _status_int(value: Any, default: int) -> int:
    try:
        return int_or(proto_any(value), default)
    except OverflowError:
        raise DecodeError("status code attribute is an infinite double") from None


def _check_ids(ids: list[bytes], size: int, what: str) -> None:
    if not ids or set(map(len, ids)) == {size}:
        return
    bad = next((i for i, v in enumerate(ids) if len(v) != size), None)
    if bad is not None:
        raise DecodeError(f"span {bad} has a {len(ids[bad])}-byte {what}; OTLP requires {size}")


def _check_attribute_sizes(req: ExportTraceServiceRequest, limit: int) -> None:
    # An attribute is no bigger than the message holding it: only walk the rare span or resource
    # whose encoded size is over the limit (ByteSize is computed in C).
    for rs in req.resource_spans:
        if rs.resource.ByteSize() > limit:
            check_attribute_sizes(rs.resource.attributes, limit, "resource")
        for ss in rs.scope_spans:
            for s in ss.spans:
                if s.ByteSize() > limit:
                    check_span_attribute_sizes(s, limit)


def check_span_attribute_sizes(span: Any, limit: int) -> None:
    """DecodeError if one of the span's (or its events') attributes is over `limit` bytes."""
    check_attribute_sizes(span.attributes, limit, f"span {span.name!r}")
    for e in span.events:
        check_attribute_sizes(e.attributes, limit, f"event {e.name!r} of span {span.name!r}")


def check_attribute_sizes(kvs: Any, limit: int, where: str) -> None:
    for kv in kvs:
        size = value_size(proto_any(kv.value))
        if size > limit:
            raise DecodeError(
                f"{where} attribute {kv.key!r} is {size} bytes, over max_attribute_bytes={limit}"
            )
