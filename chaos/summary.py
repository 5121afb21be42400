"""Read recordings back with the official protobuf classes and summarise them (tests, reports).

OTLP/JSON ids are hex; protobuf's generic JSON parser wants base64 for `bytes` fields, so ids are
converted before `json_format.ParseDict` and back after `MessageToDict`.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ID_KEYS = ("traceId", "spanId", "parentSpanId")


def _walk_ids(doc: Any, convert: Any) -> Any:
    if isinstance(doc, dict):
        return {
            k: (convert(v) if k in ID_KEYS and isinstance(v, str) else _walk_ids(v, convert))
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [_walk_ids(v, convert) for v in doc]
    return doc


def hex_to_b64(doc: Any) -> Any:
    """OTLP/JSON (hex ids) to protobuf-JSON (base64 ids)."""
    return _walk_ids(doc, lambda v: base64.b64encode(bytes.fromhex(v)).decode())


def b64_to_hex(doc: Any) -> Any:
    """protobuf-JSON (base64 ids) to OTLP/JSON (lowercase hex ids)."""
    return _walk_ids(doc, lambda v: base64.b64decode(v).hex())


def parse_line(line: str) -> ExportTraceServiceRequest | ExportMetricsServiceRequest:
    """One OTLP/JSON line as the official protobuf message."""
    doc = json.loads(line)
    msg: ExportTraceServiceRequest | ExportMetricsServiceRequest
    msg = ExportTraceServiceRequest() if "resourceSpans" in doc else ExportMetricsServiceRequest()
    json_format.ParseDict(hex_to_b64(doc), msg)
    return msg


def to_otlp_json(msg: ExportTraceServiceRequest | ExportMetricsServiceRequest) -> dict[str, Any]:
    """A protobuf message as OTLP/JSON data (hex ids, integer enums)."""
    doc: dict[str, Any] = b64_to_hex(json_format.MessageToDict(msg, use_integers_for_enums=True))
    return doc


def read_lines(path: str | Path) -> Iterator[str]:
    """The lines of a recording (.gz or plain)."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield line


def attrs(kvs: Any) -> dict[str, Any]:
    """An OTLP/JSON KeyValue list to a dict of Python values (intValue strings become ints)."""
    out: dict[str, Any] = {}
    for kv in kvs or ():
        ((kind, value),) = kv["value"].items()
        out[kv["key"]] = int(value) if kind == "intValue" else value
    return out


@dataclass
class Summary:
    """Counts per minute of event time from OTLP/JSON requests, for signature checks."""

    spans: int = 0
    # (minute, service, span name) -> [count, errors, total duration ms]
    ops: dict[tuple[int, str, str], list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0.0])
    )
    # (minute, key) -> count, e.g. "http5xx", "outcome.approved", "outcome.gold.declined"
    counts: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    # (minute, service, metric) -> max value over the service's pods (pool: used connections)
    metric_max: dict[tuple[int, str, str], float] = field(default_factory=dict)
    reasons: set[str] = field(default_factory=set)
    versions: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, doc: dict[str, Any], t0_ns: int) -> None:
        """Fold one OTLP/JSON export request in."""
        if "resourceSpans" in doc:
            self.add_traces(doc, t0_ns)
        else:
            self.add_metrics(doc, t0_ns)

    def add_traces(self, doc: dict[str, Any], t0_ns: int) -> None:
        """Fold a trace request in."""
        for rs in doc["resourceSpans"]:
            res = attrs(rs["resource"]["attributes"])
            svc = res["service.name"]
            self.versions[svc].add(res["service.version"])
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    self.spans += 1
                    start, end = int(sp["startTimeUnixNano"]), int(sp["endTimeUnixNano"])
                    minute = (start - t0_ns) // 60_000_000_000
                    a = attrs(sp.get("attributes"))
                    rec = self.ops[(minute, svc, sp["name"])]
                    rec[0] += 1
                    rec[1] += sp.get("status", {}).get("code", 0) == 2
                    rec[2] += (end - start) / 1e6
                    if sp["kind"] == 2 and a.get("http.response.status_code", 0) >= 500:
                        self.counts[(minute, "http5xx")] += 1
                    if (
                        svc == "payment"
                        and sp["name"] == "POST /payments"
                        and "app.payment.outcome" in a
                    ):
                        outcome = a["app.payment.outcome"]
                        self.counts[(minute, f"outcome.{outcome}")] += 1
                        self.counts[(minute, f"outcome.{a['app.loyalty_level']}.{outcome}")] += 1
                    if a.get("app.cache.hit") is not None:
                        self.counts[
                            (minute, f"cache.{'hit' if a['app.cache.hit'] else 'miss'}")
                        ] += 1

    def add_metrics(self, doc: dict[str, Any], t0_ns: int) -> None:
        """Fold a metrics request in."""
        for rm in doc["resourceMetrics"]:
            svc = attrs(rm["resource"]["attributes"])["service.name"]
            for sm in rm["scopeMetrics"]:
                for m in sm["metrics"]:
                    points = (m.get("gauge") or m.get("sum"))["dataPoints"]
                    for dp in points:
                        a = attrs(dp.get("attributes"))
                        if "k8s.container.status.last_terminated_reason" in a:
                            self.reasons.add(a["k8s.container.status.last_terminated_reason"])
                        if a.get("db.client.connection.state") == "idle":
                            continue
                        v = float(dp["asInt"]) if "asInt" in dp else float(dp["asDouble"])
                        # a snapshot at the end of a minute belongs to that minute
                        key = (
                            (int(dp["timeUnixNano"]) - t0_ns - 1) // 60_000_000_000,
                            svc,
                            m["name"],
                        )
                        self.metric_max[key] = max(self.metric_max.get(key, v), v)

    # -- queries over a minute range [a, b) --
    def op(self, service: str, name: str, a: int, b: int) -> tuple[int, int, float]:
        """(count, errors, mean duration ms) of one operation over minutes [a, b)."""
        n = e = 0
        d = 0.0
        for (minute, svc, nm), (c, err, dur) in self.ops.items():
            if svc == service and nm == name and a <= minute < b:
                n += int(c)
                e += int(err)
                d += dur
        return n, e, (d / n if n else 0.0)

    def count(self, key: str, a: int, b: int) -> int:
        """Sum of a counter over minutes [a, b)."""
        return sum(v for (minute, k), v in self.counts.items() if k == key and a <= minute < b)

    def errors(self, a: int, b: int, service: str | None = None) -> tuple[int, int]:
        """(spans, error spans) over minutes [a, b), optionally of one service."""
        n = e = 0
        for (minute, svc, _), (c, err, _d) in self.ops.items():
            if a <= minute < b and (service is None or svc == service):
                n += int(c)
                e += int(err)
        return n, e

    def metric(self, service: str, name: str, a: int, b: int) -> float:
        """Max of a metric over minutes [a, b) for one service (0 when absent)."""
        vals = [
            v
            for (minute, svc, nm), v in self.metric_max.items()
            if svc == service and nm == name and a <= minute < b
        ]
        return max(vals, default=0.0)


def summarize(path: str | Path, t0_ns: int, official: bool = False) -> Summary:
    """Summarise a recording; with `official`, every line is also parsed by the protobuf classes."""
    s = Summary()
    for line in read_lines(path):
        if official:
            parse_line(line)
        s.add(json.loads(line), t0_ns)
    return s
