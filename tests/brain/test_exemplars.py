"""The Brain's fallback to Jaeger for exemplar traces the span archive no longer holds, against a
local HTTP server that answers Jaeger's API v3 (`/api/v3/traces/{id}`)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import polars as pl
import pytest

from sinks.brain.exemplars import JaegerExemplars, exemplar_trace_ids, missing_trace_ids
from sinks.brain.jaeger import JaegerClient
from sre_space.timeutil import ns_to_rfc3339
from tests.brain.builders import ATTRS, T0, S, frame, hex_id
from tests.brain.otlp_writer import spans_request

TRACE = [
    S("root", "", "frontend", "GET /checkout", 0, 300, error=True, http=500),
    S("co", "root", "checkout", "POST /api/checkout", 10, 290, error=True, http=500),
    S("pay", "co", "payment", "POST /charge", 20, 280, error=True, http=500),
]
HELD, IN_JAEGER, OTHER, MISSING, BROKEN, HANGING = (
    hex_id(n, 32) for n in ("held", "jaeger", "other", "missing", "broken", "hanging")
)
HANG_S = 3.0


class _ApiV3:
    """Jaeger's API v3 for a few traces: the Jaeger ones, a 404, a 500 and one that hangs."""

    def __init__(self, traces: dict[str, pl.DataFrame]) -> None:
        self.requests: list[str] = []
        docs = {tid: spans_request(f, style=1) for tid, f in traces.items()}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                tid = self.path.rsplit("/", 1)[-1]
                outer.requests.append(tid)
                status, body = 404, {"error": {"message": "trace not found"}}
                if tid in docs:
                    status, body = 200, {"result": docs[tid]}
                elif tid == BROKEN:
                    status, body = 500, {"error": {"message": "storage down"}}
                elif tid == HANGING:
                    time.sleep(HANG_S)  # longer than the client's timeout
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client may have given up, as it should
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def api() -> Iterator[_ApiV3]:
    server = _ApiV3({IN_JAEGER: frame(TRACE, "jaeger"), OTHER: frame(TRACE, "other", 1000)})
    yield server
    server.server.shutdown()
    server.server.server_close()


def _fallback(api: _ApiV3, logs: list[str], **kwargs: Any) -> JaegerExemplars:
    client = JaegerClient(api.url, timeout_s=kwargs.pop("timeout_s", 5.0), attributes=ATTRS)
    return JaegerExemplars(client, logs.append, **kwargs)


def test_exemplar_ids_anomalies_first_then_failing_then_slowest_in_the_window() -> None:
    w0 = T0
    signals: list[dict[str, Any]] = [
        {
            "kind": "span",
            "service": "checkout",
            "window_start": ns_to_rfc3339(w0 + 10 * 10**9),
            "failing_trace_ids": ["F2"],
            "slowest_trace_ids": ["s2", "a1"],
        },
        {
            "kind": "span",
            "service": "checkout",
            "window_start": w0,
            "failing_trace_ids": ["f1"],
            "slowest_trace_ids": ["s1"],
        },
        {"kind": "span", "service": "cart", "window_start": w0, "failing_trace_ids": ["cart"]},
        {"kind": "span", "service": "checkout", "window_start": w0 - 1, "failing_trace_ids": ["o"]},
        {"kind": "metric", "service": "checkout", "window_start": w0, "failing_trace_ids": ["m"]},
    ]
    anomalies = [{"exemplar_trace_ids": ["A1"]}, {}]
    window = (w0, w0 + 60 * 10**9)
    ids = exemplar_trace_ids(anomalies, signals, ["checkout"], window)
    assert ids == ["a1", "f1", "f2", "s1", "s2"]
    assert "cart" in exemplar_trace_ids(anomalies, signals)


def test_missing_ids_are_those_without_a_span() -> None:
    held = frame(TRACE, "held")
    assert missing_trace_ids(held, [HELD.upper(), MISSING]) == [MISSING]
    assert missing_trace_ids(pl.DataFrame(), [HELD]) == [HELD]


def test_fetches_up_to_limit_of_the_missing_traces_and_adds_them(api: _ApiV3) -> None:
    logs: list[str] = []
    fallback = _fallback(api, logs, limit=2)
    archive = frame(TRACE, "held")
    out = fallback.add_missing(archive, [HELD, MISSING, IN_JAEGER, OTHER])
    # The held trace is not asked for; the limit counts the missing ones, found or not.
    assert api.requests == [MISSING, IN_JAEGER]
    assert out.height == 2 * len(TRACE)
    fetched = out.filter(pl.col("trace_id") == IN_JAEGER).sort("start_ns")
    expected = frame(TRACE, "jaeger").sort("start_ns")
    assert fetched.select(expected.columns).equals(expected)
    assert any(MISSING in m and "nor in Jaeger" in m for m in logs), logs
    assert any(IN_JAEGER in m and f"{len(TRACE)} spans from Jaeger" in m for m in logs), logs
    # Asked again (the responders do, while the Brain is unsure): the fetched trace is cached.
    again = fallback.add_missing(archive, [IN_JAEGER])
    assert again.height == out.height and api.requests == [MISSING, IN_JAEGER]


def test_an_empty_archive_gets_the_fetched_traces(api: _ApiV3) -> None:
    logs: list[str] = []
    out = _fallback(api, logs).add_missing(pl.DataFrame(), [IN_JAEGER, OTHER])
    assert sorted(set(out["trace_id"])) == sorted([IN_JAEGER, OTHER])
    assert out.height == 2 * len(TRACE)


def test_nothing_to_fetch_asks_nothing(api: _ApiV3) -> None:
    archive = frame(TRACE, "held")
    out = _fallback(api, []).add_missing(archive, [HELD])
    assert out is archive and api.requests == []


def test_a_jaeger_error_ends_the_look_up(api: _ApiV3) -> None:
    logs: list[str] = []
    archive = frame(TRACE, "held")
    out = _fallback(api, logs).add_missing(archive, [BROKEN, IN_JAEGER])
    assert out.equals(archive) and api.requests == [BROKEN]
    assert any("Jaeger error" in m and "HTTP 500" in m for m in logs), logs


def test_a_hanging_jaeger_costs_at_most_the_timeout(api: _ApiV3) -> None:
    logs: list[str] = []
    began = time.monotonic()
    out = _fallback(api, logs, timeout_s=0.5).add_missing(pl.DataFrame(), [HANGING, IN_JAEGER])
    assert time.monotonic() - began < HANG_S
    assert out.height == 0 and api.requests == [HANGING]
    assert any("no answer within 0.5 s" in m for m in logs), logs


def test_the_budget_bounds_the_whole_look_up(api: _ApiV3) -> None:
    logs: list[str] = []
    out = _fallback(api, logs, budget_s=0.0).add_missing(pl.DataFrame(), [IN_JAEGER, OTHER])
    assert out.height == 0 and api.requests == []
    assert any("2 not fetched" in m and "budget" in m for m in logs), logs


def test_jaeger_down_is_logged_not_raised() -> None:
    logs: list[str] = []
    client = JaegerClient("http://127.0.0.1:9", timeout_s=1.0)
    archive = frame(TRACE, "held")
    out = JaegerExemplars(client, logs.append).add_missing(archive, [IN_JAEGER])
    assert out.equals(archive) and any("Jaeger error" in m for m in logs), logs


def test_from_settings_needs_the_url() -> None:
    class _Settings:
        jaeger_url: str | None = None

    settings = _Settings()
    assert JaegerExemplars.from_settings(settings, print) is None
    settings.jaeger_url = "http://jaeger:16686"
    made = JaegerExemplars.from_settings(settings, print, limit=3)
    assert made is not None and made.limit == 3 and made.client.base_url == "http://jaeger:16686"
