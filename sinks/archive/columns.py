"""Decoded span batches as one Arrow record batch in the archive's schema, built from columns.

The ids are hex-encoded and the attribute texts spliced with numpy, the names taken through
their dictionary codes: no Python step per span, except for the few values only Python can print.
The export requests of a poll are converted together, so the fixed cost of a conversion is paid
once per poll, not once per request (with 512 spans per request it was most of the cost).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np
import pyarrow as pa

from operators.otlp.spans import SpanBatch
from operators.otlp.text import TextColumn, hex_text, strings_text


def _text(n: int, column: TextColumn) -> pa.Array:
    offsets, data = column
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _numbers(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    # From the buffer: pa.array() on numpy consults pandas, whose import costs a second of CPU.
    data = np.ascontiguousarray(values, dtype=type_.to_pandas_dtype())
    return pa.Array.from_buffers(type_, len(data), [None, pa.py_buffer(data)])


def _flags(values: np.ndarray) -> pa.Array:
    bits = np.packbits(values.astype(bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])


def _joined_text(columns: Sequence[TextColumn]) -> TextColumn:
    """Text columns end to end, as one column."""
    if len(columns) == 1:
        return columns[0]
    sizes = np.cumsum([0] + [len(data) for _, data in columns[:-1]], dtype=np.int64)
    if int(sizes[-1]) + len(columns[-1][1]) > np.iinfo(np.int32).max:
        raise ValueError("a text column over Arrow's 2 GiB string limit")
    offsets = np.concatenate(
        [off[:-1] + np.int32(base) for (off, _), base in zip(columns, sizes.tolist(), strict=True)]
        + [columns[-1][0][-1:] + np.int32(sizes[-1])]
    )
    return offsets.astype(np.int32), b"".join(data for _, data in columns)


def _names(
    batches: Sequence[SpanBatch],
    values: list[list[str]],
    codes: list[np.ndarray | None],
    names: list[list[str] | None],
) -> pa.Array:
    """A dictionary column over several batches: each batch's codes mapped to shared ones."""
    n = sum(len(b) for b in batches)
    if any(c is None for c in codes) or any(d is None for d in names):
        text = strings_text(list(chain.from_iterable(values)))
        return _text(n, text).dictionary_encode()
    shared: dict[str, int] = {}
    parts = []
    for code, dictionary in zip(codes, names, strict=True):
        assert code is not None and dictionary is not None
        remap = np.array([shared.setdefault(s, len(shared)) for s in dictionary], dtype=np.int32)
        parts.append(remap[code] if len(remap) else code.astype(np.int32))
    # Dictionary-encoded as decoded; Parquet stores the same text (the schema is not stored, so
    # readers see plain strings). From buffers, as pa.array() on a list imports pandas.
    return pa.DictionaryArray.from_arrays(
        _numbers(np.concatenate(parts), pa.int32()), _text(len(shared), strings_text(list(shared)))
    )


def span_record_batch(
    batches: SpanBatch | Sequence[SpanBatch], selected: Sequence[str] = ()
) -> pa.RecordBatch:
    """The archive's columns (those of `SpanBatch.to_polars`) for every span of `batches`, in
    order."""
    group = [batches] if isinstance(batches, SpanBatch) else list(batches)
    n = sum(len(b) for b in group)
    texts = [b.text_columns(selected) for b in group]

    def ids(get: str, width: int = 0) -> pa.Array:
        return _text(n, hex_text(list(chain.from_iterable(getattr(b, get) for b in group)), width))

    def numbers(get: str, type_: pa.DataType) -> pa.Array:
        return _numbers(np.concatenate([getattr(b, get) for b in group]), type_)

    columns: dict[str, pa.Array] = {
        "trace_id": ids("trace_id", 16),
        "span_id": ids("span_id", 8),
        "parent_span_id": ids("parent_span_id"),
        "service": _names(
            group,
            [b.service for b in group],
            [b.svc_codes for b in group],
            [b.svc_names for b in group],
        ),
        "service_version": _names(
            group,
            [b.service_version for b in group],
            [b.ver_codes for b in group],
            [b.ver_names for b in group],
        ),
        "operation": _names(
            group,
            [b.operation for b in group],
            [b.op_codes for b in group],
            [b.op_names for b in group],
        ),
        "kind": numbers("kind", pa.int8()),
        "status_code": numbers("status_code", pa.int8()),
        "http_status": numbers("http_status", pa.int32()),
        "rpc_grpc_status": numbers("rpc_grpc_status", pa.int32()),
        "start_ns": numbers("start_ns", pa.int64()),
        "end_ns": numbers("end_ns", pa.int64()),
        "duration_ns": numbers("duration_ns", pa.int64()),
        "is_error": _flags(np.concatenate([b.is_error for b in group])),
    }
    for k, key in enumerate(selected):
        columns[key] = _text(n, _joined_text([attrs[k] for attrs, _ in texts]))
    columns["events"] = _text(n, _joined_text([events for _, events in texts]))
    return pa.RecordBatch.from_pydict(columns)
