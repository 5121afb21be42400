"""A seeded synthetic shop emitting SignalWindows (what the windowed-signals flow produces).

Services with Poisson traffic, binomial errors, log-normal latency (quantiles from real samples),
memory and pool utilization sampled every 30 s / 10 s, cumulative restart counters sampled every
60 s, a checkout journey, the pipeline's own health, and a call graph. Faults change the truth
in a window range and propagate to callers, like the real shop would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from sre_space.records import SignalWindow
from sre_space.timeutil import NS_PER_S

WINDOW_S = 10
T0_NS = 1_795_000_000 * NS_PER_S  # 2026-11-18, aligned to 10 s

# service -> (operation, requests per window, base error rate, p50 ms, log-sigma)
SERVICES: dict[str, tuple[str, float, float, float, float]] = {
    "frontend": ("GET /", 100.0, 0.0003, 40.0, 0.35),
    "cart": ("POST /cart/items", 30.0, 0.0003, 15.0, 0.3),
    "checkout": ("POST /checkout", 20.0, 0.0005, 60.0, 0.35),
    "payment": ("POST /payments", 20.0, 0.0005, 80.0, 0.4),
    "inventory": ("GET /stock", 40.0, 0.0002, 10.0, 0.3),
    "recommendation": ("GET /recommendations", 60.0, 0.0003, 30.0, 0.35),
    "database": ("query", 80.0, 0.0001, 5.0, 0.5),
}
EDGES: list[tuple[str, str]] = [
    ("frontend", "cart"),
    ("frontend", "checkout"),
    ("frontend", "recommendation"),
    ("checkout", "payment"),
    ("checkout", "inventory"),
    ("payment", "database"),
]
JOURNEYS = {"checkout": ["cart", "checkout", "payment"]}


def window_bounds(i: int) -> tuple[int, int]:
    """Start and end of window `i` (ns since the epoch)."""
    start = T0_NS + i * WINDOW_S * NS_PER_S
    return start, start + WINDOW_S * NS_PER_S


def at(i: int) -> int:
    """The start of window `i` (an event time)."""
    return window_bounds(i)[0]


@dataclass
class Fault:
    """A change of the truth for windows [start, end) (end None: until the stream ends)."""

    kind: str  # errors | latency | leak | conversion | pool | deploy
    service: str
    start: int
    end: int | None = None
    magnitude: float = 0.0
    version: str = ""

    def on(self, i: int) -> bool:
        return i >= self.start and (self.end is None or i < self.end)


@dataclass
class Shop:
    """The generator; call `windows(n)` once (it draws from one seeded stream in order)."""

    seed: int = 0
    traffic: float = 1.0
    faults: list[Fault] = field(default_factory=list)
    memory_every: int = 3
    restarts_every: int = 6
    conversion: float = 0.9

    def windows(self, n: int) -> Iterator[tuple[int, list[SignalWindow], list[tuple[str, str]]]]:
        """(window_end, signals, edges) for windows 0..n-1."""
        rng = np.random.default_rng(self.seed)
        memory = {s: 0.40 + 0.02 * k for k, s in enumerate(SERVICES)}
        pool = {"payment": 0.30}
        restarts = dict.fromkeys(SERVICES, 0.0)
        for i in range(n):
            start, end = window_bounds(i)
            active = [f for f in self.faults if f.on(i)]
            extra_err = {s: 0.0 for s in SERVICES}
            lat_mult = dict.fromkeys(SERVICES, 1.0)
            for f in active:
                if f.kind == "errors":
                    extra_err[f.service] += f.magnitude
                elif f.kind == "latency":
                    lat_mult[f.service] *= f.magnitude
            # Callers see part of their callees' trouble (deepest first).
            for caller, callee in reversed(EDGES):
                extra_err[caller] += 0.8 * extra_err[callee] * 0.5
                lat_mult[caller] *= 1.0 + 0.5 * (lat_mult[callee] - 1.0)
            signals: list[SignalWindow] = []
            for svc, (op, rate, err, p50, sigma) in SERVICES.items():
                count = int(rng.poisson(rate * self.traffic))
                p = min(err + extra_err[svc], 1.0)
                errors = int(rng.binomial(count, p)) if count else 0
                version = "1.0.0"
                for f in self.faults:
                    if f.kind == "deploy" and f.service == svc and i >= f.start:
                        version = f.version
                lat = rng.lognormal(np.log(p50 * lat_mult[svc]), sigma, size=count)
                ids = [f"{rng.integers(0, 2**63):032x}" for _ in range(2)]
                signals.append(
                    SignalWindow(
                        kind="span",
                        service=svc,
                        operation=op,
                        window_start=start,
                        window_end=end,
                        count=count,
                        errors=errors,
                        error_rate=errors / count if count else 0.0,
                        p50_ms=float(np.quantile(lat, 0.5)) if count else None,
                        p95_ms=float(np.quantile(lat, 0.95)) if count else None,
                        p99_ms=float(np.quantile(lat, 0.99)) if count else None,
                        max_ms=float(lat.max()) if count else None,
                        span_kind="server",
                        slowest_trace_ids=ids[:1],
                        failing_trace_ids=ids[1:] if errors else [],
                        versions={version: count} if count else {},
                    )
                )
            # Memory: a leak climbs to the limit, then the OOM kill restarts the container.
            for svc in SERVICES:
                leak = sum(f.magnitude for f in active if f.kind == "leak" and f.service == svc)
                memory[svc] += leak * WINDOW_S
                if memory[svc] >= 1.0:
                    memory[svc] = 0.42
                    restarts[svc] += 1
            for f in active:
                if f.kind == "pool":
                    pool[f.service] = pool.get(f.service, 0.3) + f.magnitude * WINDOW_S
            if i % self.memory_every == 0:
                for svc in SERVICES:
                    util = float(np.clip(memory[svc] + rng.normal(0, 0.005), 0, 1.0))
                    signals.append(_metric(start, end, svc, "memory", util * 512, util, 512))
            for svc, util0 in pool.items():
                util = float(np.clip(util0 + rng.normal(0, 0.02), 0, 1))
                signals.append(_metric(start, end, svc, "connection_pool", util * 20, util, 20))
            if i % self.restarts_every == 0:
                for svc in SERVICES:
                    signals.append(
                        _metric(
                            start, end, svc, "k8s.container.restarts", restarts[svc], None, None
                        )
                    )
            conv = self.conversion
            for f in active:
                if f.kind == "conversion":
                    conv = f.magnitude
            conv = conv * (1 - extra_err["payment"]) * (1 - extra_err["checkout"])
            started = int(rng.poisson(20 * self.traffic))
            completed = int(rng.binomial(started, min(max(conv, 0.0), 1.0))) if started else 0
            signals.append(
                SignalWindow(
                    kind="cuj",
                    cuj="checkout",
                    window_start=start,
                    window_end=end,
                    steps=[started, completed],
                    started=started,
                    completed=completed,
                    count=started,
                    conversion=completed / started if started else None,
                )
            )
            delay = float(abs(rng.normal(2.0, 0.5)))
            signals.append(
                SignalWindow(
                    kind="pipeline",
                    metric="watermark_delay_s",
                    window_start=start,
                    window_end=end,
                    value=delay,
                )
            )
            yield end, signals, list(EDGES)


def _metric(
    start: int, end: int, svc: str, name: str, value: float, util: float | None, limit: float | None
) -> SignalWindow:
    return SignalWindow(
        kind="metric",
        service=svc,
        metric=name,
        window_start=start,
        window_end=end,
        value=value,
        min=value,
        max=value,
        mean=value,
        limit=limit,
        utilization=util,
    )
