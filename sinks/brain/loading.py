"""Recorded OTLP (Collector file-exporter files, single documents, or Jaeger API v3 output) into the
span-column frame of docs/contracts.md, and metric data points into plain samples.

Decoding is the shared decoder's (`operators.otlp`): recordings in JSON lines or length-prefixed
proto, single JSON documents and Jaeger API v3 output alike; nothing else in the Brain parses OTLP.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from operators.otlp import Decoded, DecodeError, DecodeLimits, decode_message, iter_recording
from operators.otlp.json_traces import trace_json_to_batch
from operators.otlp.recording import UNREADABLE, check_recordings, open_recording
from sre_space.records import DeadLetter

SPAN_SCHEMA: dict[str, Any] = {
    "trace_id": pl.String,
    "span_id": pl.String,
    "parent_span_id": pl.String,
    "service": pl.String,
    "service_version": pl.String,
    "operation": pl.String,
    "kind": pl.Int8,
    "status_code": pl.Int8,
    "http_status": pl.Int32,
    "rpc_grpc_status": pl.Int32,
    "start_ns": pl.Int64,
    "end_ns": pl.Int64,
    "duration_ns": pl.Int64,
    "is_error": pl.Boolean,
}


# The Brain needs these even when a site config narrows `selected_attributes`: who was called
# (a callee that never answered has no span of its own), what kind of store it was and which
# statement it ran (siblings are told apart by target: `structure.call_groups`), and which instance
# served the span (pod metrics are joined on it: `pods`).
BRAIN_ATTRIBUTES: tuple[str, ...] = (
    "k8s.pod.name",
    "service.instance.id",
    "peer.service",
    "server.address",
    "db.system",
    "db.query.text",
    "db.statement",
)


def default_selected_attributes() -> tuple[str, ...]:
    """The `signals.selected_attributes` of the pipeline config (defaults merged with SRE_CONFIG),
    plus `BRAIN_ATTRIBUTES`."""
    from sre_space import settings

    selected: tuple[str, ...]
    try:
        selected = tuple(settings.load_settings().pipeline.signals.selected_attributes)
    except ValueError:
        # An invalid section elsewhere in the config must not stop a diagnosis: fall back to the
        # packaged defaults' list.
        try:
            data = settings.default_config_data().get("signals", {})
            selected = tuple(str(a) for a in data.get("selected_attributes", ()))
        except (OSError, ValueError, AttributeError):
            selected = ()
    return (*selected, *(a for a in BRAIN_ATTRIBUTES if a not in selected))


def empty_spans(attributes: Sequence[str] = ()) -> pl.DataFrame:
    """A frame with the contract's columns and no rows."""
    schema = dict(SPAN_SCHEMA)
    for key in attributes:
        schema[key] = pl.String
    schema["events"] = pl.String
    return pl.DataFrame(schema=schema)


def read_documents(path: str | Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of one file: a whole document, or one export request per line (`.gz` ok)."""
    p = Path(path)
    raw = p.read_bytes()
    if p.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        yield _unwrap(whole)
        return
    if isinstance(whole, list):
        for item in whole:
            if isinstance(item, dict):
                yield _unwrap(item)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            message = f"{p}:{number}: not JSON ({exc.msg}); expected OTLP/JSON lines"
            raise ValueError(message) from None
        if isinstance(doc, dict):
            yield _unwrap(doc)


def _unwrap(doc: dict[str, Any]) -> dict[str, Any]:
    # Jaeger API v3 wraps the OTLP TracesData in {"result": {...}}.
    result = doc.get("result")
    if isinstance(result, dict) and ("resourceSpans" in result or "resource_spans" in result):
        return result
    return doc


def spans_from_documents(
    docs: Iterable[dict[str, Any]], attributes: Sequence[str] | None = None
) -> pl.DataFrame:
    """Decode OTLP/JSON trace documents (or Jaeger v3 output) into the contract's span columns."""
    selected = tuple(default_selected_attributes() if attributes is None else attributes)
    frames = []
    for doc in docs:
        doc = _unwrap(doc)
        if not (doc.get("resourceSpans") or doc.get("resource_spans")):
            continue  # a metrics document, or an empty result
        try:
            batch = trace_json_to_batch(doc)
        except DecodeError as exc:
            raise ValueError(f"not an OTLP/JSON trace document: {exc.reason}") from None
        frames.append(batch.to_polars(selected))
    return _concat(frames, selected)


def _concat(frames: list[pl.DataFrame], selected: Sequence[str]) -> pl.DataFrame:
    if not frames:
        return empty_spans(selected)
    return pl.concat(frames, how="vertical")


def _whole_document(path: Path) -> bool:
    """True for a file holding one (possibly pretty-printed) JSON document, not one per line."""
    try:
        with open_recording(path) as fh:
            first = fh.readline().strip()
    except UNREADABLE:
        return False  # a damaged file: read record by record, as far as it goes
    if not first.startswith((b"{", b"[")):
        return False
    try:
        json.loads(first)
    except ValueError:
        return True
    return False


def _decoded(path: str | Path, strict: bool = True) -> Iterator[Decoded]:
    """Every export request of a recording through the shared decoder (JSON lines or proto);
    an undecodable one is a ValueError, or skipped when not `strict`."""
    limits = DecodeLimits()
    for msg in iter_recording(path):
        out = decode_message(msg, limits)
        if isinstance(out, DeadLetter):
            if not strict:
                continue
            raise ValueError(f"{path}: record {msg.offset}: {out.reason}")
        yield out


def load_spans(
    paths: Sequence[str | Path], attributes: Sequence[str] | None = None, *, strict: bool = True
) -> pl.DataFrame:
    """All spans of the recorded files as one contract frame (metric requests are skipped);
    `strict=False` skips undecodable records (a replay has dead-lettered them already)."""
    check_recordings(paths)
    selected = tuple(default_selected_attributes() if attributes is None else attributes)
    frames: list[pl.DataFrame] = []
    for path in paths:
        if _whole_document(Path(path)):
            frames.append(spans_from_documents(read_documents(path), selected))
            continue
        frames.extend(
            d.spans.to_polars(selected) for d in _decoded(path, strict) if d.spans is not None
        )
    return _concat([f for f in frames if f.height], selected)


def load_metrics(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Gauge and sum data points of the recorded files as plain samples.

    Each sample is `{"service", "metric", "unit", "time_ns", "value", "attributes"}`; the point's
    attributes plus the resource attribute that names its instance (`k8s.pod.name`, ...).
    """
    check_recordings(paths)
    out: list[dict[str, Any]] = []
    for path in paths:
        if _whole_document(Path(path)):
            continue
        for decoded in _decoded(path):
            batch = decoded.metrics
            if batch is None:
                continue
            for i in range(len(batch)):
                attrs = dict(batch.attributes[i])
                if batch.instance[i]:
                    attrs.setdefault(batch.instance_key[i] or "k8s.pod.name", batch.instance[i])
                out.append(
                    {
                        "service": batch.service[i],
                        "metric": batch.metric[i],
                        "unit": batch.unit[i],
                        "time_ns": batch.ts_ns[i],
                        "value": batch.value[i],
                        "attributes": attrs,
                    }
                )
    return out
