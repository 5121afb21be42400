"""A decoded span batch as an Arrow record batch in the archive's schema, built from columns.

The ids are hex-encoded and the attribute texts spliced with numpy, the names taken through
their dictionary codes: no Python step per span, except for the few values only Python can print.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def _names(values: list[str], codes: np.ndarray | None, names: list[str] | None) -> pa.Array:
    if codes is None or names is None:
        return _text(len(values), strings_text(values)).dictionary_encode()
    # Dictionary-encoded as decoded; Parquet stores the same text (the schema is not stored, so
    # readers see plain strings). From buffers, as pa.array() on a list imports pandas.
    return pa.DictionaryArray.from_arrays(
        _numbers(codes, pa.int32()), _text(len(names), strings_text(names))
    )


def span_record_batch(batch: SpanBatch, selected: Sequence[str] = ()) -> pa.RecordBatch:
    """The archive's columns (those of `SpanBatch.to_polars`) for every span of `batch`."""
    n = len(batch)
    attributes, events = batch.text_columns(selected)
    columns: dict[str, pa.Array] = {
        "trace_id": _text(n, hex_text(batch.trace_id, 16)),
        "span_id": _text(n, hex_text(batch.span_id, 8)),
        "parent_span_id": _text(n, hex_text(batch.parent_span_id)),
        "service": _names(batch.service, batch.svc_codes, batch.svc_names),
        "service_version": _names(batch.service_version, batch.ver_codes, batch.ver_names),
        "operation": _names(batch.operation, batch.op_codes, batch.op_names),
        "kind": _numbers(batch.kind, pa.int8()),
        "status_code": _numbers(batch.status_code, pa.int8()),
        "http_status": _numbers(batch.http_status, pa.int32()),
        "rpc_grpc_status": _numbers(batch.rpc_grpc_status, pa.int32()),
        "start_ns": _numbers(batch.start_ns, pa.int64()),
        "end_ns": _numbers(batch.end_ns, pa.int64()),
        "duration_ns": _numbers(batch.duration_ns, pa.int64()),
        "is_error": _flags(batch.is_error),
    }
    for key, column in zip(selected, attributes, strict=True):
        columns[key] = _text(n, column)
    columns["events"] = _text(n, events)
    return pa.RecordBatch.from_pydict(columns)
