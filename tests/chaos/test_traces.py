"""The shape of the telemetry: parent links, span kinds, semantic conventions, events, metrics."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from chaos.shop import Shop, ShopConfig
from chaos.summary import attrs
from chaos.topology import SERVICES


def _spans(shop: Shop, seconds: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    spans: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    for batch in shop.advance(seconds):
        doc = batch.json_doc()
        if batch.kind == "metrics":
            metrics.append(doc)
            continue
        for rs in doc["resourceSpans"]:
            res = attrs(rs["resource"]["attributes"])
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    spans.append({**sp, "res": res, "a": attrs(sp.get("attributes"))})
    return spans, metrics


@pytest.fixture(scope="module")
def healthy() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return _spans(Shop(seed=2, config=ShopConfig(rate_rps=15)), 60)


def test_parent_links_cross_services_with_client_server_pairs(healthy: Any) -> None:
    spans, _ = healthy
    by_id = {(s["traceId"], s["spanId"]): s for s in spans}
    assert len(by_id) == len(spans)  # unique ids
    roots = [s for s in spans if "parentSpanId" not in s]
    assert roots and all(s["res"]["service.name"] == "frontend" and s["kind"] == 2 for s in roots)
    cross = 0
    for s in spans:
        if "parentSpanId" not in s:
            continue
        parent = by_id.get((s["traceId"], s["parentSpanId"]))
        assert parent is not None, s["name"]
        if s["kind"] == 2:  # a server span's parent is a client span in another service
            assert parent["kind"] == 3 and parent["res"]["service.name"] != s["res"]["service.name"]
            cross += 1
            assert parent["startTimeUnixNano"] <= s["startTimeUnixNano"]
        if s["kind"] == 5:  # the consumer continues the producer's trace
            assert parent["kind"] == 4 and parent["res"]["service.name"] == "checkout"
            assert s["res"]["service.name"] == "order-worker"
    assert cross > 100


def test_semantic_conventions(healthy: Any) -> None:
    spans, _ = healthy
    services = {s["res"]["service.name"] for s in spans}
    assert services == set(SERVICES) - {"postgres", "redis"}  # the backends are seen via clients
    for s in spans:
        res = s["res"]
        assert res["k8s.pod.name"].startswith(res["service.name"] + "-")
        assert res["service.instance.id"] == res["k8s.pod.name"]
        assert res["deployment.environment"] == "production" and res["service.version"]
    http_servers = [s for s in spans if s["kind"] == 2 and "http.route" in s["a"]]
    assert all(
        isinstance(s["a"]["http.response.status_code"], int) and s["a"]["http.request.method"]
        for s in http_servers
    )
    assert all(
        s["name"] == f"{s['a']['http.request.method']} {s['a']['http.route']}" for s in http_servers
    )
    grpc = [s for s in spans if s["a"].get("rpc.system") == "grpc"]
    assert grpc and all("rpc.grpc.status_code" in s["a"] for s in grpc)
    dbs = Counter(s["a"]["db.system"] for s in spans if "db.system" in s["a"])
    assert dbs["postgresql"] > 50 and dbs["redis"] > 50
    journey = Counter((s["res"]["service.name"], s["name"]) for s in spans if s["kind"] == 2)
    assert journey[("cart", "POST /cart/items")] and journey[("checkout", "POST /checkout")]
    pays = [s for s in spans if s["name"] == "POST /payments" and s["kind"] == 2]
    outcomes = Counter(s["a"]["app.payment.outcome"] for s in pays)
    assert outcomes["approved"] > 10 * outcomes["declined"] > 0 or outcomes["declined"] == 0
    assert all(
        s["a"]["app.loyalty_level"] in {"bronze", "silver", "gold", "platinum"} for s in pays
    )
    carts = [s for s in spans if s["name"] == "POST /cart/items" and s["kind"] == 2]
    assert all(
        isinstance(s["a"]["app.cart.value"], float) and s["a"]["app.product.id"].startswith("P")
        for s in carts
    )


def test_feature_flag_events(healthy: Any) -> None:
    spans, _ = healthy
    flags = [e for s in spans for e in s.get("events", []) if e["name"] == "feature_flag"]
    keys = Counter(attrs(e["attributes"])["feature_flag.key"] for e in flags)
    assert {"new_fraud_rules", "new_pricing_rules", "new_homepage"} <= set(keys)
    assert all(attrs(e["attributes"])["feature_flag.variant"] == "off" for e in flags)


def test_timeouts_exceptions_and_retries() -> None:
    shop = Shop(seed=6, config=ShopConfig(rate_rps=10))
    shop.advance(30)
    shop.inject("dependency_timeout")
    shop.inject("errors")
    spans, _ = _spans(shop, 60)
    by_id = {(s["traceId"], s["spanId"]): s for s in spans}
    callers = [
        s for s in spans if s["name"] == "oteldemo.ShippingService/GetQuote" and s["kind"] == 3
    ]
    assert callers
    for c in callers:
        assert c["status"]["code"] == 2 and c["a"]["rpc.grpc.status_code"] == 4  # DEADLINE_EXCEEDED
        callee = next(
            s
            for s in spans
            if s.get("parentSpanId") == c["spanId"] and s["traceId"] == c["traceId"]
        )
        assert "status" not in callee and callee["a"]["rpc.grpc.status_code"] == 0
        assert int(callee["endTimeUnixNano"]) > int(
            c["endTimeUnixNano"]
        )  # keeps running after the caller left
        parent = by_id[(c["traceId"], c["parentSpanId"])]
        assert parent["a"]["http.response.status_code"] == 504
    thrown = [
        s for s in spans if s["name"] == "POST /cart/items" and s["kind"] == 2 and "status" in s
    ]
    assert thrown
    for s in thrown:
        exc = [attrs(e["attributes"]) for e in s["events"] if e["name"] == "exception"]
        assert exc == [
            {
                "exception.type": "KeyError",
                "exception.message": "'variant_id'",
                "exception.escaped": True,
            }
        ]
        assert s["a"]["http.response.status_code"] == 500 and s["res"]["service.version"] == "3.3.0"
    # a failed idempotent call is retried once, and the retry says so
    shop.inject("crashloop")
    spans, _ = _spans(shop, 60)
    resent = [s for s in spans if s["a"].get("http.request.resend_count") == 1]
    assert all(s["kind"] == 3 for s in resent)


def test_metrics_per_instance(healthy: Any) -> None:
    _, metrics = healthy
    assert len(metrics) == 6  # every 10 s for a minute
    doc = metrics[-1]
    pods = {attrs(rm["resource"]["attributes"])["k8s.pod.name"] for rm in doc["resourceMetrics"]}
    assert len(pods) == sum(Shop(seed=2).desired[s].replicas for s in SERVICES)
    names: dict[str, dict[str, Any]] = {}
    for rm in doc["resourceMetrics"]:
        for m in rm["scopeMetrics"][0]["metrics"]:
            names.setdefault(m["name"], m)
    assert set(names) == {
        "container.memory.usage", "k8s.container.memory_limit", "container.cpu.utilization",
        "container.cpu.throttling", "k8s.container.restarts", "db.client.connection.count",
        "db.client.connection.max", "messaging.queue.depth", "messaging.kafka.consumer.lag",
        "app.checkouts.started", "app.orders.placed", "redis.keyspace.hits",
        "redis.keyspace.misses",
    }  # fmt: skip
    assert (
        names["container.memory.usage"]["unit"] == "By"
        and "gauge" in names["container.memory.usage"]
    )
    restarts = names["k8s.container.restarts"]["sum"]
    assert restarts["isMonotonic"] and restarts["aggregationTemporality"] == 2
    states = {
        attrs(dp["attributes"])["db.client.connection.state"]
        for dp in names["db.client.connection.count"]["gauge"]["dataPoints"]
    }
    assert states == {"used", "idle"}


def test_metric_interval_is_configurable() -> None:
    shop = Shop(seed=1, config=ShopConfig(rate_rps=2, metric_interval_s=5))
    assert sum(b.kind == "metrics" for b in shop.advance(30)) == 6
