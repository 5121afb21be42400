"""A decoded span batch as an Arrow record batch in the archive's schema, built from columns.

The ids are hex-encoded and the attribute texts spliced with numpy, the names taken through
their dictionary codes: no Python step per span, except for the few values only Python can print.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from operators.otlp.spans import SpanBatch
from operators.otlp.text import TextColumn, hex_text


def _text(n: int, column: TextColumn) -> pa.Array:
    offsets, data = column
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _names(values: list[str], codes: np.ndarray | None, names: list[str] | None) -> pa.Array:
    if codes is None or names is None:
        return pa.array(values, type=pa.string()).dictionary_encode()
    # Dictionary-encoded as decoded; Parquet stores the same text (the schema is not stored, so
    # readers see plain strings).
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, type=pa.int32()), pa.array(names, type=pa.string())
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
        "kind": pa.array(batch.kind, type=pa.int8()),
        "status_code": pa.array(batch.status_code, type=pa.int8()),
        "http_status": pa.array(batch.http_status, type=pa.int32()),
        "rpc_grpc_status": pa.array(batch.rpc_grpc_status, type=pa.int32()),
        "start_ns": pa.array(batch.start_ns, type=pa.int64()),
        "end_ns": pa.array(batch.end_ns, type=pa.int64()),
        "duration_ns": pa.array(batch.duration_ns, type=pa.int64()),
        "is_error": pa.array(batch.is_error, type=pa.bool_()),
    }
    for key, column in zip(selected, attributes, strict=True):
        columns[key] = _text(n, column)
    columns["events"] = _text(n, events)
    return pa.RecordBatch.from_pydict(columns)
