"""Recorded OTLP/JSON (Collector file-exporter lines, single documents, or Jaeger API v3 output) into
the span-column frame of docs/contracts.md, and metric data points into plain samples.

This is a stop-gap adapter: the shared decoder in `operators.otlp` will replace the body of
`load_spans` / `spans_from_documents`, so nothing else in the Brain parses OTLP.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

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

_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


# Span attributes the Brain uses when present, on top of the configured ones: who a client span
# talks to (so a callee that never answered can be blamed) and which system it is (database, cache).
BRAIN_ATTRIBUTES: tuple[str, ...] = ("peer.service", "server.address", "db.system")


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


def any_value(value: Any) -> Any:
    """An OTLP AnyValue (JSON form) as a plain Python value."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return attributes_dict((value["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in value:
        try:
            return base64.b64decode(value["bytesValue"]).hex()
        except (ValueError, TypeError):
            return str(value["bytesValue"])
    return None


def attributes_dict(items: Iterable[Any] | None) -> dict[str, Any]:
    """OTLP key/value list as a dict."""
    out: dict[str, Any] = {}
    for item in items or ():
        if isinstance(item, dict) and "key" in item:
            out[str(item["key"])] = any_value(item.get("value"))
    return out


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _enum(value: Any, names: dict[str, int]) -> int:
    if isinstance(value, str):
        if value in names:
            return names[value]
        try:
            return int(value)
        except ValueError:
            return 0
    return int(value or 0)


def _hex(value: Any) -> str:
    return str(value or "").lower()


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def spans_from_documents(
    docs: Iterable[dict[str, Any]], attributes: Sequence[str] | None = None
) -> pl.DataFrame:
    """Decode OTLP/JSON trace documents into the contract's span columns."""
    selected = tuple(default_selected_attributes() if attributes is None else attributes)
    cols: dict[str, list[Any]] = {name: [] for name in SPAN_SCHEMA}
    for key in selected:
        cols[key] = []
    cols["events"] = []
    for raw_doc in docs:
        doc = _unwrap(raw_doc)
        for rs in doc.get("resourceSpans") or doc.get("resource_spans") or ():
            resource = attributes_dict((rs.get("resource") or {}).get("attributes"))
            service = _as_text(resource.get("service.name"))
            version = _as_text(resource.get("service.version"))
            for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ():
                for span in ss.get("spans") or ():
                    attrs = attributes_dict(span.get("attributes"))
                    kind = _enum(span.get("kind"), _KIND_NAMES)
                    status = _enum((span.get("status") or {}).get("code"), _STATUS_NAMES)
                    http = _int(
                        attrs.get("http.response.status_code", attrs.get("http.status_code")), 0
                    )
                    grpc = _int(attrs.get("rpc.grpc.status_code"), -1)
                    start = _int(span.get("startTimeUnixNano"), 0)
                    end = _int(span.get("endTimeUnixNano"), start)
                    cols["trace_id"].append(_hex(span.get("traceId")))
                    cols["span_id"].append(_hex(span.get("spanId")))
                    cols["parent_span_id"].append(_hex(span.get("parentSpanId")))
                    cols["service"].append(service)
                    cols["service_version"].append(version)
                    cols["operation"].append(str(span.get("name") or ""))
                    cols["kind"].append(kind)
                    cols["status_code"].append(status)
                    cols["http_status"].append(http)
                    cols["rpc_grpc_status"].append(grpc)
                    cols["start_ns"].append(start)
                    cols["end_ns"].append(end)
                    cols["duration_ns"].append(max(0, end - start))
                    cols["is_error"].append(
                        status == 2 or (kind == 2 and http >= 500) or grpc not in (-1, 0)
                    )
                    for key in selected:
                        value = attrs.get(key, resource.get(key))
                        cols[key].append(_as_text(value))
                    events = [
                        {
                            "name": str(ev.get("name") or ""),
                            "time_ns": _int(ev.get("timeUnixNano"), 0),
                            "attributes": attributes_dict(ev.get("attributes")),
                        }
                        for ev in span.get("events") or ()
                    ]
                    cols["events"].append(json.dumps(events) if events else "")
    schema = dict(SPAN_SCHEMA)
    for key in selected:
        schema[key] = pl.String
    schema["events"] = pl.String
    return pl.DataFrame(cols, schema=schema)


def load_spans(
    paths: Sequence[str | Path], attributes: Sequence[str] | None = None
) -> pl.DataFrame:
    """All spans of the recorded files as one contract frame (metric lines are skipped).

    The one place the Brain decodes OTLP; the lead swaps the body for `operators.otlp`.
    """
    docs = (doc for path in paths for doc in read_documents(path))
    return spans_from_documents(docs, attributes)


def load_metrics(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Gauge and sum data points of the recorded files as plain samples.

    Each sample is `{"service", "metric", "time_ns", "value", "attributes"}`; resource attributes
    other than `service.name` are merged into the point's attributes (pod names, restart reasons).
    """
    out: list[dict[str, Any]] = []
    for path in paths:
        for doc in read_documents(path):
            for rm in doc.get("resourceMetrics") or doc.get("resource_metrics") or ():
                resource = attributes_dict((rm.get("resource") or {}).get("attributes"))
                service = _as_text(resource.get("service.name"))
                for sm in rm.get("scopeMetrics") or ():
                    for metric in sm.get("metrics") or ():
                        body = metric.get("gauge") or metric.get("sum")
                        if not isinstance(body, dict):
                            continue
                        for dp in body.get("dataPoints") or ():
                            if "asDouble" in dp:
                                value = float(dp["asDouble"])
                            elif "asInt" in dp:
                                value = float(int(dp["asInt"]))
                            else:
                                continue
                            attrs = {k: v for k, v in resource.items() if k != "service.name"}
                            attrs.update(attributes_dict(dp.get("attributes")))
                            out.append(
                                {
                                    "service": service,
                                    "metric": str(metric.get("name") or ""),
                                    "time_ns": _int(dp.get("timeUnixNano"), 0),
                                    "value": value,
                                    "attributes": attrs,
                                }
                            )
    return out
