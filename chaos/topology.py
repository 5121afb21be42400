"""The shop's static shape: services, their default desired state, operations and the calls between them.

This is data, not logic: `requests.py` walks it. Latencies are medians in milliseconds of a lognormal
(long tail set by sigma); `cpu_ms` is the CPU one call costs the serving pod (drives saturation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "shop"
ENVIRONMENT = "production"

# name -> default logical document (docs/contracts.md; `manifests.py` writes it as Kubernetes YAML);
# versions here are the healthy baseline.
DEFAULT_MANIFESTS: dict[str, dict[str, Any]] = {}


def _manifest(
    service: str,
    version: str,
    replicas: int,
    memory: int,
    cpu: int,
    timeout: int,
    pool: int,
    flags: dict[str, bool] | None = None,
) -> None:
    DEFAULT_MANIFESTS[service] = {
        "service": service,
        "version": version,
        "replicas": replicas,
        "resources": {"memory_limit_mib": memory, "cpu_limit_millicores": cpu},
        "timeouts": {"downstream_ms": timeout},
        "circuit_breaker": False,
        "connection_pool": {"max": pool},
        "feature_flags": dict(flags or {}),
        "rollout": {"restarted_at": ""},
    }


_manifest("frontend", "1.8.0", 3, 512, 1000, 3000, 10, {"new_homepage": False})
_manifest("cart", "3.2.1", 2, 256, 500, 800, 10)
_manifest("catalog", "2.1.0", 2, 512, 500, 800, 20)
_manifest("recommendation", "0.9.4", 2, 1024, 1000, 500, 10, {"ml_ranking_v2": False})
_manifest("checkout", "1.4.2", 2, 512, 500, 800, 20, {"new_pricing_rules": False})
_manifest("payment", "5.0.3", 2, 256, 500, 1500, 20, {"new_fraud_rules": False})
_manifest("inventory", "2.3.0", 2, 256, 500, 800, 20)
_manifest("shipping", "1.1.0", 2, 256, 500, 1000, 10)
_manifest("order-worker", "1.0.7", 2, 256, 500, 2000, 10)
# Sized for the evening peak (1.7x the week's mean): about 40% busy there, as the old 1.35x peak was
# on 2000m; on 2000m the peak ran it at 60% with seconds near 85% and its queries doubled in time.
_manifest("postgres", "15.4.0", 1, 2048, 3000, 5000, 200)
_manifest("redis", "7.2.4", 1, 512, 1000, 1000, 100)

SERVICES: tuple[str, ...] = tuple(DEFAULT_MANIFESTS)
# services with no tracing of their own (seen through their callers' client spans and metrics)
BACKENDS = {"postgres": "postgresql", "redis": "redis"}


@dataclass(frozen=True)
class ServiceProfile:
    """Resource behaviour of one service's pods."""

    base_memory_mib: float  # resident set when idle
    memory_per_rps_mib: float  # working set per request per second served by the pod
    db_conns_held: float = 0.0  # connections held regardless of traffic (workers, listeners)
    db_hold_ms: float = 0.0  # how long a request keeps a connection


PROFILES: dict[str, ServiceProfile] = {
    "frontend": ServiceProfile(160, 2.0),
    "cart": ServiceProfile(90, 1.5),
    "catalog": ServiceProfile(210, 1.0, db_conns_held=4, db_hold_ms=40),
    "recommendation": ServiceProfile(420, 4.0),
    "checkout": ServiceProfile(180, 5.0),
    "payment": ServiceProfile(110, 3.0, db_conns_held=3, db_hold_ms=60),
    "inventory": ServiceProfile(100, 3.0, db_conns_held=5, db_hold_ms=80),
    "shipping": ServiceProfile(95, 2.0),
    "order-worker": ServiceProfile(120, 2.0, db_conns_held=3, db_hold_ms=50),
    "postgres": ServiceProfile(900, 6.0),
    "redis": ServiceProfile(140, 0.5),
}


@dataclass(frozen=True)
class Call:
    """One downstream call an operation makes (with probability `p`).

    kind: "http" / "grpc" (to service+op), "db" (postgres), "cache" (redis, falling back to `db_op`
    on a miss), "publish" (the order queue).
    """

    kind: str
    service: str = ""
    op: str = ""
    p: float = 1.0
    optional: bool = False  # a failure is tolerated by the caller (degraded, not failed)
    retries: int = 0
    db_op: str = ""  # for cache misses: the query that fills the cache


@dataclass(frozen=True)
class Operation:
    """A server operation of a service: its span name, latency, CPU cost and calls."""

    service: str
    name: str  # span name
    protocol: str  # "http" or "grpc"
    median_ms: float
    sigma: float
    cpu_ms: float
    calls: tuple[Call, ...] = ()
    error_rate: float = 0.0  # background errors (noise)
    error: tuple[str, str] = ("RuntimeError", "internal error")
    ctx_attrs: tuple[str, ...] = ()  # request-context attributes put on the server span


@dataclass(frozen=True)
class DbQuery:
    """A database query (client span only: the database is not instrumented)."""

    name: str  # span name, "{operation} {collection}"
    operation: str
    collection: str
    median_ms: float
    sigma: float = 0.5


DB_QUERIES: dict[str, DbQuery] = {
    q.name: q
    for q in (
        DbQuery("SELECT products", "SELECT", "products", 3.0),
        DbQuery("SELECT carts", "SELECT", "carts", 2.0),
        DbQuery("SELECT stock", "SELECT", "stock", 2.5),
        DbQuery("UPDATE stock", "UPDATE", "stock", 4.0),
        DbQuery("INSERT payments", "INSERT", "payments", 5.0),
        DbQuery("INSERT orders", "INSERT", "orders", 5.0),
    )
}
# CPU milliseconds one query costs the database (the simulated traffic is small; queries are heavy)
DB_QUERY_CPU_MS = 60.0
CACHE_CPU_MS = 1.0

_OPS = (
    # frontend: the routes users hit
    Operation(
        "frontend",
        "GET /",
        "http",
        4,
        0.4,
        4,
        (
            Call("http", "catalog", "GET /products"),
            Call(
                "grpc",
                "recommendation",
                "oteldemo.RecommendationService/ListRecommendations",
                p=0.8,
                optional=True,
            ),
        ),
    ),
    Operation(
        "frontend",
        "GET /product/{id}",
        "http",
        3,
        0.4,
        4,
        (
            Call("http", "catalog", "GET /products/{id}", retries=1),
            Call(
                "grpc",
                "recommendation",
                "oteldemo.RecommendationService/ListRecommendations",
                p=0.9,
                optional=True,
            ),
        ),
        ctx_attrs=("app.product.id",),
    ),
    Operation(
        "frontend",
        "POST /api/cart",
        "http",
        3,
        0.4,
        4,
        (Call("http", "cart", "POST /cart/items"),),
        ctx_attrs=("app.product.id",),
    ),
    Operation(
        "frontend",
        "GET /api/products/{id}",
        "http",
        2,
        0.4,
        3,
        (Call("http", "catalog", "GET /products/{id}", retries=1),),
        ctx_attrs=("app.product.id",),
    ),
    Operation(
        "frontend",
        "GET /api/cart",
        "http",
        2,
        0.4,
        3,
        (Call("http", "cart", "GET /cart", retries=1),),
    ),
    Operation(
        "frontend",
        "POST /api/checkout",
        "http",
        5,
        0.4,
        5,
        (Call("http", "checkout", "POST /checkout"),),
        ctx_attrs=("app.loyalty_level",),
    ),
    # cart
    Operation(
        "cart",
        "POST /cart/items",
        "http",
        3,
        0.5,
        6,
        (Call("http", "catalog", "GET /products/{id}", retries=1), Call("cache", op="HSET")),
        ctx_attrs=("app.product.id", "app.cart.value"),
    ),
    Operation(
        "cart", "GET /cart", "http", 2, 0.5, 4, (Call("cache", op="HGETALL", db_op="SELECT carts"),)
    ),
    # catalog
    Operation(
        "catalog",
        "GET /products",
        "http",
        6,
        0.5,
        12,
        (Call("cache", op="GET", db_op="SELECT products"),),
        error_rate=0.002,
        error=("ValueError", "malformed product row"),
    ),
    Operation(
        "catalog",
        "GET /products/{id}",
        "http",
        4,
        0.5,
        20,  # per-item pricing is the catalog's expensive call
        (Call("cache", op="GET", db_op="SELECT products"),),
        ctx_attrs=("app.product.id",),
    ),
    # recommendation (gRPC, with a small background failure rate: noise)
    Operation(
        "recommendation",
        "oteldemo.RecommendationService/ListRecommendations",
        "grpc",
        18,
        0.6,
        25,
        (Call("http", "catalog", "GET /products", p=0.3, optional=True),),
        error_rate=0.004,
        error=("ModelUnavailable", "ranking model not loaded"),
    ),
    # checkout and its dependencies
    Operation(
        "checkout",
        "POST /checkout",
        "http",
        8,
        0.5,
        15,
        (
            Call("http", "cart", "GET /cart", retries=1),
            Call("http", "inventory", "POST /inventory/reserve"),
            Call("grpc", "shipping", "oteldemo.ShippingService/GetQuote", retries=1),
            Call("http", "payment", "POST /payments"),
            Call("publish", op="orders"),
        ),
        ctx_attrs=("app.cart.value", "app.loyalty_level"),
    ),
    Operation(
        "inventory",
        "POST /inventory/reserve",
        "http",
        3,
        0.5,
        8,
        (Call("db", op="SELECT stock"), Call("db", op="UPDATE stock")),
    ),
    Operation(
        "shipping",
        "oteldemo.ShippingService/GetQuote",
        "grpc",
        12,
        0.6,
        6,
    ),
    Operation(
        "payment",
        "POST /payments",
        "http",
        35,
        0.6,
        10,
        (Call("db", op="INSERT payments"),),
        error_rate=0.001,
        error=("ConnectionResetError", "card network reset the connection"),
        ctx_attrs=("app.cart.value", "app.loyalty_level"),
    ),
    # the order queue's consumer (started by the queue, not by a caller)
    Operation(
        "order-worker",
        "orders process",
        "messaging",
        30,
        0.5,
        20,
        (Call("db", op="INSERT orders"),),
    ),
)

OPERATIONS: dict[tuple[str, str], Operation] = {(o.service, o.name): o for o in _OPS}

# frontend routes and their share of user requests; checkouts are derived from carts (the journey)
ROUTE_MIX: tuple[tuple[str, float], ...] = (
    ("GET /", 0.25),
    ("GET /product/{id}", 0.36),
    ("GET /api/products/{id}", 0.02),
    ("POST /api/cart", 0.17),
    ("GET /api/cart", 0.08),
)
CHECKOUT_ROUTE = "POST /api/checkout"
CART_TO_CHECKOUT = 0.7  # share of cart additions followed by a checkout (healthy conversion)
PAYMENT_DECLINE_RATE = 0.03  # healthy declines, any segment
CACHE_HIT_RATIO = 0.92
LOYALTY_LEVELS = (("bronze", 0.5), ("silver", 0.3), ("gold", 0.15), ("platinum", 0.05))
PRODUCT_IDS = tuple(f"P{n:04d}" for n in range(1, 61))


@dataclass(frozen=True)
class QueueSpec:
    """The async order queue: producer in checkout, consumer in order-worker."""

    topic: str = "orders"
    consumer_service: str = "order-worker"
    consumer_op: str = "orders process"
    consumer_ms_per_message: float = 60.0  # processing capacity per ready consumer pod
    partitions: int = 6
    extra: dict[str, str] = field(default_factory=dict)


QUEUE = QueueSpec()
