"""ExportTraceServiceRequest bytes to a SpanBatch through the compiled wire decoder (`_wire`).

`_wire.decode_spans` walks the protobuf wire format in C and returns the fixed columns, the span
names interned, the HTTP/gRPC status of entry spans, the raw `Resource` of each ResourceSpans and
each span's (offset, length) in the input. Only the few resources are parsed with protobuf here;
attributes and events are parsed from one span's bytes when something asks for them. Given
`DecodeLimits.text_keys`, the same walk also writes those attributes' text columns and the events'
JSON column (what `_wire.span_columns` writes in a walk of its own when other keys are read).

It accepts and rejects the same bytes as upb's ParseFromString and gives the same columns as
`proto_traces.decode_trace_upb`, which stays as the fallback when the extension is not built.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from operators.otlp.cache import ParseCache
from operators.otlp.errors import DecodeError, DecodeLimits
from operators.otlp.proto_traces import (
    check_attribute_sizes,
    check_span_attribute_sizes,
)
from operators.otlp.spans import JointSpans, PackedIds, SpanBatch
from operators.otlp.text import PYTHON, TextColumn, patch_text
from operators.otlp.values import events_json, proto_any, proto_attrs, resource_version

log = logging.getLogger(__name__)

_wire: Any
try:
    _wire = importlib.import_module("operators.otlp._wire")
except ImportError as exc:  # not built: the protobuf (upb) decoder does the work
    _wire = None
    log.warning("compiled OTLP decoder operators.otlp._wire unavailable (%s); using upb", exc)

HAVE_WIRE: bool = _wire is not None


def use_wire() -> bool:
    """Whether the compiled decoder decodes: it is built, and SRE_PURE_PYTHON=1 is not set."""
    return HAVE_WIRE and os.environ.get("SRE_PURE_PYTHON") != "1"


# The most text keys decode_spans extracts in its walk; -1: a compiled decoder built before it did.
_MAX_TEXT_KEYS: int = getattr(_wire, "MAX_KEYS", -1)


def _check_big_parts(
    span_bytes: Callable[[int, int], bytes], offsets: np.ndarray, resources: list[bytes], limit: int
) -> None:
    """Walk the attributes of the few spans and resources whose encoding is over `limit`: only
    they can hold an attribute that large."""
    sizes = offsets[1::2]
    for i in np.flatnonzero(sizes > limit).tolist():
        start, size = int(offsets[2 * i]), int(offsets[2 * i + 1])
        check_span_attribute_sizes(Span.FromString(span_bytes(start, size)), limit)
    for raw in resources:
        if len(raw) > limit:
            check_attribute_sizes(Resource.FromString(raw).attributes, limit, "resource")


def decode_trace_wire(data: bytes, limits: DecodeLimits) -> SpanBatch:
    """Decode otlp_proto bytes into a SpanBatch; DecodeError names what is wrong."""
    limits.check_size(data)
    text_keys = _text_keys(limits)
    try:
        cols = (
            _wire.decode_spans(data) if text_keys is None else _wire.decode_spans(data, text_keys)
        )
    except ValueError as exc:
        raise DecodeError(f"invalid ExportTraceServiceRequest protobuf: {exc}") from None
    resources: list[bytes] = cols["resources"]
    if data and not resources:
        raise DecodeError(
            f"{len(data)} bytes parsed to an ExportTraceServiceRequest with no resourceSpans "
            "(wrong message type or garbage)"
        )
    res = _request_resources(resources)
    res_index = np.frombuffer(cols["resource_index"], dtype=np.int32)
    return _batch(_Requests([data]), cols, limits, text_keys, resources, res, res_index)


def decode_requests_wire(values: list[bytes], limits: DecodeLimits) -> JointSpans:
    """Several otlp_proto requests (a poll's) decoded in one walk, each as a request of its own
    (`_wire.decode_requests`); DecodeError when any one is bad, without saying which
    (`decode_trace_wire` of each does)."""
    sizes = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    if not sizes.all() or int(sizes.max(initial=0)) > limits.max_message_bytes:
        raise DecodeError("an empty or oversized request")
    text_keys = _text_keys(limits)
    try:
        cols = _wire.decode_requests(values, text_keys)
    except ValueError as exc:
        raise DecodeError(f"invalid ExportTraceServiceRequest protobuf: {exc}") from None
    if not np.diff(np.frombuffer(cols["request_resources"], dtype=np.int64)).all():
        raise DecodeError("a request with no resourceSpans")
    # The poll's resources repeat request after request: the distinct ones decide the services.
    distinct: dict[bytes, int] = {}
    remap = [distinct.setdefault(raw, len(distinct)) for raw in cols["resources"]]
    resources = list(distinct)
    res = _request_resources(resources)
    res_index = np.array(remap, dtype=np.int32)[np.frombuffer(cols["resource_index"], np.int32)]
    batch = _batch(_Requests(values), cols, limits, text_keys, resources, res, res_index)
    return JointSpans(batch, np.frombuffer(cols["request_spans"], dtype=np.int64))


class _Requests:
    """The request or requests a batch was decoded from, end to end but not joined: the spans'
    offsets are into them as if they were."""

    def __init__(self, values: list[bytes]) -> None:
        self.values = values
        self._starts: npt.NDArray[np.int64] | None = None
        self._joined = values[0] if len(values) == 1 else None

    def __len__(self) -> int:
        return sum(map(len, self.values))

    def span(self, start: int, size: int) -> bytes:
        if self._starts is None:
            self._starts = np.cumsum([0, *map(len, self.values)])
        k = int(np.searchsorted(self._starts, start, side="right")) - 1
        at = start - int(self._starts[k])
        return self.values[k][at : at + size]

    def joined(self) -> bytes:
        # only for a walk of other text keys than the decoder's (span_columns reads one buffer)
        if self._joined is None:
            self._joined = b"".join(self.values)
        return self._joined


def _text_keys(limits: DecodeLimits) -> tuple[str, ...] | None:
    text_keys = limits.text_keys
    if text_keys is not None and len(text_keys) > _MAX_TEXT_KEYS:
        return None  # span_columns says what is wrong when they are read
    return text_keys


def _batch(
    data: _Requests,
    cols: dict[str, Any],
    limits: DecodeLimits,
    text_keys: tuple[str, ...] | None,
    resources: list[bytes],
    res: _Resources,
    res_index: npt.NDArray[np.int32],
) -> SpanBatch:
    """The SpanBatch of `decode_spans`' columns of `data`: `resources` (serialized) are `res`,
    and `res_index` is each span's."""
    res_info = res.info
    span_bytes, joined = data.span, data.joined

    raw_lengths = cols["id_lengths"]
    lengths = np.frombuffer(raw_lengths, dtype=np.int32).reshape(-1, 3)
    # Both ids' lengths of a span in one test: its first two int32 lengths read as one int64
    # (a strided view, no copy); three numpy calls, where slicing and comparing took 7 us.
    pairs = np.ndarray((len(lengths),), np.int64, raw_lengths, 0, (12,))
    if np.count_nonzero(pairs == _ID_SIZES) != len(pairs):
        _raise_bad_id(lengths)

    offsets = np.frombuffer(cols["span_offsets"], dtype=np.int64)
    if len(data) > limits.max_attribute_bytes:
        _check_big_parts(span_bytes, offsets, resources, limits.max_attribute_bytes)
    parsed: dict[int, Any] = {}
    text: Any = cols.get("text_columns")  # the (columns, events) of text_keys

    def span_at(i: int) -> Any:
        span = parsed.get(i)
        if span is None:
            start, size = int(offsets[2 * i]), int(offsets[2 * i + 1])
            span = parsed[i] = Span.FromString(span_bytes(start, size))
        return span

    def read_attr(i: int, key: str) -> Any:
        for kv in span_at(i).attributes:
            if kv.key == key:
                return proto_any(kv.value)
        return None

    def read_attrs(i: int, wanted: frozenset[str]) -> dict[str, Any]:
        return {kv.key: proto_any(kv.value) for kv in span_at(i).attributes if kv.key in wanted}

    # With the text columns, a span's events' state (0: none) says it has none without parsing
    # it: the aggregator looks for feature flags in one span per group and poll, mostly without.
    event_states = None if text is None else text[1][2]

    def read_events(i: int) -> list[dict[str, Any]]:
        if event_states is not None and not event_states[i]:
            return []
        return [
            {"name": e.name, "time_ns": e.time_unix_nano, "attributes": proto_attrs(e.attributes)}
            for e in span_at(i).events
        ]

    def read_text(keys: tuple[str, ...]) -> tuple[list[TextColumn], TextColumn]:
        if keys == text_keys:
            columns, events = text  # written in the decoding walk
        else:
            columns, events = _wire.span_columns(joined(), offsets, keys)
        if res.keys.isdisjoint(keys) and not any(_PYTHON_STATE in st for _, _, st in columns):
            # the common case: every value is in the compiled columns already
            out = [(np.frombuffer(offsets, dtype=np.int32), text) for offsets, text, _ in columns]
        else:
            out = [
                _attribute_text(key, column, res_info, res_index, read_attrs, key in res.keys)
                for key, column in zip(keys, columns, strict=True)
            ]
        ev_offsets, ev_text, ev_state = events
        compiled = (np.frombuffer(ev_offsets, dtype=np.int32), ev_text)
        if _PYTHON_STATE not in ev_state:
            return out, compiled
        codes = np.frombuffer(ev_state, dtype=np.int8)

        def python_events(i: int) -> str:
            # an event attribute the compiled writer leaves to Python (a double, bytes, a list...)
            return events_json(read_events(i))

        no_fallback = np.full(len(codes), -1, dtype=np.int64)
        return out, patch_text(compiled, codes, no_fallback, (), python_events)

    packed = None
    if "trace_id_bytes" in cols:  # else a compiled decoder built before it packed the ids
        parent_len = np.ascontiguousarray(lengths[:, 2])
        ids = (cols["trace_id_bytes"], cols["span_id_bytes"], cols["parent_span_id_bytes"])
        packed = PackedIds(*ids, parent_len)
    # The columns are read-only views of the decoder's fresh bytes, not copies: nothing writes
    # to a batch's columns (a write would raise), and the service, version and resource lists
    # are made from the codes only if something reads them.
    return SpanBatch(
        _service=None,
        _service_version=None,
        operation=cols["operations"],
        kind=np.frombuffer(cols["kind"], dtype=np.int8),
        status_code=np.frombuffer(cols["status"], dtype=np.int8),
        _http_status=np.frombuffer(cols["http_status"], dtype=np.int32),
        _rpc_grpc_status=np.frombuffer(cols["rpc_status"], dtype=np.int32),
        start_ns=np.frombuffer(cols["start"], dtype=np.int64),
        end_ns=np.frombuffer(cols["end"], dtype=np.int64),
        # Lists only of odd parent ids (the packed ones cut them); the rest stay packed.
        _trace_id=None if packed else cols["trace_id"],
        _span_id=None if packed else cols["span_id"],
        _parent_span_id=cols["parent_span_id"],
        _attr_reader=read_attr,
        _attrs_reader=read_attrs,
        _events_reader=read_events,
        op_codes=np.frombuffer(cols["name_index"], dtype=np.int32),
        op_names=cols["names"],
        svc_codes=res.svc_of.take(res_index),
        svc_names=list(res.svc_names),
        ver_codes=res.ver_of.take(res_index),
        ver_names=list(res.ver_names),
        _text_reader=read_text,
        packed_ids=packed,
        _res_index=res_index,
        _res_dicts=res.dicts,
    )


# The id lengths OTLP requires (trace 16, span 8) as the int64 their two int32 make in memory.
_ID_SIZES = int(np.array([16, 8], dtype=np.int32).view(np.int64)[0])


def _raise_bad_id(lengths: np.ndarray) -> None:
    for k, (what, size) in enumerate((("trace_id", 16), ("span_id", 8))):
        bad = np.flatnonzero(lengths[:, k] != size)
        if len(bad):
            i = int(bad[0])
            raise DecodeError(f"span {i} has a {lengths[i, k]}-byte {what}; OTLP requires {size}")


# A span whose value the compiled writer left to Python, as a byte of a state column.
_PYTHON_STATE = bytes((PYTHON,))


def _attribute_text(
    key: str,
    column: tuple[bytes, bytes, bytes],
    res_info: list[tuple[str, str, dict[str, Any]]],
    res_index: np.ndarray,
    read_attrs: Callable[[int, frozenset[str]], dict[str, Any]],
    in_resources: bool,
) -> TextColumn:
    """One selected attribute's column: the span's value, else its resource's (`in_resources`:
    some resource has the key), else ""."""
    offsets, text, state = column
    compiled = (np.frombuffer(offsets, dtype=np.int32), text)
    if _PYTHON_STATE not in state and not in_resources:
        return compiled  # the common case: every value is in the compiled column already
    fallback_text: list[str] = []
    by_resource = np.full(len(res_info), -1, dtype=np.int64)
    for r, (_, _, attrs) in enumerate(res_info):
        value = attrs.get(key)
        if value is not None:
            by_resource[r] = len(fallback_text)
            fallback_text.append(value if isinstance(value, str) else str(value))
    codes = np.frombuffer(state, dtype=np.int8)
    wanted = frozenset((key,))

    def python_text(i: int) -> str:
        value = read_attrs(i, wanted).get(key, res_info[int(res_index[i])][2].get(key))
        return "" if value is None else value if isinstance(value, str) else str(value)

    return patch_text(
        compiled,
        codes,
        by_resource[res_index] if len(res_info) else np.empty(0, dtype=np.int64),
        fallback_text,
        python_text,
    )


@dataclass(frozen=True, slots=True)
class _Resources:
    """A request's resources: each one's (service, version, attributes), the distinct services
    and versions in first-seen order, and each resource's code into them."""

    info: list[tuple[str, str, dict[str, Any]]]
    svc_names: list[str]
    svc_of: npt.NDArray[np.int32]
    ver_names: list[str]
    ver_of: npt.NDArray[np.int32]
    dicts: tuple[dict[str, Any], ...]  # each resource's attributes (info's third items)
    keys: frozenset[str]  # the attribute keys some resource has a value for


# A producer sends the same resources request after request (an SDK: one; a Collector: the same
# few in the same order): the work on a request's resources is done once per distinct list.
# The cached dicts are shared by batches, which only read them (SpanBatch copies on exposure).
# A request's resources can be megabytes: bounded in bytes too.
_REQUEST_CACHE: ParseCache[tuple[bytes, ...], _Resources] = ParseCache(
    1024, lambda key: sum(map(len, key))
)


def _request_resources(resources: list[bytes]) -> _Resources:
    """The _Resources of a request's serialized Resources; DecodeError names a bad one."""
    key = tuple(resources)
    hit = _REQUEST_CACHE.get(key, None)
    if hit is not None:
        return hit
    info = [_resource(raw, r_index) for r_index, raw in enumerate(resources)]
    svc_code: dict[str, int] = {}
    ver_code: dict[str, int] = {}
    # first-seen order: dicts keep insertion order, so the keys are the names
    codes = [
        (svc_code.setdefault(s, len(svc_code)), ver_code.setdefault(v, len(ver_code)))
        for s, v, _ in info
    ]
    pairs = np.array(codes, dtype=np.int32).reshape(-1, 2)
    hit = _Resources(
        info,
        list(svc_code),
        np.ascontiguousarray(pairs[:, 0]),
        list(ver_code),
        np.ascontiguousarray(pairs[:, 1]),
        tuple(attrs for _, _, attrs in info),
        frozenset(k for _, _, attrs in info for k, v in attrs.items() if v is not None),
    )
    _REQUEST_CACHE.put(key, hit)
    return hit


# Producers send the same few resources over and over: parse each distinct one once.
_RESOURCE_CACHE: ParseCache[bytes, tuple[str, str, dict[str, Any]]] = ParseCache(4096, len)


def _resource(raw: bytes, r_index: int) -> tuple[str, str, dict[str, Any]]:
    """service.name, service.version and the attributes of one serialized Resource."""
    hit = _RESOURCE_CACHE.get(raw, None)
    if hit is None:
        attrs = proto_attrs(Resource.FromString(raw).attributes)
        svc = attrs.get("service.name")
        if not isinstance(svc, str) or not svc:
            raise DecodeError(f"resourceSpans[{r_index}] has no service.name resource attribute")
        hit = (svc, resource_version(attrs), attrs)
        _RESOURCE_CACHE.put(raw, hit)
    return hit
