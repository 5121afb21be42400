"""Decoded span batches as one Arrow record batch in the archive's schema, built from columns.

The ids are kept as bytes (16 for a trace, 8 for a span; the reader shows them as hex), the
attribute texts spliced with numpy, the names taken through their dictionary codes: no Python
step per span, except for the few values only Python can print.
The export requests of a poll are converted together, so the fixed cost of a conversion is paid
once per poll, not once per request (with 512 spans per request it was most of the cost).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np
import pyarrow as pa

from operators.otlp.spans import PackedIds, SpanBatch
from operators.otlp.text import TextColumn, strings_text

_ID_COLUMNS = frozenset(("trace_id", "span_id", "parent_span_id"))


def _text(n: int, column: TextColumn) -> pa.Array:
    offsets, data = column
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _attribute_text(
    n: int, parts: Sequence[TextColumn], zeros: pa.Array, absent: pa.Array | None = None
) -> pa.Array:
    """The parts end to end (`_joined_text`), or one value's dictionary (`zeros` its codes) when
    every span has the same text (mostly "": `absent`, if given, an attribute these spans lack).
    Parquet then writes that dictionary and its run of zero codes instead of hashing each span's
    text (half the writer's CPU for such a column); the file holds the same strings, so readers
    see no change."""
    if n and all(not data for _, data in parts):  # all "": no join needed
        return _one_value(zeros, b"") if absent is None else absent
    offsets, data = _joined_text(parts)
    if n and int(offsets[0]) == 0 and _constant(offsets, data):
        return _one_value(zeros, data[: int(offsets[1])])
    return _text(n, (offsets, data))


def _one_value(zeros: pa.Array, value: bytes) -> pa.Array:
    dictionary = _text(1, (np.array([0, len(value)], dtype=np.int32), value))
    return _dictionary(zeros, dictionary)


def _dictionary(indices: pa.Array, dictionary: pa.Array) -> pa.DictionaryArray:
    # Unchecked: the codes index their dictionary by construction, and checking them was a pass
    # over every span's code, for every column (twice: Parquet checks them again).
    return pa.DictionaryArray.from_arrays(indices, dictionary, safe=False)


def _constant(offsets: np.ndarray, data: bytes) -> bool:
    """Whether every value of a non-empty text column is the first."""
    width = int(offsets[1])
    n = len(offsets) - 1
    if width == 0 or len(data) != width * n:
        return False
    # Each value `width` long (the total alone can add up: "ab", "aba", "b"), then each the first.
    return bool((np.diff(offsets) == width).all()) and data == data[:width] * n


def _ids(ids: list[bytes], width: int) -> pa.Array:
    """Ids as bytes, fixed-size (`width`) when each is that long or empty (empty is null: a root's
    parent), else variable; the reader turns any of these into the same hex text."""
    joined = b"".join(ids)
    n = len(ids)
    if len(joined) == width * n:
        return pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(width), n, [None, pa.py_buffer(joined)]
        )
    if not joined:  # no parents: every span a root
        return pa.nulls(n, pa.binary(width))
    lengths = np.fromiter(map(len, ids), dtype=np.int32, count=n)
    present = lengths > 0
    if not (lengths[present] == width).all():  # malformed ids: kept as they came
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        return pa.BinaryArray.from_buffers(
            pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(joined)]
        )
    data = np.zeros((n, width), dtype=np.uint8)
    data[present] = np.frombuffer(joined, dtype=np.uint8).reshape(-1, width)
    valid = np.packbits(present, bitorder="little")
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), n, [pa.py_buffer(valid), pa.py_buffer(data)]
    )


def _packed(packed: list[PackedIds], column: str) -> pa.Array | None:
    """`_ids` from the decoder's packed ids, without a Python object per id; None when a parent
    id has an odd length (only the list keeps it whole)."""
    if column != "parent_span_id":  # the decoders checked these lengths
        width = 16 if column == "trace_id" else 8
        data = b"".join(p.trace if column == "trace_id" else p.span for p in packed)
        return pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(width), len(data) // width, [None, pa.py_buffer(data)]
        )
    lengths = np.concatenate([p.parent_len for p in packed])
    present = lengths > 0
    if not (lengths[present] == 8).all():
        return None
    valid = None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))
    data = pa.py_buffer(b"".join(p.parent for p in packed))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(8), len(lengths), [valid, data])


def _numbers(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    # From the buffer: pa.array() on numpy consults pandas, whose import costs a second of CPU.
    data = np.ascontiguousarray(values, dtype=type_.to_pandas_dtype())
    return pa.Array.from_buffers(type_, len(data), [None, pa.py_buffer(data)])


def _joined_text(columns: Sequence[TextColumn]) -> TextColumn:
    """Text columns end to end, as one column."""
    if len(columns) == 1:
        return columns[0]
    sizes = np.fromiter((len(data) for _, data in columns), dtype=np.int64, count=len(columns))
    ends = np.cumsum(sizes)
    if int(ends[-1]) > np.iinfo(np.int32).max:
        raise ValueError("a text column over Arrow's 2 GiB string limit")
    # One vectorised shift: each column's offsets (but its last) by the bytes before it.
    counts = [len(off) - 1 for off, _ in columns]
    offsets = np.empty(sum(counts) + 1, dtype=np.int32)
    offsets[:-1] = np.concatenate([off[:-1] for off, _ in columns])
    offsets[:-1] += np.repeat((ends - sizes).astype(np.int32), counts)
    offsets[-1] = ends[-1]
    return offsets, b"".join(data for _, data in columns)


def _names(
    batches: Sequence[SpanBatch],
    column: str,
    codes: list[np.ndarray | None],
    names: list[list[str] | None],
) -> pa.Array:
    """A dictionary column over several batches: each batch's codes mapped to shared ones (the
    `column` of text per span, which the decoders build only when read, only without codes)."""
    n = sum(len(b) for b in batches)
    present = [(c, d) for c, d in zip(codes, names, strict=True) if c is not None and d is not None]
    if len(present) < len(batches):
        text = strings_text(list(chain.from_iterable(getattr(b, column) for b in batches)))
        return _text(n, text).dictionary_encode()
    # Each batch's codes through its small table of shared codes, into one array in place (one
    # pass over the spans, where joining, shifting and gathering them all made four).
    shared: dict[str, int] = {}
    indices = np.empty(n, dtype=np.int32)
    at = 0
    for local, names_of in present:
        table = np.array([shared.setdefault(s, len(shared)) for s in names_of], dtype=np.int32)
        if len(local):
            np.take(table, local, out=indices[at : at + len(local)])
            at += len(local)
    # Dictionary-encoded as decoded; Parquet stores the same text (the schema is not stored, so
    # readers see plain strings). From buffers, as pa.array() on a list imports pandas.
    return _dictionary(
        _numbers(indices, pa.int32()), _text(len(shared), strings_text(list(shared)))
    )


def span_record_batch(
    batches: SpanBatch | Sequence[SpanBatch], selected: Sequence[str] = ()
) -> pa.RecordBatch:
    """The archive's columns for every span of `batches`, in order: those of
    `SpanBatch.to_polars`, the ids as bytes, without `duration_ns` and `is_error` (the reader
    derives them from the times and the statuses)."""
    group = [batches] if isinstance(batches, SpanBatch) else list(batches)
    n = sum(len(b) for b in group)
    texts = [b.text_columns(selected) for b in group]

    packed = [b.packed_ids for b in group]

    def ids(get: str, width: int) -> pa.Array:
        whole = [p for p in packed if p is not None]
        array = _packed(whole, get) if len(whole) == len(group) else None
        if array is None:
            array = _ids(list(chain.from_iterable(getattr(b, get) for b in group)), width)
        return array

    def numbers(get: str, type_: pa.DataType) -> pa.Array:
        return _numbers(np.concatenate([getattr(b, get) for b in group]), type_)

    columns: dict[str, pa.Array] = {
        "trace_id": ids("trace_id", 16),
        "span_id": ids("span_id", 8),
        "parent_span_id": ids("parent_span_id", 8),
        "service": _names(
            group,
            "service",
            [b.svc_codes for b in group],
            [b.svc_names for b in group],
        ),
        "service_version": _names(
            group,
            "service_version",
            [b.ver_codes for b in group],
            [b.ver_names for b in group],
        ),
        "operation": _names(
            group,
            "operation",
            [b.op_codes for b in group],
            [b.op_names for b in group],
        ),
        "kind": numbers("kind", pa.int8()),
        "status_code": numbers("status_code", pa.int8()),
        "http_status": numbers("http_status", pa.int32()),
        "rpc_grpc_status": numbers("rpc_grpc_status", pa.int32()),
        "start_ns": numbers("start_ns", pa.int64()),
        "end_ns": numbers("end_ns", pa.int64()),
    }
    zeros = _numbers(np.zeros(n, dtype=np.int32), pa.int32())  # shared by one-value columns
    absent = _one_value(zeros, b"")  # and "" by every column these spans lack
    for k, key in enumerate(selected):
        columns[key] = _attribute_text(n, [attrs[k] for attrs, _ in texts], zeros, absent)
    columns["events"] = _attribute_text(n, [events for _, events in texts], zeros, absent)
    # Only ids can be missing (a root's parent; an empty id from a decoder that does not check
    # them): the other columns are declared without nulls, so Parquet writes them as required and
    # computes no definition levels (a quarter of the writer's CPU). Readers see the same values.
    schema = pa.schema(
        pa.field(name, array.type, nullable=name in _ID_COLUMNS) for name, array in columns.items()
    )
    return pa.RecordBatch.from_arrays(list(columns.values()), schema=schema)
