"""A seeded synthetic shop for population tests: a small service graph, a baseline window and an
incident window with one injected fault (plus background noise), as a contract span frame together
with the metric samples and GitOps commits that fault would leave behind."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from sinks.brain.loading import SPAN_SCHEMA

ATTRS = (
    "http.route",
    "k8s.pod.name",
    "feature_flag.key",
    "app.loyalty_level",
    "app.payment.outcome",
    "app.product.id",
)
S = 1_000_000_000  # one second in ns
MS = 1_000_000
T0 = 1_764_000_000 * S
WINDOW_S = 300
BASELINE = (T0, T0 + WINDOW_S * S)
INCIDENT = (T0 + WINDOW_S * S, T0 + 2 * WINDOW_S * S)

# scenario -> (culprit service, fault class the Brain should report)
EXPECTED: dict[str, tuple[str, str]] = {
    "oom": ("payment", "memory_leak"),
    "conversion": ("payment", "business_rule"),
    "latency": ("inventory", "db_latency"),
    "errors": ("checkout", "error_regression"),
    "dependency_timeout": ("shipping", "dependency_timeout"),
    "config_drift": ("checkout", "config_pool_exhaustion"),
    "cpu_saturation": ("recommendation", "cpu_saturation"),
    "cache_failure": ("cache", "cache_failure"),
    "queue_lag": ("orders-consumer", "queue_lag"),
    "crashloop": ("shipping", "crashloop"),
}
VERSIONS = {
    "frontend": "1.0.0",
    "cart": "1.1.0",
    "cache": "7.2.0",
    "checkout": "2.0.3",
    "inventory": "1.4.0",
    "payment": "1.2.9",
    "shipping": "0.9.1",
    "recommendation": "3.1.0",
    "orders-consumer": "1.0.2",
}


@dataclass
class Shop:
    """One recording: spans plus side data, and the windows."""

    spans: pl.DataFrame
    metrics: list[dict[str, Any]] = field(default_factory=list)
    commits: list[dict[str, Any]] = field(default_factory=list)


class _Builder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rows: list[dict[str, Any]] = []

    def span_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def add(
        self,
        trace: str,
        parent: str,
        service: str,
        op: str,
        kind: int,
        start: int,
        end: int,
        *,
        error: bool = False,
        http: int = 0,
        version: str | None = None,
        attrs: dict[str, str] | None = None,
        events: list[dict[str, Any]] | None = None,
        span_id: str | None = None,
    ) -> str:
        sid = span_id or self.span_id()
        row: dict[str, Any] = {
            "trace_id": trace,
            "span_id": sid,
            "parent_span_id": parent,
            "service": service,
            "service_version": version or VERSIONS[service],
            "operation": op,
            "kind": kind,
            "status_code": 2 if error else 0,
            "http_status": http,
            "rpc_grpc_status": -1,
            "start_ns": start,
            "end_ns": end,
            "duration_ns": end - start,
            "is_error": error or (kind == 2 and http >= 500),
            "events": json.dumps(events) if events else "",
        }
        for key in ATTRS:
            row[key] = ""
        row["k8s.pod.name"] = f"{service}-{self.rng.randrange(3)}"
        row.update(attrs or {})
        self.rows.append(row)
        return sid


def _lat(rng: random.Random, median_ms: float) -> int:
    return int(rng.lognormvariate(0, 0.25) * median_ms * MS)


def _trace(b: _Builder, t0: int, fault: str | None, seed_rng: random.Random) -> None:
    rng = seed_rng
    trace = f"{rng.getrandbits(128):032x}"
    loyalty = rng.choice(["bronze", "silver", "gold", "platinum"])
    product = f"P{rng.randrange(20):03d}"
    root = b.span_id()
    t = t0 + MS
    root_attrs = {
        "http.route": "/checkout",
        "app.loyalty_level": loyalty,
        "app.product.id": product,
    }
    failed = False
    # cart: cache lookup, database on a miss
    c_start = t
    cart_client = b.span_id()
    cart_srv = b.span_id()
    cc = t + MS // 2
    cache_ms = _lat(rng, 1)
    b.add(trace, cart_srv, "cache", "GET", 2, cc, cc + cache_ms, attrs={"http.route": "GET"})
    cc += cache_ms + MS // 5
    miss = rng.random() < (0.9 if fault == "cache_failure" else 0.1)
    if miss:
        db_ms = _lat(rng, 12 if fault == "cache_failure" else 8)
        b.add(trace, cart_srv, "cart", "SELECT cart", 3, cc, cc + db_ms)
        cc += db_ms
    cc += _lat(rng, 2)
    b.add(
        trace,
        cart_client,
        "cart",
        "GET /cart",
        2,
        c_start + MS // 4,
        cc,
        span_id=cart_srv,
        attrs={"http.route": "/cart"},
    )
    b.add(trace, root, "frontend", "cart.get", 3, c_start, cc + MS // 4, span_id=cart_client)
    t = cc + MS // 2
    # recommendation runs in parallel with checkout
    r_start = t
    rec_self = _lat(rng, 40 if fault == "cpu_saturation" else 8)
    rec_err = rng.random() < 0.01  # background noise
    rec_client = b.span_id()
    b.add(
        trace,
        rec_client,
        "recommendation",
        "GET /recommendations",
        2,
        r_start + MS // 4,
        r_start + rec_self,
        error=rec_err,
        http=500 if rec_err else 200,
        attrs={"http.route": "/recommendations"},
    )
    b.add(
        trace,
        root,
        "frontend",
        "recommendation.list",
        3,
        r_start,
        r_start + rec_self + MS // 4,
        span_id=rec_client,
    )
    # checkout
    k_start = t
    k_client = b.span_id()
    k_srv = b.span_id()
    version = "2.1.0" if fault == "errors" else None
    kc = k_start + MS // 2
    if fault == "config_drift":
        wait = _lat(rng, 60)
        b.add(trace, k_srv, "checkout", "pool.acquire", 1, kc, kc + wait, error=rng.random() < 0.1)
        kc += wait
    kc += _lat(rng, 3)
    # inventory -> its own database call (a client span of inventory)
    inv_c, inv_s = b.span_id(), b.span_id()
    ic = kc + MS // 4
    db_ms = _lat(rng, 90 if fault == "latency" else 6)
    b.add(trace, inv_s, "inventory", "SELECT stock", 3, ic + MS // 4, ic + MS // 4 + db_ms)
    ie = ic + MS // 4 + db_ms + _lat(rng, 2)
    b.add(
        trace,
        inv_c,
        "inventory",
        "POST /reserve",
        2,
        ic,
        ie,
        span_id=inv_s,
        attrs={"http.route": "/reserve"},
    )
    b.add(trace, k_srv, "checkout", "inventory.reserve", 3, kc, ie + MS // 4, span_id=inv_c)
    kc = ie + MS // 2
    # payment
    pay_c = b.span_id()
    pc = kc
    pay_version = "1.3.0" if fault == "oom" else None
    flag_on = fault == "conversion" or (fault is None and False)
    events = [
        {
            "name": "feature_flag",
            "time_ns": pc,
            "attributes": {
                "feature_flag.key": "new_pricing_rules",
                "feature_flag.variant": "on" if flag_on else "off",
            },
        }
    ]
    if fault == "oom" and rng.random() < 0.3:
        # payment is OOM-killed: the call gets no answer, no server span
        pe = pc + _lat(rng, 5)
        b.add(trace, k_srv, "checkout", "payment.charge", 3, pc, pe, error=True, span_id=pay_c)
        failed = True
    else:
        declined = flag_on and loyalty == "gold"
        if not declined and rng.random() < 0.01:
            declined = True  # ordinary declines exist in the baseline too
        pay_ms = _lat(rng, 15)
        b.add(
            trace,
            pay_c,
            "payment",
            "POST /payments",
            2,
            pc + MS // 4,
            pc + pay_ms,
            http=200,
            version=pay_version,
            events=events,
            attrs={
                "http.route": "/payments",
                "app.loyalty_level": loyalty,
                "app.payment.outcome": "declined" if declined else "approved",
            },
        )
        pe = pc + pay_ms + MS // 4
        b.add(trace, k_srv, "checkout", "payment.charge", 3, pc, pe, span_id=pay_c)
    kc = pe + MS // 2
    # shipping
    sh_c = b.span_id()
    sc = kc
    if fault == "dependency_timeout" and rng.random() < 0.5:
        hang = _lat(rng, 3000)
        b.add(
            trace,
            sh_c,
            "shipping",
            "POST /quote",
            2,
            sc + MS // 4,
            sc + hang,
            http=200,
            attrs={"http.route": "/quote"},
        )
        se = sc + 800 * MS
        b.add(trace, k_srv, "checkout", "shipping.quote", 3, sc, se, error=True, span_id=sh_c)
        failed = True
    elif fault == "crashloop" and rng.random() < 0.4:
        se = sc + _lat(rng, 2)
        b.add(trace, k_srv, "checkout", "shipping.quote", 3, sc, se, error=True, span_id=sh_c)
        failed = True
    else:
        sh_ms = _lat(rng, 10)
        b.add(
            trace,
            sh_c,
            "shipping",
            "POST /quote",
            2,
            sc + MS // 4,
            sc + sh_ms,
            http=200,
            attrs={"http.route": "/quote"},
        )
        se = sc + sh_ms + MS // 4
        b.add(trace, k_srv, "checkout", "shipping.quote", 3, sc, se, span_id=sh_c)
    kc = se + MS // 2
    # publish the order; the consumer processes it asynchronously in the same trace
    prod = b.add(trace, k_srv, "checkout", "orders publish", 4, kc, kc + MS)
    q_delay = _lat(rng, 5)
    proc = _lat(rng, 100 if fault == "queue_lag" else 20)
    b.add(
        trace,
        prod,
        "orders-consumer",
        "orders process",
        5,
        kc + MS + q_delay,
        kc + MS + q_delay + proc,
    )
    kc += 2 * MS
    k_err = fault == "errors" and rng.random() < 0.3
    failed = failed or k_err
    b.add(
        trace,
        k_client,
        "checkout",
        "POST /checkout",
        2,
        k_start + MS // 4,
        kc,
        error=k_err,
        http=500 if (k_err or failed) else 200,
        version=version,
        attrs={"http.route": "/checkout"},
        span_id=k_srv,
    )
    k_end = kc + MS // 4
    b.add(
        trace, root, "frontend", "checkout.place", 3, k_start, k_end, span_id=k_client, error=failed
    )
    end = max(k_end, r_start + rec_self + MS // 4) + MS
    b.add(
        trace,
        "",
        "frontend",
        "POST /checkout",
        2,
        t0,
        end,
        span_id=root,
        error=failed,
        http=500 if failed else 200,
        attrs=root_attrs,
    )


def generate(fault: str | None, seed: int = 1, traces_per_window: int = 240) -> Shop:
    """Baseline window healthy, incident window with `fault` (None: both healthy)."""
    rng = random.Random(seed)
    b = _Builder(rng)
    for w, (start, end) in enumerate((BASELINE, INCIDENT)):
        n = traces_per_window
        if w == 1 and fault == "cpu_saturation":
            n *= 2  # the surge
        for i in range(n):
            t0 = start + int((end - start) * (i + rng.random() * 0.5) / (n + 1))
            _trace(b, t0, fault if w == 1 else None, rng)
    schema = dict(SPAN_SCHEMA)
    for key in ATTRS:
        schema[key] = pl.String
    schema["events"] = pl.String
    frame = pl.DataFrame(b.rows, schema=schema)
    return Shop(frame, _metrics(fault, rng), _commits(fault))


def _metrics(fault: str | None, rng: random.Random) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for (start, _end), incident in ((BASELINE, False), (INCIDENT, True)):
        for k in range(10):
            t = start + k * 30 * S
            for svc in VERSIONS:
                mem = 0.5 + rng.random() * 0.05
                if incident and fault == "oom" and svc == "payment":
                    mem = 0.8 + 0.02 * k
                out.append(
                    {
                        "service": svc,
                        "metric": "container.memory.usage",
                        "time_ns": t,
                        "value": mem * 512,
                        "attributes": {},
                    }
                )
                out.append(
                    {
                        "service": svc,
                        "metric": "k8s.container.memory_limit",
                        "time_ns": t,
                        "value": 512.0,
                        "attributes": {},
                    }
                )
                cpu = 0.3 + rng.random() * 0.1
                if incident and fault == "cpu_saturation" and svc == "recommendation":
                    cpu = 0.97
                out.append(
                    {
                        "service": svc,
                        "metric": "container.cpu.utilization",
                        "time_ns": t,
                        "value": cpu,
                        "attributes": {},
                    }
                )
                restarts = 0.0
                reason = ""
                if incident and fault == "oom" and svc == "payment":
                    restarts, reason = float(k // 3), "OOMKilled"
                if incident and fault == "crashloop" and svc == "shipping":
                    restarts, reason = float(k), "CrashLoopBackOff"
                out.append(
                    {
                        "service": svc,
                        "metric": "k8s.container.restarts",
                        "time_ns": t,
                        "value": restarts,
                        "attributes": {"reason": reason} if reason else {},
                    }
                )
            pool_max = 2.0 if (incident and fault == "config_drift") else 20.0
            used = pool_max if (incident and fault == "config_drift") else 4.0 + rng.random() * 2
            out.append(
                {
                    "service": "checkout",
                    "metric": "db.client.connection.count",
                    "time_ns": t,
                    "value": used,
                    "attributes": {"db.client.connection.state": "used"},
                }
            )
            out.append(
                {
                    "service": "checkout",
                    "metric": "db.client.connection.max",
                    "time_ns": t,
                    "value": pool_max,
                    "attributes": {},
                }
            )
            lag = 2.0 + rng.random() * 3
            if incident and fault == "queue_lag":
                lag = 50.0 + 40 * k
            out.append(
                {
                    "service": "orders-consumer",
                    "metric": "messaging.kafka.consumer.lag",
                    "time_ns": t,
                    "value": lag,
                    "attributes": {},
                }
            )
    return out


def _commits(fault: str | None) -> list[dict[str, Any]]:
    from sre_space.timeutil import ns_to_rfc3339

    at = ns_to_rfc3339(INCIDENT[0] - 60 * S)
    noise = {
        "sha": "0" * 39 + "1",
        "at": ns_to_rfc3339(INCIDENT[0] - 600 * S),
        "message": "cart: bump replicas to 3",
        "files": ["services/cart.yaml"],
    }
    specific = {
        "conversion": {
            "sha": "c0ffee" + "0" * 34,
            "at": at,
            "message": "payment: enable new_pricing_rules flag",
            "files": ["services/payment.yaml"],
        },
        "config_drift": {
            "sha": "dead" + "0" * 36,
            "at": at,
            "message": "checkout: connection_pool max 20 -> 2",
            "files": ["services/checkout.yaml"],
        },
        "crashloop": {
            "sha": "beef" + "0" * 36,
            "at": at,
            "message": "shipping: tighten readiness probe",
            "files": ["services/shipping.yaml"],
        },
        "errors": {
            "sha": "abcd" + "0" * 36,
            "at": at,
            "message": "checkout: deploy version 2.1.0",
            "files": ["services/checkout.yaml"],
        },
        "oom": {
            "sha": "feed" + "0" * 36,
            "at": at,
            "message": "payment: deploy version 1.3.0",
            "files": ["services/payment.yaml"],
        },
    }
    out = [noise]
    if fault in specific:
        out.append(specific[fault])
    return out
