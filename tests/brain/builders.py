"""Build small span frames by hand: one tuple per span, times in milliseconds."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from sinks.brain.loading import SPAN_SCHEMA

MS = 1_000_000
T0 = 1_764_000_000_000_000_000
ATTRS = ("http.route", "k8s.pod.name", "app.loyalty_level", "app.payment.outcome", "app.product.id")


@dataclass(frozen=True)
class S:
    """One span: ids are short names (expanded to hex), times in ms from the trace start."""

    id: str
    parent: str
    service: str
    op: str
    start: float
    end: float
    error: bool = False
    kind: int = 2
    http: int = 0
    grpc: int = -1
    version: str = "1.0.0"
    attrs: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def hex_id(name: str, width: int = 16) -> str:
    """A stable hex id for a short name."""
    return name.encode().hex().rjust(width, "0")[-width:] if name else ""


def frame(spans: list[S], trace: str = "t1", offset_ms: float = 0.0) -> pl.DataFrame:
    """A contract frame for one trace."""
    rows = []
    tid = hex_id(trace, 32)
    for s in spans:
        start = T0 + int((offset_ms + s.start) * MS)
        end = T0 + int((offset_ms + s.end) * MS)
        row: dict[str, Any] = {
            "trace_id": tid,
            "span_id": hex_id(trace + "." + s.id),
            "parent_span_id": hex_id(trace + "." + s.parent) if s.parent else "",
            "service": s.service,
            "service_version": s.version,
            "operation": s.op,
            "kind": s.kind,
            "status_code": 2 if s.error else 0,
            "http_status": s.http,
            "rpc_grpc_status": s.grpc,
            "start_ns": start,
            "end_ns": end,
            "duration_ns": end - start,
            "is_error": s.error or (s.kind == 2 and s.http >= 500) or s.grpc not in (-1, 0),
            "events": json.dumps(s.events) if s.events else "",
        }
        for key in ATTRS:
            row[key] = s.attrs.get(key, "")
        rows.append(row)
    schema = dict(SPAN_SCHEMA)
    for key in ATTRS:
        schema[key] = pl.String
    schema["events"] = pl.String
    return pl.DataFrame(rows, schema=schema)


def span_hex(trace: str, name: str) -> str:
    """The hex span id `frame` gives the span `name` of `trace`."""
    return hex_id(trace + "." + name)
