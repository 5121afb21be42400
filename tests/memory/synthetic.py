"""Synthetic, seeded incidents of the ten chaos scenarios: every record Memory consumes.

Each `make_case(scenario, seed)` returns an incident as the other stages would hand it over: the
Incident, its Anomalies, the Brain's Diagnosis, the Fixer's Remediation, the audit log and the signal
windows of the incident's keys (with a baseline before the onset). Wording, services, times and
numbers vary with the seed, and symptoms overlap between scenarios as they do in real life (latency
rises in five of them, errors in four, restarts in two), so retrieval has something to get wrong.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from operators.scout.detect.budget import Slo as SLO
from sinks.memory.records import Remediation
from sre_space.records import (
    ActionRequest,
    Anomaly,
    AuditAction,
    Candidate,
    Diagnosis,
    Evidence,
    Incident,
    SignalWindow,
)
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339

WINDOW_S = 10
BASE_NS = 1_795_000_000 * NS_PER_S  # 2026-11-18, event time

SCENARIOS = (
    "oom",
    "conversion",
    "latency",
    "errors",
    "dependency_timeout",
    "config_drift",
    "cpu_saturation",
    "cache_failure",
    "queue_lag",
    "crashloop",
)

FAULT_CLASS = {
    "oom": "memory_leak",
    "conversion": "business_rule",
    "latency": "db_latency",
    "errors": "error_regression",
    "dependency_timeout": "dependency_timeout",
    "config_drift": "config_pool_exhaustion",
    "cpu_saturation": "cpu_saturation",
    "cache_failure": "cache_failure",
    "queue_lag": "queue_lag",
    "crashloop": "crashloop",
}

SLOS = (
    SLO("checkout availability", 0.999, services=("checkout",)),
    SLO("edge availability", 0.995, services=("frontend", "payment")),
    SLO("checkout latency", 0.99, type="latency", services=("checkout", "cart"), threshold_ms=800),
    SLO("checkout journey", 0.5, type="conversion", cuj="checkout"),
)


@dataclass
class Case:
    """One synthetic incident with everything Memory needs, plus its ground truth."""

    scenario: str
    seed: int
    incident: Incident
    anomalies: list[Anomaly]
    diagnosis: Diagnosis
    remediation: Remediation
    audit: list[AuditAction]
    signals: list[SignalWindow]
    truth: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Ctx:
    rng: random.Random
    start_ns: int  # first baseline window
    onset_ns: int
    opened_ns: int
    end_ns: int  # recovery
    last_ns: int  # end of the last window
    windows: list[tuple[int, int]]
    signals: list[SignalWindow] = field(default_factory=list)

    def during(self, ws: int, we: int) -> bool:
        return ws < self.end_ns and we > self.onset_ns

    def frac(self, ws: int) -> float:
        """0 at the onset, 1 at recovery: how far into the incident a window is."""
        return min(1.0, max(0.0, (ws - self.onset_ns) / max(1, self.end_ns - self.onset_ns)))

    def hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def t(self, ns: int) -> str:
        return ns_to_rfc3339(ns)


def _spans(
    ctx: _Ctx,
    service: str,
    op: str,
    *,
    rate: float,
    err: float,
    p95: float,
    inc_err: float | None = None,
    inc_p95: float | None = None,
    inc_rate: float = 1.0,
    ramp: bool = False,
) -> None:
    rng = ctx.rng
    for ws, we in ctx.windows:
        bad = ctx.during(ws, we)
        k = ctx.frac(ws) if ramp else 1.0
        count = max(1, int(rng.gauss(rate * (inc_rate if bad else 1.0), rate * 0.05)))
        e = err
        lat = p95
        if bad and inc_err is not None:
            e = err + (inc_err - err) * k
        if bad and inc_p95 is not None:
            lat = p95 + (inc_p95 - p95) * k
        errors = sum(1 for _ in range(count) if rng.random() < e)
        lat = lat * rng.uniform(0.93, 1.07)
        ctx.signals.append(
            SignalWindow(
                kind="span",
                window_start=ws,
                window_end=we,
                service=service,
                operation=op,
                count=count,
                errors=errors,
                error_rate=errors / count,
                p50_ms=round(lat * 0.45, 2),
                p95_ms=round(lat, 2),
                p99_ms=round(lat * 1.6, 2),
                max_ms=round(lat * 2.4, 2),
                span_kind="server",
                slowest_trace_ids=[ctx.hex(32)],
                failing_trace_ids=[ctx.hex(32)] if errors else [],
            )
        )


def _cuj(ctx: _Ctx, base: float, inc: float) -> None:
    rng = ctx.rng
    for ws, we in ctx.windows:
        started = rng.randint(18, 40)
        conv = inc if ctx.during(ws, we) else base
        completed = sum(1 for _ in range(started) if rng.random() < conv)
        ctx.signals.append(
            SignalWindow(
                kind="cuj",
                window_start=ws,
                window_end=we,
                cuj="checkout",
                steps=[started, int(started * 0.9), completed],
                started=started,
                completed=completed,
                conversion=completed / started,
            )
        )


def _metric(
    ctx: _Ctx,
    service: str,
    metric: str,
    base: float,
    inc: float,
    *,
    limit: float | None = None,
    unit: str = "",
    cumulative: bool = False,
    ramp: bool = True,
) -> None:
    rng = ctx.rng
    total = base
    for ws, we in ctx.windows:
        bad = ctx.during(ws, we)
        k = ctx.frac(ws) if ramp else 1.0
        if cumulative:
            # restarts: a counter that steps up every few windows during the incident
            if bad and rng.random() < inc:
                total += 1
            value = total
        else:
            value = (base + (inc - base) * k if bad else base) * rng.uniform(0.97, 1.03)
        ctx.signals.append(
            SignalWindow(
                kind="metric",
                window_start=ws,
                window_end=we,
                service=service,
                metric=metric,
                value=round(value, 3),
                min=round(value * 0.98, 3),
                max=round(value * 1.02, 3),
                mean=round(value, 3),
                limit=limit,
                utilization=round(value / limit, 4) if limit else None,
                unit=unit,
            )
        )


def _anomaly(
    ctx: _Ctx,
    detector: str,
    signal: str,
    kind: str,
    observed: float,
    expected: float,
    detail: str,
    *,
    service: str | None = None,
    operation: str | None = None,
    cuj: str | None = None,
    metric: str | None = None,
    lag_windows: int = 0,
) -> Anomaly:
    onset = ctx.onset_ns + lag_windows * WINDOW_S * NS_PER_S
    return Anomaly(
        id=f"an-{ctx.hex(10)}",
        detector=detector,
        signal=signal,
        kind=kind,  # type: ignore[arg-type]
        onset=onset,
        observed=round(observed, 4),
        expected=round(expected, 4),
        score=round(ctx.rng.uniform(4.0, 14.0), 2),
        service=service,
        operation=operation,
        cuj=cuj,
        metric=metric,
        windows=[onset],
        exemplar_trace_ids=[ctx.hex(32) for _ in range(2)],
        severity="critical" if ctx.rng.random() < 0.5 else "warning",
        detail=detail,
    )


def _ev(ctx: _Ctx, kind: str, description: str, base: float | None, inc: float | None) -> Evidence:
    return Evidence(
        kind=kind,
        description=description,
        baseline=base,
        incident=inc,
        trace_ids=[ctx.hex(32) for _ in range(ctx.rng.randint(1, 3))],
    )


def _pick(rng: random.Random, options: list[str], **kw: Any) -> str:
    return rng.choice(options).format(**kw)


def _version(rng: random.Random) -> tuple[str, str]:
    major, minor, patch = rng.randint(1, 4), rng.randint(0, 12), rng.randint(0, 9)
    return f"{major}.{minor}.{patch}", f"{major}.{minor}.{patch + 1}"


def _diff(service: str, field_path: str, old: Any, new: Any) -> str:
    return (
        f"--- a/services/{service}.yaml\n+++ b/services/{service}.yaml\n@@ -4,3 +4,3 @@\n"
        f"-  {field_path}: {old}\n+  {field_path}: {new}\n"
    )


@dataclass
class _Parts:
    culprit: str
    operation: str | None
    summary: str
    anomalies: list[Anomaly]
    evidence: list[Evidence]
    diag_summary: str
    action: str
    params: dict[str, Any]
    diff: str
    services: list[str]
    attribute: tuple[str, str] | None = None


# --------------------------------------------------------------------------------------------------
# The ten scenarios: symptoms, evidence and fix, with the wording varied per seed


def _oom(ctx: _Ctx) -> _Parts:
    rng = ctx.rng
    svc = rng.choice(["checkout", "cart", "recommendation"])
    op = {
        "checkout": "POST /checkout",
        "cart": "POST /cart/items",
        "recommendation": "GET /recommendations",
    }[svc]
    limit = rng.choice([256, 384, 512, 768])
    old, new = _version(rng)
    _metric(ctx, svc, "container.memory.usage", limit * 0.45, limit * 0.99, limit=limit, unit="MiB")
    _metric(ctx, svc, "k8s.container.restarts", 0, 0.25, cumulative=True)
    _spans(ctx, svc, op, rate=90, err=0.004, p95=220, inc_err=0.08, inc_p95=420, ramp=True)
    _spans(ctx, "frontend", "GET /", rate=300, err=0.002, p95=120, inc_err=0.02)
    _cuj(ctx, 0.64, 0.55)
    growth = rng.randint(6, 25)
    anomalies = [
        _anomaly(
            ctx,
            "trend_to_limit",
            "memory_utilization",
            "metric",
            0.97,
            0.45,
            _pick(
                rng,
                [
                    "memory of {s} heading to its limit",
                    "{s} memory saturating, projected OOM",
                    "working set of {s} climbs towards the container limit",
                ],
                s=svc,
            ),
            service=svc,
            metric="container.memory.usage",
        ),
        _anomaly(
            ctx,
            "rate_significance",
            "error_rate",
            "span",
            0.08,
            0.004,
            _pick(
                rng,
                [
                    "5xx after pod kills",
                    "errors while pods restart",
                    "connection resets during OOM kills",
                ],
            ),
            service=svc,
            operation=op,
            lag_windows=3,
        ),
    ]
    evidence = [
        _ev(
            ctx,
            "saturation",
            _pick(
                rng,
                [
                    "container memory grew {g} MiB/min on {s} {v} until the OOM killer fired",
                    "heap of {s} rises linearly ({g} MiB per minute) since version {v}, never released",
                    "memory usage of {s} climbs steadily after the deploy of {v}; OOMKilled",
                ],
                g=growth,
                s=svc,
                v=new,
            ),
            limit * 0.45,
            limit * 0.99,
        ),
        _ev(
            ctx,
            "restarts",
            _pick(
                rng,
                [
                    "OOMKilled restarts of {s} pods",
                    "pods of {s} restarted with exit code 137",
                    "container restarts (reason OOMKilled) on {s}",
                ],
                s=svc,
            ),
            0,
            rng.randint(2, 6),
        ),
        _ev(
            ctx,
            "recent_change",
            f"version {new} of {svc} deployed shortly before the growth started",
            None,
            None,
        ),
    ]
    action = rng.choice(["raise_memory_limit", "rollback_version"])
    if action == "raise_memory_limit":
        params: dict[str, Any] = {"memory_limit_mib": limit * 2, "from_version": new}
        diff = _diff(svc, "memory_limit_mib", limit, limit * 2)
    else:
        params = {"version": old, "from_version": new}
        diff = _diff(svc, "version", f'"{new}"', f'"{old}"')
    return _Parts(
        svc,
        op,
        _pick(
            rng,
            ["{s} memory leak, pods OOM-killed", "OOM kills on {s}", "{s} running out of memory"],
            s=svc,
        ),
        anomalies,
        evidence,
        _pick(
            rng,
            [
                "memory leak in {s} {v}",
                "{s} leaks memory after the {v} rollout",
                "OOM loop on {s} caused by a leak",
            ],
            s=svc,
            v=new,
        ),
        action,
        params,
        diff,
        [svc, "frontend"],
    )


def _conversion(ctx: _Ctx) -> _Parts:
    rng = ctx.rng
    flag = rng.choice(["new_pricing_rules", "loyalty_discount_v2", "promo_engine"])
    base, inc = rng.uniform(0.6, 0.7), rng.uniform(0.28, 0.42)
    _cuj(ctx, base, inc)
    _spans(ctx, "checkout", "POST /checkout", rate=60, err=0.003, p95=310)
    _spans(ctx, "payment", "POST /payments", rate=40, err=0.002, p95=180)
    level = rng.choice(["gold", "platinum", "silver"])
    anomalies = [
        _anomaly(
            ctx,
            "conversion_drop",
            "conversion",
            "cuj",
            inc,
            base,
            _pick(
                rng,
                [
                    "checkout funnel converts less, no errors",
                    "fewer orders complete the checkout journey",
                    "checkout conversion fell while traffic is normal",
                ],
            ),
            cuj="checkout",
        ),
    ]
    evidence = [
        _ev(
            ctx,
            "attribute_shift",
            _pick(
                rng,
                [
                    "orders with app.loyalty_level={l} abandon at the payment step; feature flag {f} evaluated true",
                    "drop concentrated on {l} customers after flag {f} was switched on; cart totals priced wrong",
                    "feature_flag {f} enabled: {l} loyalty carts show a different price and users leave the funnel",
                ],
                l=level,
                f=flag,
            ),
            base,
            inc,
        ),
        _ev(
            ctx,
            "funnel",
            _pick(
                rng,
                [
                    "no rise in errors or latency: a business rule, not an outage",
                    "payments declined by the business rule, HTTP status still 200",
                    "step conversion cart->paid down while error rate is flat",
                ],
            ),
            None,
            None,
        ),
    ]
    diff = _diff("checkout", f"  {flag}", "true", "false")
    return _Parts(
        "checkout",
        "POST /checkout",
        _pick(
            rng,
            [
                "checkout conversion dropped",
                "fewer completed checkouts",
                "orders down without errors",
            ],
        ),
        anomalies,
        evidence,
        _pick(
            rng,
            [
                "pricing business rule behind flag {f} breaks checkout for {l} users",
                "flag {f} changes prices and hurts conversion",
            ],
            f=flag,
            l=level,
        ),
        "set_feature_flag",
        {"flag": flag, "value": False},
        diff,
        ["checkout", "payment"],
        attribute=("app.loyalty_level", level),
    )


def _latency(ctx: _Ctx) -> _Parts:
    rng = ctx.rng
    svc = rng.choice(["inventory", "checkout", "cart"])
    op = {"inventory": "GET /inventory/{sku}", "checkout": "POST /checkout", "cart": "GET /cart"}[
        svc
    ]
    stmt = rng.choice(["SELECT stock", "UPDATE orders", "SELECT cart_items"])
    _spans(ctx, svc, op, rate=120, err=0.002, p95=140, inc_p95=rng.uniform(900, 1800))
    _spans(ctx, "postgres", stmt, rate=200, err=0.0, p95=12, inc_p95=rng.uniform(300, 700))
    _spans(ctx, "frontend", "GET /", rate=300, err=0.002, p95=150, inc_p95=900)
    _cuj(ctx, 0.65, 0.6)
    anomalies = [
        _anomaly(
            ctx,
            "robust_baseline",
            "p95_ms",
            "span",
            1200,
            140,
            _pick(
                rng,
                [
                    "p95 latency of {s} jumped",
                    "{s} slow: p95 far above baseline",
                    "latency regression on {s}",
                ],
                s=svc,
            ),
            service=svc,
            operation=op,
        ),
        _anomaly(
            ctx,
            "burn_rate",
            "latency_slo",
            "span",
            0.2,
            0.01,
            "latency SLO burning fast",
            service="frontend",
            operation="GET /",
        ),
    ]
    evidence = [
        _ev(
            ctx,
            "self_time_shift",
            _pick(
                rng,
                [
                    "database span '{q}' self-time up, dominates the critical path of {s}",
                    "postgres query {q} slow: lock waits and sequential scans on the critical path",
                    "time spent in db statement {q} explains the added latency of {s}",
                ],
                q=stmt,
                s=svc,
            ),
            12,
            480,
        ),
        _ev(
            ctx,
            "saturation",
            _pick(
                rng,
                [
                    "db connection wait time rises",
                    "database CPU busy, slow query log grows",
                    "postgres I/O wait high",
                ],
            ),
            None,
            None,
        ),
    ]
    action = rng.choice(["scale_replicas", "rollback_version"])
    old, new = _version(rng)
    if action == "scale_replicas":
        params: dict[str, Any] = {"service": "postgres-read", "replicas": rng.randint(3, 5)}
        diff = _diff("postgres", "replicas", 2, params["replicas"])
    else:
        params = {"version": old, "from_version": new}
        diff = _diff(svc, "version", f'"{new}"', f'"{old}"')
    return _Parts(
        svc,
        op,
        _pick(
            rng,
            [
                "slow {s} because of database latency",
                "{s} latency spike (db)",
                "high latency on {s}, slow queries",
            ],
            s=svc,
        ),
        anomalies,
        evidence,
        _pick(
            rng,
            ["slow database queries ({q}) in {s}", "db latency from statement {q}"],
            q=stmt,
            s=svc,
        ),
        action,
        params,
        diff,
        [svc, "postgres", "frontend"],
    )


def _errors(ctx: _Ctx) -> _Parts:
    rng = ctx.rng
    svc = rng.choice(["payment", "checkout", "shipping"])
    op = {"payment": "POST /payments", "checkout": "POST /checkout", "shipping": "POST /shipments"}[
        svc
    ]
    old, new = _version(rng)
    exc = rng.choice(["NullPointerException", "KeyError: 'currency'", "TypeError in serializer"])
    _spans(ctx, svc, op, rate=80, err=0.003, p95=200, inc_err=rng.uniform(0.15, 0.4))
    _spans(ctx, "frontend", "POST /checkout", rate=80, err=0.003, p95=400, inc_err=0.12)
    _cuj(ctx, 0.65, 0.45)
    anomalies = [
        _anomaly(
            ctx,
            "burn_rate",
            "error_rate",
            "span",
            0.25,
            0.003,
            _pick(
                rng,
                [
                    "availability SLO of {s} burning 14x",
                    "5xx rate of {s} far above budget",
                    "error budget of {s} burning",
                ],
                s=svc,
            ),
            service=svc,
            operation=op,
        ),
    ]
    evidence = [
        _ev(
            ctx,
            "error_origin",
            _pick(
                rng,
                [
                    "errors originate in {s} {o}: exception {e}, children succeed",
                    "deepest failing span is {s} {o} raising {e}",
                    "{s} throws {e} on {o}; downstream calls are fine",
                ],
                s=svc,
                o=op,
                e=exc,
            ),
            0.003,
            0.25,
        ),
        _ev(
            ctx,
            "recent_change",
            _pick(
                rng,
                [
                    "all failing spans carry service.version {v}",
                    "errors only on pods running {v}, none on {p}",
                    "new version {v} rolled out right before the errors",
                ],
                v=new,
                p=old,
            ),
            None,
            None,
        ),
    ]
    diff = _diff(svc, "version", f'"{new}"', f'"{old}"')
    return _Parts(
        svc,
        op,
        _pick(
            rng,
            [
                "error spike on {s} after deploy",
                "{s} returns 500s",
                "failed payments / 5xx from {s}",
            ],
            s=svc,
        ),
        anomalies,
        evidence,
        _pick(
            rng,
            ["bad deploy {v} of {s} raises {e}", "error regression in {s} version {v}"],
            s=svc,
            v=new,
            e=exc,
        ),
        "rollback_version",
        {"version": old, "from_version": new},
        diff,
        [svc, "frontend"],
    )


def _dependency_timeout(ctx: _Ctx) -> _Parts:
    rng = ctx.rng
    svc, dep = rng.choice(
        [("shipping", "carrier-api"), ("payment", "psp-gateway"), ("checkout", "tax-service")]
    )
    op = {"shipping": "GET /quote", "payment": "POST /payments", "checkout": "POST /checkout"}[svc]
    timeout = rng.choice([300, 500, 800])
    _spans(
        ctx,
        svc,
        op,
        rate=70,
        err=0.002,
        p95=250,
        inc_err=rng.uniform(0.08, 0.2),
        inc_p95=timeout * 1.05,
    )
    _spans(ctx, svc, f"HTTP GET {dep}", rate=70, err=0.001, p95=180, inc_err=0.2, inc_p95=timeout)
    _cuj(ctx, 0.66, 0.55)
    anomalies = [
        _anomaly(
            ctx,
            "rate_significance",
            "error_rate",
            "span",
            0.15,
            0.002,
            _pick(
                rng,
                [
                    "timeouts calling {d}",
                    "{s} errors: deadline exceeded towards {d}",
                    "client spans to {d} fail with timeout",
                ],
                s=svc,
                d=dep,
            ),
            service=svc,
            operation=op,
        ),
        _anomaly(
            ctx,
            "robust_baseline",
            "p95_ms",
            "span",
            timeout,
            180,
            f"latency of calls to {dep} pinned at the timeout",
            service=svc,
            operation=f"HTTP GET {dep}",
        ),
    ]
    evidence = [
        _ev(
            ctx,
            "error_origin",
            _pick(
                rng,
                [
                    "client span to external dependency {d} ends at exactly the {t} ms timeout (DEADLINE_EXCEEDED)",
                    "calls from {s} to {d} time out after {t} ms; the dependency answers slowly",
                    "{d} slow: outbound requests from {s} cut by the {t} ms timeout",
                ],
                d=dep,
                s=svc,
                t=timeout,
            ),
            180,
            timeout,
        ),
        _ev(
            ctx,
            "call_count_shift",
            _pick(rng, ["retries to {d} triple the call count", "retry storm towards {d}"], d=dep),
            1,
            3,
        ),
    ]
    diff = _diff(svc, "downstream_ms", timeout, timeout * 3)
    return _Parts(
        svc,
        op,
        _pick(
            rng,
            [
                "{s} calls to {d} timing out",
                "timeouts from {d} break {s}",
                "{d} dependency slow, {s} fails",
            ],
            s=svc,
            d=dep,
        ),
        anomalies,
        evidence,
        _pick(
            rng,
            ["dependency {d} too slow for the {t} ms timeout of {s}", "upstream {d} timeouts"],
            d=dep,
            t=timeout,
            s=svc,
        ),
        "raise_timeout",
        {"downstream_ms": timeout * 3},
        diff,
        [svc, dep],
    )


def _config_drift(ctx: _Ctx) -> _Parts:
    rng = ctx.rng
    svc = rng.choice(["inventory", "checkout", "cart"])
    op = {
        "inventory": "GET /inventory/{sku}",
        "checkout": "POST /checkout",
        "cart": "POST /cart/items",
    }[svc]
    old_max, new_max = rng.choice([20, 30, 40]), rng.choice([2, 3, 4])
    sha = ctx.hex(40)
    _metric(
        ctx,
        svc,
        "db.client.connection.count",
        old_max * 0.3,
        new_max,
        limit=float(new_max),
        unit="{connection}",
        ramp=False,
    )
    _spans(ctx, svc, op, rate=100, err=0.002, p95=160, inc_err=0.1, inc_p95=2500)
    _cuj(ctx, 0.64, 0.5)
    anomalies = [
        _anomaly(
            ctx,
            "trend_to_limit",
            "connection_pool_utilization",
            "metric",
            1.0,
            0.3,
            _pick(
                rng,
                [
                    "connection pool of {s} exhausted",
                    "{s} pool at 100% of max",
                    "no free db connections in {s}",
                ],
                s=svc,
            ),
            service=svc,
            metric="db.client.connection.count",
        ),
        _anomaly(
            ctx,
            "robust_baseline",
            "p95_ms",
            "span",
            2500,
            160,
            "requests wait for a connection",
            service=svc,
            operation=op,
        ),
    ]
    evidence = [
        _ev(
            ctx,
            "recent_change",
            _pick(
                rng,
                [
                    "config commit {c} changed connection_pool.max of {s} from {a} to {b}",
                    "GitOps commit {c} lowered the pool size of {s} ({a} -> {b})",
                    "manifest drift: {s} connection_pool max set to {b} by {c}",
                ],
                c=sha[:10],
                s=svc,
                a=old_max,
                b=new_max,
            ),
            old_max,
            new_max,
        ),
        _ev(
            ctx,
            "saturation",
            _pick(
                rng,
                ["connection wait time dominates spans of {s}", "pool wait queue grows in {s}"],
                s=svc,
            ),
            None,
            None,
        ),
    ]
    diff = _diff(svc, "  max", new_max, old_max)
    return _Parts(
        svc,
        op,
        _pick(
            rng,
            [
                "{s} connection pool exhausted after config change",
                "config drift on {s}: pool too small",
                "{s} starved of db connections",
            ],
            s=svc,
        ),
        anomalies,
        evidence,
        _pick(
            rng,
            [
                "configuration drift shrank the connection pool of {s}",
                "pool exhaustion from commit {c}",
            ],
            s=svc,
            c=sha[:10],
        ),
        "revert_commit",
        {"commit": sha},
        diff,
        [svc, "postgres"],
    )


def _cpu(ctx: _Ctx) -> _Parts:
    rng = ctx.rng
    svc = rng.choice(["recommendation", "frontend", "checkout"])
    op = {
        "recommendation": "GET /recommendations",
        "frontend": "GET /",
        "checkout": "POST /checkout",
    }[svc]
    replicas = rng.randint(2, 4)
    _metric(ctx, svc, "container.cpu.utilization", 0.45, 0.98, unit="1")
    _metric(ctx, svc, "container.cpu.throttling", 0.01, 0.4, unit="1")
    _spans(ctx, svc, op, rate=150, err=0.002, p95=120, inc_p95=rng.uniform(600, 1100), inc_rate=1.6)
    _cuj(ctx, 0.65, 0.6)
    anomalies = [
        _anomaly(
            ctx,
            "trend_to_limit",
            "cpu_utilization",
            "metric",
            0.98,
            0.45,
            _pick(
                rng,
                [
                    "CPU of {s} saturated",
                    "{s} pegged at its CPU limit, throttled",
                    "cpu throttling on {s}",
                ],
                s=svc,
            ),
            service=svc,
            metric="container.cpu.utilization",
        ),
        _anomaly(
            ctx,
            "robust_baseline",
            "p95_ms",
            "span",
            900,
            120,
            f"{svc} slower under load",
            service=svc,
            operation=op,
        ),
    ]
    evidence = [
        _ev(
            ctx,
            "saturation",
            _pick(
                rng,
                [
                    "cpu utilization of {s} at 98% with heavy throttling; traffic up 60%",
                    "{s} CPU-bound: self-time grows with request rate, throttled periods",
                    "CPU saturation on {s} pods under a traffic surge",
                ],
                s=svc,
            ),
            0.45,
            0.98,
        ),
        _ev(
            ctx,
            "call_count_shift",
            _pick(rng, ["request rate to {s} up 1.6x", "traffic surge on {s}"], s=svc),
            150,
            240,
        ),
    ]
    diff = _diff(svc, "replicas", replicas, replicas * 2)
    return _Parts(
        svc,
        op,
        _pick(
            rng,
            ["{s} CPU saturation", "{s} throttled, latency up", "CPU exhaustion on {s} under load"],
            s=svc,
        ),
        anomalies,
        evidence,
        _pick(rng, ["{s} lacks CPU capacity for the load", "cpu saturation of {s}"], s=svc),
        "scale_replicas",
        {"replicas": replicas * 2},
        diff,
        [svc],
    )


def _cache(ctx: _Ctx) -> _Parts:
    rng = ctx.rng
    svc = rng.choice(["recommendation", "inventory", "cart"])
    op = {
        "recommendation": "GET /recommendations",
        "inventory": "GET /inventory/{sku}",
        "cart": "GET /cart",
    }[svc]
    _spans(ctx, "redis", "GET", rate=400, err=0.0, p95=2, inc_err=0.9)
    _spans(ctx, svc, op, rate=120, err=0.002, p95=90, inc_p95=rng.uniform(500, 900), inc_err=0.03)
    _spans(ctx, "postgres", "SELECT products", rate=30, err=0.0, p95=15, inc_rate=8.0, inc_p95=120)
    _cuj(ctx, 0.65, 0.6)
    anomalies = [
        _anomaly(
            ctx,
            "rate_significance",
            "error_rate",
            "span",
            0.9,
            0.0,
            _pick(
                rng,
                [
                    "cache calls failing",
                    "redis GET errors, connection refused",
                    "cache unreachable from {s}",
                ],
                s=svc,
            ),
            service="redis",
            operation="GET",
        ),
        _anomaly(
            ctx,
            "robust_baseline",
            "p95_ms",
            "span",
            700,
            90,
            f"{svc} slow, falls back to the database",
            service=svc,
            operation=op,
        ),
    ]
    evidence = [
        _ev(
            ctx,
            "error_origin",
            _pick(
                rng,
                [
                    "redis GET spans fail (connection refused); cache hit ratio dropped to zero",
                    "cache misses everywhere: {s} reads from postgres instead of redis",
                    "redis unavailable, every lookup of {s} goes to the database",
                ],
                s=svc,
            ),
            0.0,
            0.9,
        ),
        _ev(
            ctx,
            "call_count_shift",
            _pick(
                rng,
                [
                    "database query count up 8x (cache bypass)",
                    "postgres SELECT products calls multiplied by the cache outage",
                ],
            ),
            30,
            240,
        ),
    ]
    diff = _diff("redis", "restarted_at", '""', f'"{ctx.t(ctx.opened_ns)}"')
    return _Parts(
        "redis",
        "GET",
        _pick(
            rng,
            ["cache outage slows {s}", "redis down, {s} latency up", "{s} degraded: cache failure"],
            s=svc,
        ),
        anomalies,
        evidence,
        _pick(
            rng,
            ["redis cache failure forces {s} onto the database", "cache failure (redis)"],
            s=svc,
        ),
        "restart",
        {"service": "redis"},
        diff,
        ["redis", svc, "postgres"],
    )


def _queue(ctx: _Ctx) -> _Parts:
    rng = ctx.rng
    svc = rng.choice(["order-worker", "shipping", "email-worker"])
    topic = rng.choice(["orders", "shipments", "notifications"])
    replicas = rng.randint(1, 3)
    _metric(
        ctx, svc, "messaging.kafka.consumer.lag", 40, rng.uniform(8000, 30000), unit="{message}"
    )
    _metric(ctx, svc, "messaging.queue.depth", 30, rng.uniform(5000, 20000), unit="{message}")
    _spans(ctx, svc, f"process {topic}", rate=100, err=0.001, p95=80, inc_p95=95)
    anomalies = [
        _anomaly(
            ctx,
            "trend_to_limit",
            "consumer_lag",
            "metric",
            20000,
            40,
            _pick(
                rng,
                [
                    "consumer lag on {t} growing",
                    "{s} falling behind on topic {t}",
                    "backlog of {t} keeps rising",
                ],
                s=svc,
                t=topic,
            ),
            service=svc,
            metric="messaging.kafka.consumer.lag",
        ),
    ]
    evidence = [
        _ev(
            ctx,
            "saturation",
            _pick(
                rng,
                [
                    "consumer {s} processes fewer messages than are produced on {t}; lag grows linearly",
                    "queue depth of {t} rising, {s} throughput flat at its replica count",
                    "{s} consumers saturated: lag on {t} increases every window",
                ],
                s=svc,
                t=topic,
            ),
            40,
            20000,
        ),
        _ev(
            ctx,
            "call_count_shift",
            _pick(rng, ["produce rate on {t} doubled", "burst of messages on {t}"], t=topic),
            100,
            200,
        ),
    ]
    diff = _diff(svc, "replicas", replicas, replicas * 3)
    return _Parts(
        svc,
        f"process {topic}",
        _pick(
            rng,
            ["{s} lagging on {t}", "queue lag on {t}", "{t} backlog, {s} behind"],
            s=svc,
            t=topic,
        ),
        anomalies,
        evidence,
        _pick(
            rng,
            ["{s} cannot keep up with {t}", "queue lag: consumers of {t} under-provisioned"],
            s=svc,
            t=topic,
        ),
        "scale_replicas",
        {"replicas": replicas * 3},
        diff,
        [svc],
    )


def _crashloop(ctx: _Ctx) -> _Parts:
    rng = ctx.rng
    svc = rng.choice(["shipping", "payment", "cart"])
    op = {"shipping": "POST /shipments", "payment": "POST /payments", "cart": "POST /cart/items"}[
        svc
    ]
    old, new = _version(rng)
    reason = rng.choice(
        [
            "missing env var DB_URL",
            "panic at startup: config parse error",
            "failed readiness probe, exit code 1",
        ]
    )
    _metric(ctx, svc, "k8s.container.restarts", 0, 0.6, cumulative=True)
    _spans(ctx, svc, op, rate=60, err=0.003, p95=150, inc_err=rng.uniform(0.3, 0.6), inc_rate=0.5)
    _cuj(ctx, 0.65, 0.5)
    anomalies = [
        _anomaly(
            ctx,
            "robust_baseline",
            "restarts",
            "metric",
            12,
            0,
            _pick(
                rng,
                [
                    "{s} pods restarting in a loop",
                    "CrashLoopBackOff on {s}",
                    "{s} containers keep crashing",
                ],
                s=svc,
            ),
            service=svc,
            metric="k8s.container.restarts",
        ),
        _anomaly(
            ctx,
            "burn_rate",
            "error_rate",
            "span",
            0.4,
            0.003,
            "no ready endpoints",
            service=svc,
            operation=op,
            lag_windows=1,
        ),
    ]
    evidence = [
        _ev(
            ctx,
            "restarts",
            _pick(
                rng,
                [
                    "{s} {v} exits at startup ({r}); CrashLoopBackOff",
                    "containers of {s} crash right after start: {r}",
                    "pods of {s} in CrashLoopBackOff since {v} rollout ({r})",
                ],
                s=svc,
                v=new,
                r=reason,
            ),
            0,
            12,
        ),
        _ev(
            ctx,
            "recent_change",
            f"{svc} version {new} rolled out just before the crashes",
            None,
            None,
        ),
    ]
    diff = _diff(svc, "version", f'"{new}"', f'"{old}"')
    return _Parts(
        svc,
        op,
        _pick(
            rng,
            [
                "{s} crashlooping",
                "{s} pods crash-looping after rollout",
                "{s} unavailable, containers crash",
            ],
            s=svc,
        ),
        anomalies,
        evidence,
        _pick(rng, ["crash loop of {s} {v}: {r}", "{s} {v} cannot start"], s=svc, v=new, r=reason),
        "rollback_version",
        {"version": old, "from_version": new},
        diff,
        [svc],
    )


_BUILDERS: dict[str, Callable[[_Ctx], _Parts]] = {
    "oom": _oom,
    "conversion": _conversion,
    "latency": _latency,
    "errors": _errors,
    "dependency_timeout": _dependency_timeout,
    "config_drift": _config_drift,
    "cpu_saturation": _cpu,
    "cache_failure": _cache,
    "queue_lag": _queue,
    "crashloop": _crashloop,
}


def make_case(scenario: str, seed: int, *, outcome: str = "verified") -> Case:
    """One incident of `scenario`; `outcome` is verified, reverted or escalated (no fix merged)."""
    rng = random.Random(f"{scenario}/{seed}")
    start = BASE_NS + (SCENARIOS.index(scenario) * 1000 + seed) * 3600 * NS_PER_S
    baseline_windows = 30
    incident_windows = rng.randint(12, 60)
    onset = start + baseline_windows * WINDOW_S * NS_PER_S
    end = onset + incident_windows * WINDOW_S * NS_PER_S
    last = end + 6 * WINDOW_S * NS_PER_S
    opened = onset + rng.randint(2, 8) * WINDOW_S * NS_PER_S
    windows = [(t, t + WINDOW_S * NS_PER_S) for t in range(start, last, WINDOW_S * NS_PER_S)]
    ctx = _Ctx(rng, start, onset, opened, end, last, windows)
    parts = _BUILDERS[scenario](ctx)
    fault = FAULT_CLASS[scenario]
    incident_id = f"inc-{scenario.replace('_', '-')}-{seed:04d}"
    fingerprint = "fp-" + hashlib.sha1(f"{parts.culprit}|{fault}".encode()).hexdigest()[:12]
    diagnosed = opened + rng.randint(15, 60) * NS_PER_S
    pr_opened = diagnosed + rng.randint(5, 30) * NS_PER_S
    merged = pr_opened + rng.randint(20, 90) * NS_PER_S
    pr_id = str(rng.randint(10, 999))
    sha = ctx.hex(40)
    verify_at = merged + rng.randint(60, 240) * NS_PER_S
    reverted = outcome == "reverted"
    escalated = outcome in ("reverted", "escalated")
    recovered = None if escalated else max(end, verify_at)
    state = "escalated" if escalated else "resolved"
    confidence = round(rng.uniform(0.55, 0.95), 2)
    candidates = [
        Candidate(
            service=parts.culprit,
            fault_class=fault,
            score=round(rng.uniform(0.7, 0.98), 3),
            confidence=confidence,
            operation=parts.operation,
            attribute=parts.attribute[0] if parts.attribute else None,
            attribute_value=parts.attribute[1] if parts.attribute else None,
            evidence=parts.evidence,
            actions=[ActionRequest(parts.action, parts.culprit)],
        ),
        Candidate(
            service=rng.choice([s for s in parts.services if s != parts.culprit] or ["frontend"]),
            fault_class=rng.choice(list(FAULT_CLASS.values())),
            score=round(rng.uniform(0.1, 0.4), 3),
            confidence=round(rng.uniform(0.05, 0.3), 2),
        ),
    ]
    diagnosis = Diagnosis(
        incident_id=incident_id,
        window_start=onset,
        window_end=opened,
        baseline_start=start,
        baseline_end=onset,
        candidates=candidates,
        summary=parts.diag_summary,
    )
    incident = Incident(
        id=incident_id,
        fingerprint=fingerprint,
        state=state,  # type: ignore[arg-type]
        opened_at=opened,
        updated_at=verify_at if not escalated else verify_at + 30 * NS_PER_S,
        services=parts.services,
        severity=rng.choice(["critical", "major", "minor"]),
        anomaly_ids=[a.id for a in parts.anomalies],
        recovered_at=recovered,
        event="resolved" if not escalated else "escalated",
        summary=parts.summary,
    )
    merged_flag = outcome != "escalated"
    remediation = Remediation(
        action=parts.action,
        service=str(parts.params.get("service", parts.culprit)),
        params=parts.params,
        pr_id=pr_id,
        pr_url=f"http://127.0.0.1:3000/shop/gitops/pulls/{pr_id}",
        commit_sha=sha if merged_flag else None,
        diff=parts.diff,
        opened_at=pr_opened,
        merged=merged_flag,
        merged_at=merged if merged_flag else None,
        verified=(not reverted) if merged_flag else None,
        verified_at=verify_at if merged_flag else None,
        verification=(
            "signals back within baseline for 3 consecutive windows"
            if outcome == "verified"
            else "signals did not recover within the verification period"
            if reverted
            else ""
        ),
        reverted=reverted,
        reverted_at=verify_at + 10 * NS_PER_S if reverted else None,
        revert_pr_url=f"http://127.0.0.1:3000/shop/gitops/pulls/{int(pr_id) + 1}"
        if reverted
        else None,
        escalated=escalated,
    )
    audit = [
        AuditAction(
            opened,
            "scout",
            "open_incident",
            f"{len(parts.anomalies)} anomalies correlated",
            incident_id,
        ),
        AuditAction(
            diagnosed,
            "brain",
            "diagnose",
            f"top candidate {fault} in {parts.culprit} ({confidence:.2f})",
            incident_id,
        ),
        AuditAction(
            pr_opened,
            "fixer",
            "open_pull_request",
            f"{parts.action} proposed for {parts.culprit}",
            incident_id,
            {"pr": pr_id},
        ),
    ]
    if merged_flag:
        audit.append(
            AuditAction(
                merged,
                "fixer",
                "merge",
                "policy allows automatic merge",
                incident_id,
                {"sha": sha},
            )
        )
        audit.append(
            AuditAction(
                verify_at,
                "verifier",
                "verified",
                remediation.verification,
                incident_id,
                outcome="passed" if not reverted else "failed",
            )
        )
    else:
        audit.append(
            AuditAction(
                merged,
                "policy",
                "require_approval",
                "action needs a person",
                incident_id,
                outcome="blocked",
            )
        )
    if reverted:
        audit.append(
            AuditAction(
                verify_at + 10 * NS_PER_S,
                "fixer",
                "revert",
                "verification failed",
                incident_id,
            )
        )
    if escalated:
        audit.append(
            AuditAction(
                verify_at + 30 * NS_PER_S, "fixer", "escalate", "needs a person", incident_id
            )
        )
    return Case(
        scenario=scenario,
        seed=seed,
        incident=incident,
        anomalies=parts.anomalies,
        diagnosis=diagnosis,
        remediation=remediation,
        audit=audit,
        signals=ctx.signals,
        truth={
            "fault_class": fault,
            "culprit": parts.culprit,
            "onset": ctx.t(onset),
            "end": ctx.t(end),
        },
    )
