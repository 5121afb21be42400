"""Every emitted message is valid OTLP: official protobuf classes, hex ids in JSON, both agree."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chaos.otlp import traces_proto_reference
from chaos.recorder import record
from chaos.shop import Shop, ShopConfig
from chaos.summary import parse_line, read_lines, to_otlp_json

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def _batches(seconds: float = 40) -> list:  # type: ignore[type-arg]
    shop = Shop(seed=5, config=ShopConfig(rate_rps=10))
    shop.inject("errors")  # exceptions and error statuses in the mix
    shop.inject("dependency_timeout")
    return shop.advance(seconds)


def test_json_equals_the_official_encoding_with_hex_ids() -> None:
    batches = _batches()
    kinds = {b.kind for b in batches}
    assert kinds == {"spans", "metrics"}
    for batch in batches:
        msg = batch.proto()
        # the JSON line is exactly protobuf's JSON of the same message, ids turned into hex
        assert json.loads(batch.json_line()) == to_otlp_json(msg)
        # and the Kafka bytes parse back with the official classes into the same message
        cls = ExportTraceServiceRequest if batch.kind == "spans" else ExportMetricsServiceRequest
        again = cls()
        again.ParseFromString(batch.proto_bytes())
        assert again == msg
        if batch.kind == "spans":
            # the hand-written wire encoder writes exactly what the official serializer writes
            reference = traces_proto_reference(batch.spans)
            assert batch.proto_bytes() == reference.SerializeToString()
            assert json.loads(batch.json_line()) == to_otlp_json(reference)


def _ids(doc: Any) -> list[tuple[str, str]]:
    found = []
    for rs in doc.get("resourceSpans", []):
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                found.append(("traceId", sp["traceId"]))
                found.append(("spanId", sp["spanId"]))
                if "parentSpanId" in sp:
                    found.append(("parentSpanId", sp["parentSpanId"]))
    return found


def test_recording_lines_parse_and_carry_hex_ids(tmp_path: Path) -> None:
    out = tmp_path / "healthy.jsonl.gz"
    record("healthy", 3, 60, out, rate_rps=5, bundle=False)
    lines = list(read_lines(out))
    assert len(lines) > 60
    seen_metrics = False
    for line in lines:
        doc = json.loads(line)
        assert set(doc) in ({"resourceSpans"}, {"resourceMetrics"})
        msg = parse_line(line)  # official classes (ids converted for json_format)
        assert to_otlp_json(msg) == doc
        for key, value in _ids(doc):
            assert (HEX32 if key == "traceId" else HEX16).match(value), (key, value)
        seen_metrics |= "resourceMetrics" in doc
    assert seen_metrics
    # 64-bit integers as strings, enums as integers (protobuf JSON rules)
    first = json.loads(lines[0])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert isinstance(first["startTimeUnixNano"], str) and isinstance(first["kind"], int)


def test_the_projects_decoders_read_the_shop(tmp_path: Path) -> None:
    from operators.otlp.json_traces import decode_trace_json
    from operators.otlp.metrics import decode_metrics_json, decode_metrics_proto
    from operators.otlp.proto_traces import decode_trace_proto

    spans = metrics = 0
    for batch in _batches(20):
        line = batch.json_line()
        data = batch.proto().SerializeToString()
        if batch.kind == "spans":
            a, b = decode_trace_proto(data), decode_trace_json(line)
            assert a.to_polars().equals(b.to_polars())
            spans += a.to_polars().height
        else:
            a, b = decode_metrics_proto(data), decode_metrics_json(line)
            metrics += 1
    assert spans > 500 and metrics >= 2
