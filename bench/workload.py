"""A seeded synthetic OTLP workload with known durations: lean spans (~160 B each, 3 attributes)
or rich ones (20 semantic-convention attributes with realistic value lengths, ~1 kB each).

Used by the throughput benchmark and by the integration tests, which compare the flow's signals
against exact numbers computed here from the same spans.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.otlp_encode import SpanSpec, trace_request

SERVICES = (
    "frontend",
    "cart",
    "checkout",
    "payment",
    "inventory",
    "shipping",
    "catalog",
    "recommendation",
)
OPERATIONS = ("GET /", "GET /api/items", "POST /api/cart", "POST /api/checkout", "GET /api/recs")
T0_NS = 1_767_571_200 * 10**9  # 2026-01-05T00:00:00Z


@dataclass(frozen=True, slots=True)
class Truth:
    """What was generated, per span: enough to compute the expected signals exactly."""

    service: np.ndarray
    operation: np.ndarray
    end_ns: np.ndarray
    duration_ns: np.ndarray
    error: np.ndarray


def generate(
    n_spans: int,
    *,
    seed: int = 1,
    spans_per_request: int = 512,
    services: int = 4,
    rate_per_s: float = 5_000.0,
    error_rate: float = 0.03,
    start_ns: int = T0_NS,
    rich: bool = False,
) -> tuple[list[bytes], Truth]:
    """Serialized ExportTraceServiceRequests plus the ground truth of every span, in event-time
    order; `rich` gives each span 20 attributes instead of 3."""
    rng = np.random.default_rng(seed)
    svc = rng.integers(0, services, size=n_spans)
    op = rng.integers(0, len(OPERATIONS), size=n_spans)
    gaps = rng.exponential(1e9 / rate_per_s, size=n_spans).astype(np.int64)
    end = start_ns + np.cumsum(gaps)
    dur = (rng.lognormal(mean=3.0, sigma=0.8, size=n_spans) * 1e6).astype(np.int64)  # ~20 ms median
    err = rng.random(n_spans) < error_rate
    ids = rng.bytes(24 * n_spans)
    requests = []
    for lo in range(0, n_spans, spans_per_request):
        hi = min(lo + spans_per_request, n_spans)
        by_service: dict[int, list[SpanSpec]] = {}
        for i in range(lo, hi):
            by_service.setdefault(int(svc[i]), []).append(
                SpanSpec(
                    trace_id=ids[24 * i : 24 * i + 16],
                    span_id=ids[24 * i + 16 : 24 * i + 24],
                    name=OPERATIONS[op[i]],
                    start_ns=int(end[i] - dur[i]),
                    end_ns=int(end[i]),
                    kind=2,
                    status_code=2 if err[i] else 0,
                    attributes=(rich_attributes if rich else lean_attributes)(
                        OPERATIONS[op[i]], 500 if err[i] else 200, i
                    ),
                )
            )
        req = trace_request(
            [
                ({"service.name": SERVICES[s], "service.version": "1.0.0"}, spans)
                for s, spans in sorted(by_service.items())
            ]
        )
        requests.append(req.SerializeToString())
    truth = Truth(
        service=np.array([SERVICES[s] for s in svc]),
        operation=np.array([OPERATIONS[o] for o in op]),
        end_ns=end,
        duration_ns=dur,
        error=err,
    )
    return requests, truth


def lean_attributes(operation: str, status: int, i: int) -> dict[str, Any]:
    """The lean span's three HTTP attributes."""
    method, route = operation.split(" ")
    return {"http.request.method": method, "http.route": route, "http.response.status_code": status}


def rich_attributes(operation: str, status: int, i: int) -> dict[str, Any]:
    """20 attributes of an instrumented HTTP server span, with values as long as real ones."""
    method, route = operation.split(" ")
    path = route.replace("items", f"items/{i % 9973}")
    return {
        "http.request.method": method,
        "http.route": route,
        "http.response.status_code": status,
        "url.scheme": "https",
        "url.path": path,
        "url.full": f"https://shop.example.com{path}?session={i:016x}&lang=en-US",
        "url.query": f"session={i:016x}&lang=en-US",
        "server.address": "shop.example.com",
        "server.port": 443,
        "client.address": f"10.{i % 200}.{i % 7}.{i % 250}",
        "network.protocol.version": "1.1",
        "network.peer.address": f"10.42.{i % 16}.{i % 240}",
        "network.peer.port": 30_000 + i % 5_000,
        "user_agent.original": USER_AGENT,
        "http.request.body.size": i % 2_048,
        "http.response.body.size": 512 + i % 16_384,
        "thread.name": f"http-nio-8080-exec-{i % 64}",
        "code.function": f"handle{method.title()}",
        "code.namespace": "com.example.shop.web.RequestController",
        "session.id": f"{i * 2654435761 % 2**64:016x}",
    }


USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)


def shop_requests(n_spans: int, *, seed: int = 1, spans_per_request: int = 512) -> list[bytes]:
    """The simulated shop's own trace requests (its services, attributes and events), about
    `n_spans` spans regrouped into requests of `spans_per_request` spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from chaos.shop import Shop, ShopConfig

    shop = Shop(seed=seed, config=ShopConfig(rate_rps=200.0))
    out: list[bytes] = []
    current, count = ExportTraceServiceRequest(), 0
    parts: dict[bytes, Any] = {}  # one ResourceSpans per resource in each request
    while len(out) * spans_per_request + count < n_spans:
        for batch in shop.advance(10):
            req = batch.proto()
            if not isinstance(req, ExportTraceServiceRequest):
                continue
            for rs in req.resource_spans:
                key = rs.resource.SerializeToString()
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        part = parts.get(key)
                        if part is None:
                            part = parts[key] = current.resource_spans.add()
                            part.resource.CopyFrom(rs.resource)
                            part.scope_spans.add(scope=ss.scope)
                        part.scope_spans[0].spans.append(span)
                        count += 1
                        if count == spans_per_request:
                            out.append(current.SerializeToString())
                            current, count, parts = ExportTraceServiceRequest(), 0, {}
    if count:
        out.append(current.SerializeToString())
    return out


def expected_signals(truth: Truth, window_ns: int) -> dict[tuple[str, str, int], dict[str, float]]:
    """Exact per (service, operation, window start ns) count, errors and numpy percentiles (ms)."""
    out: dict[tuple[str, str, int], dict[str, float]] = {}
    win = truth.end_ns // window_ns
    keys = np.char.add(np.char.add(truth.service, "|"), truth.operation)
    for key in np.unique(keys):
        m = keys == key
        svc, op = str(key).split("|", 1)
        for w in np.unique(win[m]):
            mm = m & (win == w)
            ms = truth.duration_ns[mm] / 1e6
            out[(svc, op, int(w) * window_ns)] = {
                "count": int(mm.sum()),
                "errors": int(truth.error[mm].sum()),
                "p50_ms": float(np.percentile(ms, 50)),
                "p95_ms": float(np.percentile(ms, 95)),
                "p99_ms": float(np.percentile(ms, 99)),
            }
    return out


def iter_json_lines(requests: list[bytes]) -> Iterator[str]:
    """The same requests as OTLP/JSON lines (Collector file exporter format)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from bench.otlp_encode import to_otlp_json

    for data in requests:
        req = ExportTraceServiceRequest()
        req.ParseFromString(data)
        yield to_otlp_json(req)
