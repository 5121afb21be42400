"""OTLP/JSON loading, the `diagnose` command line (window and trace modes) and the Jaeger adapter."""

from __future__ import annotations

import argparse
import gzip
import json
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sinks.brain import cli
from sinks.brain.jaeger import JaegerClient
from sinks.brain.loading import load_metrics, load_spans
from sre_space.timeutil import ns_to_rfc3339, rfc3339_to_ns
from tests.brain.builders import ATTRS, frame, span_hex
from tests.brain.otlp_writer import metrics_request, spans_request
from tests.brain.synth import BASELINE, INCIDENT, generate
from tests.brain.trace_cases import CASES

TIMEOUT_CASE = next(c for c in CASES if c.name == "timeout_caller_hanging_callee")
OFFICIAL_EXAMPLE = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "my.library", "version": "1.0.0"},
                    "spans": [
                        {
                            "traceId": "5B8EFFF798038103D269B633813FC60C",
                            "spanId": "EEE19B7EC3C1B174",
                            "parentSpanId": "EEE19B7EC3C1B173",
                            "name": "I'm a server span",
                            "startTimeUnixNano": 1544712660000000000,
                            "endTimeUnixNano": 1544712661000000000,
                            "kind": 2,
                            "attributes": [
                                {"key": "my.span.attr", "value": {"stringValue": "some value"}}
                            ],
                        }
                    ],
                }
            ],
        }
    ]
}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_official_example_decodes_hex_ids_not_base64(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(OFFICIAL_EXAMPLE, indent=2))
    df = load_spans([path], attributes=ATTRS)
    row = df.row(0, named=True)
    assert row["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert row["span_id"] == "eee19b7ec3c1b174" and row["parent_span_id"] == "eee19b7ec3c1b173"
    assert row["kind"] == 2 and row["duration_ns"] == 1_000_000_000 and not row["is_error"]


@pytest.mark.parametrize("style", [0, 1])
def test_round_trip_through_otlp_json_lines_gz(tmp_path: Path, style: int) -> None:
    original = frame(TIMEOUT_CASE.spans)
    path = tmp_path / "spans.jsonl.gz"
    half = original.height // 2
    lines = [
        json.dumps(spans_request(original[:half], style)),
        json.dumps(spans_request(original[half:], style)),
    ]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    loaded = load_spans([path], attributes=ATTRS)
    cols = [
        "trace_id",
        "span_id",
        "parent_span_id",
        "service",
        "operation",
        "kind",
        "status_code",
        "start_ns",
        "end_ns",
        "is_error",
        "http_status",
        "rpc_grpc_status",
    ]
    a = original.select(cols).sort("span_id")
    b = loaded.select(cols).sort("span_id")
    assert a.equals(b)


def test_trace_command_on_otlp_and_jaeger_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = spans_request(frame(TIMEOUT_CASE.spans), style=1)
    for name, doc in (("otlp.json", request), ("jaeger.json", {"result": request})):
        path = tmp_path / name
        path.write_text(json.dumps(doc))
        assert cli.run(_parse(["--trace", str(path), "--json"])) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["locus"] == {
            "service": "shipping",
            "operation": "SELECT rates",
            "span_id": span_hex("t1", "db"),
        }
        assert "used up the budget" in out["why"]
        assert out["patterns"] == []
    assert cli.run(_parse(["--trace", str(tmp_path / "otlp.json")])) == 0
    assert "locus: shipping 'SELECT rates'" in capsys.readouterr().out


def test_window_command_on_a_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shop = generate("oom", 3, traces_per_window=120)
    rec = tmp_path / "oom.jsonl"
    with rec.open("w") as fh:
        for chunk in shop.spans.partition_by("service"):
            fh.write(json.dumps(spans_request(chunk)) + "\n")
        fh.write(json.dumps(metrics_request(shop.metrics)) + "\n")
    changes = tmp_path / "changes.json"
    changes.write_text(json.dumps(shop.commits))
    argv = [
        str(rec),
        "--window",
        ns_to_rfc3339(INCIDENT[0]),
        ns_to_rfc3339(INCIDENT[1]),
        "--baseline",
        str(BASELINE[0]),
        str(BASELINE[1]),
        "--changes",
        str(changes),
        "--json",
        "--incident-id",
        "inc-7",
    ]
    assert cli.run(_parse(argv)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["schema"] == "sre.diagnosis/v1" and out["incident_id"] == "inc-7"
    top = out["candidates"][0]
    assert (top["service"], top["fault_class"]) == ("payment", "memory_leak")
    assert any(e["kind"] == "resource_oom_kill" for e in top["evidence"])
    assert cli.run(_parse(argv[:-3])) == 0
    text = capsys.readouterr().out
    assert text.startswith("Root cause: payment") and "memory_leak" in text
    assert len(load_metrics([rec])) == len(shop.metrics)


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.run(_parse([])) == 2
    assert cli.run(_parse([str(tmp_path / "x.json")])) == 2
    # A missing file is bad usage (2), as with --window; an unreadable one is bad input (1).
    assert cli.run(_parse(["--trace", str(tmp_path / "missing.json")])) == 2
    assert cli.run(_parse([str(tmp_path / "missing.json"), "--window", "1", "2"])) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    assert cli.run(_parse([str(bad), "--window", "1", "2"])) == 1
    with pytest.raises(SystemExit):
        _parse(["x", "--window", "yesterday", "today"])
    capsys.readouterr()


class _Jaeger:
    def __init__(self, doc: dict[str, Any], trace_id: str) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                parsed = urllib.parse.urlparse(self.path)
                query = urllib.parse.parse_qs(parsed.query)
                status, body = 404, {"error": {"message": "trace not found"}}
                if parsed.path == f"/api/v3/traces/{trace_id}":
                    status, body = 200, {"result": doc}
                elif parsed.path == "/api/v3/traces":
                    if "query.start_time_min" in query and "query.start_time_max" in query:
                        hi = rfc3339_to_ns(query["query.start_time_max"][0])
                        now = int(datetime.now(tz=UTC).timestamp() * 1e9)
                        if hi > now:  # exactly "now" is a 404, as in real Jaeger
                            status, body = 200, {"result": doc}
                    else:
                        status, body = 400, {"error": {"message": "bounds required"}}
                elif parsed.path == "/api/v3/traces/" + "b" * 32:
                    status, body = 500, {"error": {"message": "storage down"}}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jaeger() -> Iterator[_Jaeger]:
    f = frame(TIMEOUT_CASE.spans)
    server = _Jaeger(spans_request(f, style=1), f.get_column("trace_id")[0])
    yield server
    server.close()


def test_jaeger_adapter(jaeger: _Jaeger) -> None:
    client = JaegerClient(jaeger.url, timeout_s=5, attributes=ATTRS)
    tid = frame(TIMEOUT_CASE.spans).get_column("trace_id")[0]
    ok = client.trace(tid.upper())
    assert ok.status == "ok" and ok.data is not None and ok.data.height == len(TIMEOUT_CASE.spans)
    assert client.trace("a" * 32).status == "not_found"
    down = client.trace("b" * 32)
    assert down.status == "error" and "500" in down.error
    assert client.trace("not-hex").status == "error"
    found = client.search(
        "frontend", start_ns=int(datetime.now(tz=UTC).timestamp() * 1e9) - 3600 * 10**9
    )
    assert found.status == "ok"
    last = urllib.parse.parse_qs(urllib.parse.urlparse(jaeger.requests[-1]).query)
    assert last["query.service_name"] == ["frontend"] and "query.num_traces" in last
    unreachable = JaegerClient("http://127.0.0.1:9", timeout_s=1).trace(tid)
    assert unreachable.status == "error"


def test_trace_command_through_jaeger(
    jaeger: _Jaeger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SRE_JAEGER_URL", jaeger.url)
    tid = frame(TIMEOUT_CASE.spans).get_column("trace_id")[0]
    assert cli.run(_parse(["--trace", tid, "--json"])) == 0
    assert json.loads(capsys.readouterr().out)["locus"]["service"] == "shipping"


def test_spans_frame_types_match_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(spans_request(frame(TIMEOUT_CASE.spans))))
    df = load_spans([path])
    assert df.schema["kind"] == pl.Int8 and df.schema["start_ns"] == pl.Int64
    assert df.schema["is_error"] == pl.Boolean and df.columns[-1] == "events"
