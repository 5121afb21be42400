"""SpanBatch: one decoded export request as columns (see docs/contracts.md, "Span columns").

The hot path (signals) reads only the fixed columns. Selected attributes and events are extracted
lazily from the parsed request when something asks for them (the span archive, journey steps), so
the windowed signals never pay for attribute walks they do not use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from operators.otlp.text import TextColumn, strings_text
from operators.otlp.values import events_json

SPAN_KIND_SERVER = 2
SPAN_KIND_CONSUMER = 5
STATUS_CODE_ERROR = 2
HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")
RPC_STATUS_KEY = "rpc.grpc.status_code"
# server and consumer spans are where HTTP/gRPC status decides the error flag
ENTRY_KINDS = frozenset((SPAN_KIND_SERVER, SPAN_KIND_CONSUMER))

# Reads one attribute (by key) or the events of span i from the parsed request; set by the decoder.
AttributeReader = Callable[[int, str], Any]
# Reads several attributes of span i in one walk: the wanted keys that are present, as a dict.
AttributesReader = Callable[[int, frozenset[str]], dict[str, Any]]
EventsReader = Callable[[int], list[dict[str, Any]]]
StatusLoader = Callable[[], tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]]
# The selected attributes' text columns and the events' JSON column, from the compiled decoder.
TextReader = Callable[[tuple[str, ...]], tuple[list[TextColumn], TextColumn]]


@dataclass(frozen=True, slots=True)
class PackedIds:
    """Every span's ids end to end: `trace` 16 bytes each, `span` and `parent` 8, and the length
    each parent id had (0 for a root; another length than 8 is cut or zero-padded in `parent`)."""

    trace: bytes
    span: bytes
    parent: bytes
    parent_len: npt.NDArray[np.int32]


@dataclass(slots=True)
class SpanBatch:
    """Columns of one export request: parallel lists / arrays, one entry per span."""

    # Each span's service.name and service.version; None where the decoder gave the codes below
    # only (the lists are made when first read: the signals read the codes, not these).
    _service: list[str] | None
    _service_version: list[str] | None
    operation: list[str]
    kind: npt.NDArray[np.int8]
    status_code: npt.NDArray[np.int8]
    # HTTP / gRPC status columns; None until first read when the decoder proved from the raw bytes
    # that no span carries an error code (then `_status_loader` fills them on demand).
    _http_status: npt.NDArray[np.int32] | None
    _rpc_grpc_status: npt.NDArray[np.int32] | None
    start_ns: npt.NDArray[np.int64]
    end_ns: npt.NDArray[np.int64]
    # The ids as lists of bytes; None where `packed_ids` holds them (made into lists when read).
    _trace_id: list[bytes] | None
    _span_id: list[bytes] | None
    _parent_span_id: list[bytes] | None
    # resource attributes per span (shared dicts, one per resource) for lazy lookups; None where
    # `_res_index` and `_res_dicts` give them (the list is made when first read)
    _resource_attrs: list[dict[str, Any]] | None = None
    _attr_reader: AttributeReader | None = None
    _attrs_reader: AttributesReader | None = None
    _events_reader: EventsReader | None = None
    _status_loader: StatusLoader | None = None
    # Optional dictionary codes, set by decoders that intern them (the compiled wire decoder):
    # operation[i] == op_names[op_codes[i]] and service[i] == svc_names[svc_codes[i]].
    op_codes: npt.NDArray[np.int32] | None = None
    op_names: list[str] | None = None
    svc_codes: npt.NDArray[np.int32] | None = None
    svc_names: list[str] | None = None
    ver_codes: npt.NDArray[np.int32] | None = None
    ver_names: list[str] | None = None
    _text_reader: TextReader | None = None
    # The ids end to end (trace 16, span and parent 8 bytes each, a missing parent as zeros) with
    # the parents' lengths, from the compiled decoder: most consumers want them packed.
    packed_ids: PackedIds | None = None
    # Each span's resource and each resource's attributes, from the compiled decoder. The dicts
    # may be shared with other requests' batches: `resource_attrs` gives this batch copies.
    _res_index: npt.NDArray[np.int32] | None = None
    _res_dicts: Sequence[dict[str, Any]] = ()

    def __len__(self) -> int:
        return len(self.operation)

    @property
    def service(self) -> list[str]:
        """Each span's service.name."""
        if self._service is None:
            self._service = _expand(self.svc_names, self.svc_codes)
        return self._service

    @property
    def service_version(self) -> list[str]:
        """Each span's service.version ("" when its resource has none)."""
        if self._service_version is None:
            self._service_version = _expand(self.ver_names, self.ver_codes)
        return self._service_version

    @property
    def resource_attrs(self) -> list[dict[str, Any]]:
        """Each span's resource attributes (one dict per resource, owned by this batch)."""
        if self._resource_attrs is None:
            if self._res_index is None:
                self._resource_attrs = []
            else:
                owned = [dict(attrs) for attrs in self._res_dicts]
                self._resource_attrs = [owned[r] for r in self._res_index.tolist()]
        return self._resource_attrs

    @property
    def http_status(self) -> npt.NDArray[np.int32]:
        """`http.response.status_code` (or legacy `http.status_code`) of entry spans, 0 if absent."""
        if self._http_status is None:
            self._load_status()
        assert self._http_status is not None
        return self._http_status

    @property
    def rpc_grpc_status(self) -> npt.NDArray[np.int32]:
        """`rpc.grpc.status_code` of entry spans, -1 if absent."""
        if self._rpc_grpc_status is None:
            self._load_status()
        assert self._rpc_grpc_status is not None
        return self._rpc_grpc_status

    def _load_status(self) -> None:
        if self._status_loader is None:
            n = len(self)
            self._http_status = np.zeros(n, dtype=np.int32)
            self._rpc_grpc_status = np.full(n, -1, dtype=np.int32)
        else:
            self._http_status, self._rpc_grpc_status = self._status_loader()

    @property
    def trace_id(self) -> list[bytes]:
        """Each span's trace id (16 bytes)."""
        if self._trace_id is None:
            self._trace_id = _split(self._packed().trace, 16)
        return self._trace_id

    @property
    def span_id(self) -> list[bytes]:
        """Each span's id (8 bytes)."""
        if self._span_id is None:
            self._span_id = _split(self._packed().span, 8)
        return self._span_id

    @property
    def parent_span_id(self) -> list[bytes]:
        """Each span's parent id, b"" for a root."""
        if self._parent_span_id is None:
            packed = self._packed()
            ids = _split(packed.parent, 8)
            for i in np.flatnonzero(packed.parent_len == 0).tolist():
                ids[i] = b""
            self._parent_span_id = ids
        return self._parent_span_id

    def trace_id_at(self, i: int) -> bytes:
        """Span i's trace id, without making the list."""
        if self._trace_id is None and self.packed_ids is not None:
            return self.packed_ids.trace[16 * i : 16 * i + 16]
        return self.trace_id[i]

    def _packed(self) -> PackedIds:
        if self.packed_ids is None:
            raise ValueError("a SpanBatch without its ids")
        return self.packed_ids

    @property
    def duration_ns(self) -> npt.NDArray[np.int64]:
        """End minus start, clamped at zero (clock skew must not give negative latency)."""
        return np.maximum(self.end_ns - self.start_ns, 0)

    @property
    def is_error(self) -> npt.NDArray[np.bool_]:
        """Status ERROR, HTTP 5xx on server spans, or a non-OK gRPC code."""
        if self._by_status_only:
            return self.status_code == STATUS_CODE_ERROR
        return _errors(self.status_code, self.kind, self.http_status, self.rpc_grpc_status)

    @property
    def _by_status_only(self) -> bool:
        # The decoder proved that no span carries an HTTP 5xx or a non-OK gRPC code.
        return self._http_status is None and self._status_loader is not None

    def attribute(self, i: int, key: str) -> Any:
        """Span attribute `key` of span i, falling back to its resource attribute; None if absent."""
        value = self._attr_reader(i, key) if self._attr_reader is not None else None
        if value is None and self.resource_attrs:
            value = self.resource_attrs[i].get(key)
        return value

    def attribute_columns(
        self, keys: Sequence[str], rows: Sequence[int] | None = None
    ) -> dict[str, list[str]]:
        """Several attributes for every span (or `rows`), in one walk per span ("" when absent)."""
        idx = range(len(self)) if rows is None else rows
        if self._attrs_reader is None:
            full = {key: self.attribute_column(key) for key in keys}
            return full if rows is None else {k: [v[i] for i in idx] for k, v in full.items()}
        wanted = frozenset(keys)
        reader = self._attrs_reader
        found = [reader(i, wanted) for i in idx]
        res = [self.resource_attrs[i] for i in idx] if self.resource_attrs else [{}] * len(found)
        cols: dict[str, list[str]] = {}
        for key in keys:
            values = [f.get(key, r.get(key)) for f, r in zip(found, res, strict=True)]
            cols[key] = ["" if v is None else v if isinstance(v, str) else str(v) for v in values]
        return cols

    def attribute_column(self, key: str) -> list[str]:
        """One selected attribute for every span, as strings ("" when absent)."""
        out = []
        for i in range(len(self)):
            value = self.attribute(i, key)
            out.append("" if value is None else str(value))
        return out

    def text_columns(self, keys: Sequence[str]) -> tuple[list[TextColumn], TextColumn]:
        """The selected attributes (as `attribute_columns`) and the events' JSON (as `to_polars`)
        as Arrow-layout text columns; compiled when the decoder provides them."""
        if self._text_reader is not None:
            return self._text_reader(tuple(keys))
        cols = self.attribute_columns(keys)
        return [strings_text(cols[k]) for k in keys], strings_text(self.events_json())

    def events_json(self, rows: Sequence[int] | None = None) -> list[str]:
        """Each span's events as compact JSON ("" when it has none)."""
        out = []
        for i in range(len(self)) if rows is None else rows:
            evs = self.events(i)
            out.append(events_json(evs) if evs else "")
        return out

    def events(self, i: int) -> list[dict[str, Any]]:
        """Span i's events as plain dicts (name, time_ns, attributes)."""
        return self._events_reader(i) if self._events_reader is not None else []

    def rows(self, start: int, stop: int) -> SpanBatch:
        """Spans `start` to `stop` as a batch of their own: views of these columns, the names
        and resources shared, the per-span readers shifted."""
        if start == 0 and stop == len(self):
            return self

        def cut(values: Any) -> Any:
            return None if values is None else values[start:stop]

        attr, attrs, events = self._attr_reader, self._attrs_reader, self._events_reader
        text, packed = self._text_reader, self.packed_ids
        status = None
        if self._status_loader is not None and self._http_status is None:

            def status() -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
                return self.http_status[start:stop], self.rpc_grpc_status[start:stop]

        return SpanBatch(
            _service=cut(self._service),
            _service_version=cut(self._service_version),
            operation=self.operation[start:stop],
            kind=self.kind[start:stop],
            status_code=self.status_code[start:stop],
            _http_status=cut(self._http_status),
            _rpc_grpc_status=cut(self._rpc_grpc_status),
            start_ns=self.start_ns[start:stop],
            end_ns=self.end_ns[start:stop],
            _trace_id=cut(self._trace_id),
            _span_id=cut(self._span_id),
            _parent_span_id=cut(self._parent_span_id),
            _resource_attrs=cut(self._resource_attrs),
            _attr_reader=None if attr is None else lambda i, key: attr(start + i, key),
            _attrs_reader=None if attrs is None else lambda i, keys: attrs(start + i, keys),
            _events_reader=None if events is None else lambda i: events(start + i),
            _status_loader=status,
            op_codes=cut(self.op_codes),
            op_names=self.op_names,
            svc_codes=cut(self.svc_codes),
            svc_names=self.svc_names,
            ver_codes=cut(self.ver_codes),
            ver_names=self.ver_names,
            _text_reader=None if text is None else lambda keys: _text_rows(text(keys), start, stop),
            packed_ids=None
            if packed is None
            else PackedIds(
                packed.trace[16 * start : 16 * stop],
                packed.span[8 * start : 8 * stop],
                packed.parent[8 * start : 8 * stop],
                packed.parent_len[start:stop],
            ),
            _res_index=cut(self._res_index),
            _res_dicts=self._res_dicts,
        )

    def to_polars(
        self, selected_attributes: Sequence[str] = (), rows: Sequence[int] | None = None
    ) -> Any:
        """The contract's span frame (polars), with the selected attribute columns.

        `rows` limits the frame to those spans; the per-span attribute and event walks then run
        for them only (the archive samples before it pays for columns).
        """
        import polars as pl

        idx = list(range(len(self))) if rows is None else list(rows)
        pick = np.asarray(idx, dtype=np.int64)

        def take(values: list[Any]) -> list[Any]:
            return values if rows is None else [values[i] for i in idx]

        data: dict[str, Any] = {
            "trace_id": [self.trace_id[i].hex() for i in idx],
            "span_id": [self.span_id[i].hex() for i in idx],
            "parent_span_id": [self.parent_span_id[i].hex() for i in idx],
            "service": take(self.service),
            "service_version": take(self.service_version),
            "operation": take(self.operation),
            "kind": pl.Series(self.kind[pick], dtype=pl.Int8),
            "status_code": pl.Series(self.status_code[pick], dtype=pl.Int8),
            "http_status": pl.Series(self.http_status[pick], dtype=pl.Int32),
            "rpc_grpc_status": pl.Series(self.rpc_grpc_status[pick], dtype=pl.Int32),
            "start_ns": pl.Series(self.start_ns[pick], dtype=pl.Int64),
            "end_ns": pl.Series(self.end_ns[pick], dtype=pl.Int64),
            "duration_ns": pl.Series(self.duration_ns[pick], dtype=pl.Int64),
            "is_error": pl.Series(self.is_error[pick], dtype=pl.Boolean),
        }
        data.update(self.attribute_columns(selected_attributes, idx))
        data["events"] = self.events_json(idx)
        return pl.DataFrame(data)


@dataclass(slots=True)
class SpanColumns:
    """The fixed columns a Python decoder fills span by span, before they become a SpanBatch."""

    service: list[str] = field(default_factory=list)
    version: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    trace_ids: list[bytes] = field(default_factory=list)
    span_ids: list[bytes] = field(default_factory=list)
    parents: list[bytes] = field(default_factory=list)
    res_attrs: list[dict[str, Any]] = field(default_factory=list)

    def batch(
        self,
        status: tuple[npt.NDArray[np.int32] | None, npt.NDArray[np.int32] | None],
        readers: tuple[AttributeReader, AttributesReader, EventsReader],
        status_loader: StatusLoader | None = None,
    ) -> SpanBatch:
        """The SpanBatch of these columns with the (HTTP, gRPC) status columns and the decoder's
        attribute, attributes and events readers."""
        return SpanBatch(
            _service=self.service,
            _service_version=self.version,
            operation=self.names,
            kind=np.asarray(self.kinds, dtype=np.int8),
            status_code=np.asarray(self.status, dtype=np.int8),
            _http_status=status[0],
            _rpc_grpc_status=status[1],
            start_ns=np.asarray(self.starts, dtype=np.int64),
            end_ns=np.asarray(self.ends, dtype=np.int64),
            _trace_id=self.trace_ids,
            _span_id=self.span_ids,
            _parent_span_id=self.parents,
            _resource_attrs=self.res_attrs,
            _attr_reader=readers[0],
            _attrs_reader=readers[1],
            _events_reader=readers[2],
            _status_loader=status_loader,
        )


@dataclass(slots=True)
class JointSpans:
    """Several export requests decoded together (a poll's): the batch of all their spans, and
    request k's rows `starts[k]` to `starts[k + 1]`."""

    batch: SpanBatch
    starts: npt.NDArray[np.int64]
    _ends: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None

    def requests(self, first: int, stop: int) -> SpanBatch:
        """The spans of requests `first` to `stop` as a batch of their own (`SpanBatch.rows`)."""
        return self.batch.rows(int(self.starts[first]), int(self.starts[stop]))

    def size(self, k: int) -> int:
        return int(self.starts[k + 1] - self.starts[k])

    def end_range(self, k: int) -> tuple[int, int]:
        """The oldest and newest span end of request k, which has spans (one reduction per joint,
        not one per request)."""
        if self._ends is None:
            # Each request with spans reduces up to the next one with spans (those between have
            # none); the empty ones' values are 0.
            some = np.flatnonzero(np.diff(self.starts) > 0)
            lo = np.zeros(len(self.starts) - 1, dtype=np.int64)
            hi = lo.copy()
            if len(some):
                firsts = self.starts[some]
                lo[some] = np.minimum.reduceat(self.batch.end_ns, firsts)
                hi[some] = np.maximum.reduceat(self.batch.end_ns, firsts)
            self._ends = (lo, hi)
        return int(self._ends[0][k]), int(self._ends[1][k])


def _text_rows(
    columns: tuple[list[TextColumn], TextColumn], start: int, stop: int
) -> tuple[list[TextColumn], TextColumn]:
    """Rows `start` to `stop` of text columns, each its own column (offsets from 0)."""

    def cut(column: TextColumn) -> TextColumn:
        offsets, data = column
        part = offsets[start : stop + 1]
        first = int(part[0])
        return part - first, data[first : int(part[-1])]

    attrs, events = columns
    return [cut(c) for c in attrs], cut(events)


def joined_errors(batches: Sequence[SpanBatch]) -> npt.NDArray[np.bool_]:
    """`is_error` of the batches end to end, from their joined columns (one pass, not a pass per
    batch: a 512-span request's pass cost as much as the spans' share of the rest)."""
    by_status = [b._by_status_only for b in batches]
    status = np.concatenate([b.status_code for b in batches])
    if all(by_status):
        return status == STATUS_CODE_ERROR
    if any(by_status):  # joining would load the statuses the decoder proved need no reading
        return np.concatenate([b.is_error for b in batches])
    return _errors(
        status,
        np.concatenate([b.kind for b in batches]),
        np.concatenate([b.http_status for b in batches]),
        np.concatenate([b.rpc_grpc_status for b in batches]),
    )


def _errors(
    status: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
    http: npt.NDArray[np.int32],
    rpc: npt.NDArray[np.int32],
) -> npt.NDArray[np.bool_]:
    """Status ERROR, HTTP 5xx on server spans, or a non-OK gRPC code."""
    return (status == STATUS_CODE_ERROR) | ((kind == SPAN_KIND_SERVER) & (http >= 500)) | (rpc > 0)


def concat_batches(batches: Sequence[SpanBatch]) -> SpanBatch:
    """Join batches into one (used by replay tools and tests; the flow keeps batches separate)."""
    if len(batches) == 1:
        return batches[0]
    readers = [(b, len(b)) for b in batches]

    def attr(i: int, key: str) -> Any:
        for b, n in readers:
            if i < n:
                return b._attr_reader(i, key) if b._attr_reader else None
            i -= n
        raise IndexError(i)

    def events(i: int) -> list[dict[str, Any]]:
        for b, n in readers:
            if i < n:
                return b.events(i)
            i -= n
        raise IndexError(i)

    return SpanBatch(
        _service=[s for b in batches for s in b.service],
        _service_version=[s for b in batches for s in b.service_version],
        operation=[s for b in batches for s in b.operation],
        kind=np.concatenate([b.kind for b in batches]).astype(np.int8),
        status_code=np.concatenate([b.status_code for b in batches]).astype(np.int8),
        _http_status=np.concatenate([b.http_status for b in batches]).astype(np.int32),
        _rpc_grpc_status=np.concatenate([b.rpc_grpc_status for b in batches]).astype(np.int32),
        start_ns=np.concatenate([b.start_ns for b in batches]).astype(np.int64),
        end_ns=np.concatenate([b.end_ns for b in batches]).astype(np.int64),
        _trace_id=[t for b in batches for t in b.trace_id],
        _span_id=[t for b in batches for t in b.span_id],
        _parent_span_id=[t for b in batches for t in b.parent_span_id],
        _resource_attrs=[r for b in batches for r in b.resource_attrs],
        _attr_reader=attr,
        _events_reader=events,
    )


def _expand(names: list[str] | None, codes: npt.NDArray[np.int32] | None) -> list[str]:
    if names is None or codes is None:
        raise ValueError("a SpanBatch without its names or their codes")
    # through an object array: take and tolist run in C (a comprehension is twice the cost)
    table = np.empty(len(names), dtype=object)
    table[:] = names
    out: list[str] = table.take(codes).tolist()
    return out


def _split(data: bytes, width: int) -> list[bytes]:
    return [data[i : i + width] for i in range(0, len(data), width)]
