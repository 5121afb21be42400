"""OTLP/JSON trace requests to a SpanBatch through the compiled decoder (`_json`).

Why compiled: on the lean workload (387 B/span of OTLP/JSON) merely parsing a request into Python
objects runs at 70-85k spans/CPU-s here, with `json.loads` and `orjson.loads` alike: the cost is
building a dict per span, per attribute and per value, whichever library builds them (msgspec
Structs would still build one object per span and per attribute). The target, 200k spans/CPU-s
for the whole replay, leaves about 5 us per span, so the request is never materialised:
`_json.decode_spans` walks the bytes once in C and returns the fixed columns, the span names
interned, the HTTP/gRPC status of entry spans, each resource's JSON text and each span's
(offset, length): about 1M spans/CPU-s, 15x `json.loads` alone. As in `wire.py`, the few
resources are parsed here (cached) and a span's attributes and events only when asked for.

The C decoder handles what the Collector and the SDKs write and returns None for anything else
(snake_case keys, escapes in a key or a span name, duplicated fields, odd value types, invalid
JSON): `json_traces.trace_json_to_batch`, the reference, then takes the whole request. Like the
proto path, attribute values are converted when read; only their size limit is checked up front.
"""

from __future__ import annotations

import importlib
import json
import logging
from typing import Any

import numpy as np

from operators.otlp.cache import ParseCache
from operators.otlp.errors import DecodeError, DecodeLimits
from operators.otlp.json_traces import json_readers
from operators.otlp.spans import PackedIds, SpanBatch
from operators.otlp.values import json_attrs, resource_version, value_size

log = logging.getLogger(__name__)

_json: Any
try:
    _json = importlib.import_module("operators.otlp._json")
except ImportError as exc:  # not built: the Python decoder does the work
    _json = None
    log.warning("compiled OTLP/JSON decoder operators.otlp._json unavailable (%s)", exc)

HAVE_JSON_WIRE: bool = _json is not None

# An attribute's `value_size` is at most this many times the bytes of the span holding it (the
# worst case is an array of empty AnyValues, `{},` counting 8): spans under limit / 3 are safe.
_SIZE_RATIO = 3


def decode_trace_json_wire(data: bytes, limits: DecodeLimits) -> SpanBatch | None:
    """The columns of an OTLP/JSON trace request, or None when the Python decoder must take it."""
    if _json is None:
        return None
    cols = _json.decode_spans(data)
    if cols is None:
        return None
    oversized = len(data) > limits.max_attribute_bytes
    offsets = np.frombuffer(cols["span_offsets"], dtype=np.int64)
    if oversized and (offsets[1::2] > limits.max_attribute_bytes // _SIZE_RATIO).any():
        return None  # a span big enough to hold an oversized attribute: checked in Python

    svc_code: dict[str, int] = {}
    ver_code: dict[str, int] = {}
    res_info: list[tuple[str, str, dict[str, Any]]] = []
    res_codes: list[tuple[int, int]] = []
    for raw in cols["resources"]:
        info = _resource(raw, limits.max_attribute_bytes if oversized else None)
        if info is None:
            return None
        res_info.append(info)
        # first-seen order: dicts keep insertion order, so the keys are the names
        res_codes.append(
            (
                svc_code.setdefault(info[0], len(svc_code)),
                ver_code.setdefault(info[1], len(ver_code)),
            )
        )

    res_index = np.frombuffer(cols["resource_index"], dtype=np.int32)
    codes = np.asarray(res_codes, dtype=np.int32).reshape(-1, 2)

    parsed: dict[int, dict[str, Any]] = {}

    def span_at(i: int) -> dict[str, Any]:
        span = parsed.get(i)
        if span is None:
            start, size = int(offsets[2 * i]), int(offsets[2 * i + 1])
            span = parsed[i] = json.loads(data[start : start + size])
        return span

    read_attr, read_attrs, read_events = json_readers(span_at)
    # The service, version and resource lists are made from the codes only if something reads them.
    return SpanBatch(
        _service=None,
        _service_version=None,
        operation=cols["operations"],
        kind=_column(cols["kind"], np.int8),
        status_code=_column(cols["status"], np.int8),
        _http_status=_column(cols["http_status"], np.int32),
        _rpc_grpc_status=_column(cols["rpc_status"], np.int32),
        start_ns=_column(cols["start"], np.int64),
        end_ns=_column(cols["end"], np.int64),
        _trace_id=None,
        _span_id=None,
        _parent_span_id=None,
        _attr_reader=read_attr,
        _attrs_reader=read_attrs,
        _events_reader=read_events,
        op_codes=_column(cols["name_index"], np.int32),
        op_names=cols["names"],
        svc_codes=codes[res_index, 0],
        svc_names=list(svc_code),
        ver_codes=codes[res_index, 1],
        ver_names=list(ver_code),
        packed_ids=_packed_ids(cols["ids"]),
        _res_index=res_index,
        _res_dicts=[attrs for _, _, attrs in res_info],
    )


def _packed_ids(records: bytes) -> PackedIds:
    """The decoder's 33-byte id records (trace 16, span 8, parent 8, parent length) as columns."""
    rec = np.frombuffer(records, dtype=np.uint8).reshape(-1, 33)
    return PackedIds(
        rec[:, :16].tobytes(),
        rec[:, 16:24].tobytes(),
        rec[:, 24:32].tobytes(),
        rec[:, 32].astype(np.int32),
    )


# Producers send the same few resources over and over: parse each distinct one once.
_RESOURCE_CACHE: ParseCache[bytes, tuple[str, str, dict[str, Any]] | None] = ParseCache(4096, len)


def _resource(raw: bytes, size_limit: int | None) -> tuple[str, str, dict[str, Any]] | None:
    """service.name, service.version and the attributes of one Resource's JSON, or None when the
    Python decoder must judge it (no service.name, malformed or oversized attributes)."""
    if raw in _RESOURCE_CACHE:  # None is a cached result too: the Python decoder judges it
        hit = _RESOURCE_CACHE.get(raw, None)
    else:
        hit = _parse_resource(raw)
        _RESOURCE_CACHE.put(raw, hit)
    if hit is None or size_limit is None:
        return hit
    return None if any(value_size(v) > size_limit for v in hit[2].values()) else hit


def _parse_resource(raw: bytes) -> tuple[str, str, dict[str, Any]] | None:
    try:
        attrs = json_attrs(json.loads(raw).get("attributes"))
    except (DecodeError, ValueError, TypeError, AttributeError, KeyError):
        return None
    svc = attrs.get("service.name")
    if not isinstance(svc, str) or not svc:
        return None
    return svc, resource_version(attrs), attrs


def _column(raw: bytes, dtype: Any) -> np.ndarray:
    # a writable copy, like the arrays the other decoders build
    return np.frombuffer(raw, dtype=dtype).copy()
