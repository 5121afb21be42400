"""Jaeger v2 fed by the real Collector, read by `sre-space diagnose --trace ID` through API v3.

A trace made with the OpenTelemetry SDK goes SDK -> Collector -> Jaeger (in-memory storage); the
same spans are also written to an OTLP/JSON file. `diagnose --trace ID` against Jaeger must name
the same locus as `diagnose --trace FILE`. Bad answers end in a clear error, never a hang: each
Jaeger request is bounded by SRE_JAEGER_TIMEOUT (set to 2 s here) per connect and per read.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from bench.otlp_encode import to_otlp_json
from tests.ecosystem.conftest import REPO, Jaeger, free_port
from tests.ecosystem.sdk import span_exporter

pytestmark = pytest.mark.jaeger

TIMEOUT_S = 2.0
# The command's own bound: interpreter start plus one request that times out.
COMMAND_TIMEOUT_S = 60.0


def _diagnose(trace: str, jaeger_url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SRE_JAEGER_URL"}
    env["SRE_JAEGER_TIMEOUT"] = str(TIMEOUT_S)
    if jaeger_url:
        env["SRE_JAEGER_URL"] = jaeger_url
    return subprocess.run(
        [sys.executable, "-m", "sre_space.cli", "diagnose", "--trace", trace, "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def _failing_checkout(endpoint: str, memory: InMemorySpanExporter) -> str:
    """frontend -> checkout -> payment (fails, with a healthy inventory call beside it)."""
    providers = {}
    for service in ("frontend", "checkout", "payment", "inventory"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(span_exporter("grpc", endpoint)))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        providers[service] = provider
    t0 = time.time_ns() - 5 * 10**9
    ms = 10**6

    def span(service: str, name: str, kind: SpanKind, start: int, end: int, parent, fail: bool):  # type: ignore[no-untyped-def]
        tracer = providers[service].get_tracer("sre-space.tests")
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        s = tracer.start_span(name, context=ctx, kind=kind, start_time=t0 + start * ms)
        s.set_attribute("http.response.status_code", 500 if fail else 200)
        if fail:
            s.set_status(Status(StatusCode.ERROR, "card declined"))
        return s, t0 + end * ms

    root, root_end = span("frontend", "GET /checkout", SpanKind.SERVER, 0, 400, None, True)
    call, call_end = span("frontend", "POST checkout", SpanKind.CLIENT, 10, 390, root, True)
    co, co_end = span("checkout", "POST /api/checkout", SpanKind.SERVER, 20, 380, call, True)
    inv, inv_end = span("inventory", "GET /stock", SpanKind.SERVER, 30, 80, co, False)
    pay_call, pay_call_end = span("checkout", "POST charge", SpanKind.CLIENT, 100, 370, co, True)
    pay, pay_end = span("payment", "POST /charge", SpanKind.SERVER, 110, 360, pay_call, True)
    pay.add_event("exception", {"exception.type": "CardDeclined", "exception.message": "no"})
    for s, end in (
        (inv, inv_end),
        (pay, pay_end),
        (pay_call, pay_call_end),
        (co, co_end),
        (call, call_end),
        (root, root_end),
    ):
        s.end(end_time=end)
    for provider in providers.values():
        provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def _wait_for_trace(jaeger: Jaeger, trace_id: str, spans: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        try:
            url = f"{jaeger.url}/api/v3/traces/{trace_id}"
            with urllib.request.urlopen(url, timeout=5) as resp:
                body = json.loads(resp.read())
            seen = sum(
                len(ss.get("spans", []))
                for rs in body["result"]["resourceSpans"]
                for ss in rs.get("scopeSpans", [])
            )
            if seen >= spans:
                return
        except OSError:  # 404 until the Collector's batch reaches Jaeger
            pass
        time.sleep(0.2)
    raise AssertionError(f"Jaeger holds {seen} of the trace's {spans} spans after {timeout:.0f} s")


@pytest.fixture
def sent_trace(
    tmp_path: Path, jaeger: Jaeger, collector_factory, topic_factory, kafka_bootstrap: str
) -> tuple[str, Path]:
    """A failing trace in Jaeger (through the Collector) and the same spans in an OTLP/JSON file."""
    collector = collector_factory(
        kafka_bootstrap, topic_factory(1), topic_factory(1), jaeger_otlp=jaeger.otlp_grpc
    )
    memory = InMemorySpanExporter()
    trace_id = _failing_checkout(collector.grpc, memory)
    finished = memory.get_finished_spans()
    path = tmp_path / "trace.json"
    path.write_text(to_otlp_json(encode_spans(finished)) + "\n")
    _wait_for_trace(jaeger, trace_id, len(finished))
    return trace_id, path


@pytest.mark.collector
def test_diagnose_trace_id_through_jaeger_names_the_same_locus_as_the_file(
    sent_trace: tuple[str, Path], jaeger: Jaeger
) -> None:
    trace_id, path = sent_trace
    from_file = _diagnose(str(path), None)
    from_jaeger = _diagnose(trace_id, jaeger.url)
    assert from_file.returncode == 0, from_file.stderr
    assert from_jaeger.returncode == 0, from_jaeger.stderr
    a, b = json.loads(from_file.stdout), json.loads(from_jaeger.stdout)
    assert a["locus"]["service"] == "payment" and a["locus"]["operation"] == "POST /charge"
    assert b["locus"] == a["locus"]
    assert (b["trace_id"], b["spans"], b["duration_ms"]) == (trace_id, 6, a["duration_ms"])


def test_a_trace_id_jaeger_does_not_hold_is_a_clear_error(jaeger: Jaeger) -> None:
    done = _diagnose("0123456789abcdef0123456789abcdef", jaeger.url)
    assert done.returncode == 1
    assert "not found in Jaeger" in done.stderr, done.stderr


class _Bad(BaseHTTPRequestHandler):
    """Answers that are not Jaeger: garbage with 200, a 502, or nothing until the client gives up."""

    def do_GET(self) -> None:
        if "/garbage" in self.path or self.path.endswith("a" * 32):
            body = b"\x00<html>not json"
            self.send_response(200)
        elif self.path.endswith("b" * 32):
            body = b'{"error": {"message": "backend down"}}'
            self.send_response(502)
        else:  # hang: longer than the client's timeout
            time.sleep(TIMEOUT_S * 3)
            body = b"{}"
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The client may have given up first, as it should.
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def bad_jaeger() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Bad)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("trace_id", "words"),
    [
        ("a" * 32, "not JSON"),
        ("b" * 32, "HTTP 502"),
        ("c" * 32, f"no answer within {TIMEOUT_S:g} s"),
    ],
)
def test_a_broken_jaeger_is_a_clear_error_within_the_timeout(
    bad_jaeger: str, trace_id: str, words: str
) -> None:
    began = time.monotonic()
    done = _diagnose(trace_id, bad_jaeger)
    assert done.returncode == 1 and words in done.stderr, done.stderr
    assert time.monotonic() - began < 30


def test_jaeger_down_is_a_clear_error() -> None:
    done = _diagnose("d" * 32, f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1 and "Connection refused" in done.stderr, done.stderr
