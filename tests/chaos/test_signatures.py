"""Every scenario's signature is visible in its recording (fault window vs the baseline before it)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chaos.scenarios import registry
from chaos.summary import Summary
from tests.chaos.params import BASELINE, FAULT, Recorder

B, F = BASELINE, FAULT


def _rate(s: Summary, window: tuple[int, int], service: str | None = None) -> float:
    n, e = s.errors(*window, service=service)
    return e / max(1, n)


def _conversion(s: Summary, window: tuple[int, int]) -> float:
    return s.count("outcome.approved", *window) / max(
        1, s.op("cart", "POST /cart/items", *window)[0]
    )


def oom(s: Summary) -> None:
    limit = s.metric("checkout", "k8s.container.memory_limit", *F)
    assert s.metric("checkout", "container.memory.usage", *B) < 0.5 * limit
    assert s.metric("checkout", "container.memory.usage", 2, 6) > 0.9 * limit  # climbs to the limit
    assert s.metric("checkout", "k8s.container.restarts", *B) == 0
    assert s.metric("checkout", "k8s.container.restarts", *F) >= 1
    assert "OOMKilled" in s.reasons
    assert s.versions["checkout"] == {"1.4.2", "1.4.3"}  # the new version is visible in resources


def _approved(s: Summary, window: tuple[int, int]) -> float:
    return s.count("outcome.approved", *window) / max(
        1, s.op("payment", "POST /payments", *window)[0]
    )


def conversion(s: Summary) -> None:
    assert _conversion(s, B) > 0.6
    # The drop is in the paid step: end to end, a few hundred journeys carry a binomial noise
    # (sd about 0.05 on the difference) as large as the drop itself.
    assert _approved(s, B) > 0.9
    assert _approved(s, F) < _approved(s, B) - 0.07
    # the segment: gold payments are declined, others are not
    gold_declined = s.count("outcome.gold.declined", *F) / max(
        1, s.count("outcome.gold.declined", *F) + s.count("outcome.gold.approved", *F)
    )
    bronze_declined = s.count("outcome.bronze.declined", *F) / max(
        1, s.count("outcome.bronze.declined", *F) + s.count("outcome.bronze.approved", *F)
    )
    assert gold_declined > 0.7 and bronze_declined < 0.1
    # no 5xx at all, error rate flat
    assert s.count("http5xx", *F) <= s.count("http5xx", *B) + 3
    assert _rate(s, F) < 0.003


def latency(s: Summary) -> None:
    before, after = (
        s.op("inventory", "SELECT stock", *B)[2],
        s.op("inventory", "SELECT stock", *F)[2],
    )
    assert after > 5 * before
    assert (
        s.op("checkout", "POST /checkout", *F)[2] > s.op("checkout", "POST /checkout", *B)[2] + 20
    )
    assert (
        s.op("inventory", "UPDATE stock", *F)[2] < 2 * s.op("inventory", "UPDATE stock", *B)[2]
    )  # only one query
    assert _rate(s, F) < 0.003


def errors(s: Summary) -> None:
    n, e, _ = s.op("cart", "POST /cart/items", *F)
    assert 0.05 < e / n < 0.3
    assert s.op("cart", "POST /cart/items", *B)[1] == 0
    assert s.count("http5xx", *F) > 20
    assert s.versions["cart"] == {"3.2.1", "3.3.0"}


def dependency_timeout(s: Summary) -> None:
    client = s.op("checkout", "oteldemo.ShippingService/GetQuote", *F)
    server = s.op("shipping", "oteldemo.ShippingService/GetQuote", *F)
    assert client[1] == client[0] > 0  # every caller span fails (deadline)
    assert server[1] == 0 and server[2] > 2000  # the callee is slow, never an error
    assert 790 < client[2] < 810  # the caller gave up at its timeout
    assert _conversion(s, F) < 0.2


def config_drift(s: Summary) -> None:
    assert s.metric("inventory", "db.client.connection.max", *B) == 20
    assert s.metric("inventory", "db.client.connection.max", *F) == 2
    assert s.metric("inventory", "db.client.connection.count", *F) == 2  # used == max: exhausted
    assert s.op("inventory", "POST /inventory/reserve", *F)[1] > 20
    assert s.op("inventory", "POST /inventory/reserve", *B)[1] == 0


def cpu_saturation(s: Summary) -> None:
    assert s.metric("catalog", "container.cpu.utilization", *B) < 0.5
    assert s.metric("catalog", "container.cpu.utilization", *F) >= 0.99
    assert s.metric("catalog", "container.cpu.throttling", *F) > 0.05
    before, after = (
        s.op("catalog", "GET /products/{id}", *B),
        s.op("catalog", "GET /products/{id}", *F),
    )
    assert after[0] > 5 * before[0] and after[2] > 10 * before[2]  # more traffic, queueing latency
    assert (
        s.metric("frontend", "container.cpu.utilization", *F) < 0.8
    )  # the frontend is not saturated


def cache_failure(s: Summary) -> None:
    hit_b = s.count("cache.hit", *B) / max(1, s.count("cache.hit", *B) + s.count("cache.miss", *B))
    hit_f = s.count("cache.hit", *F) / max(1, s.count("cache.hit", *F) + s.count("cache.miss", *F))
    assert hit_b > 0.85 and hit_f < 0.05
    # the cache's own counters (the Collector's redis receiver) say so too
    misses = (
        s.metric("redis", "redis.keyspace.misses", *B),
        s.metric("redis", "redis.keyspace.misses", *F),
    )
    hits = (
        s.metric("redis", "redis.keyspace.hits", *B),
        s.metric("redis", "redis.keyspace.hits", *F),
    )
    assert misses[1] > 5 * misses[0] and hits[1] < 1.2 * hits[0]
    queries = (
        s.op("catalog", "SELECT products", *B)[0] / 2,
        s.op("catalog", "SELECT products", *F)[0] / 3,
    )
    assert queries[1] > 5 * queries[0]  # database load per minute
    assert s.metric("postgres", "container.cpu.utilization", *F) > s.metric(
        "postgres", "container.cpu.utilization", *B
    )
    assert s.op("catalog", "GET /products", *F)[2] > s.op("catalog", "GET /products", *B)[2]


def queue_lag(s: Summary) -> None:
    assert s.metric("order-worker", "messaging.kafka.consumer.lag", *B) <= 1
    assert s.metric("order-worker", "messaging.kafka.consumer.lag", 5, 6) > 20
    assert s.metric("order-worker", "messaging.kafka.consumer.lag", 5, 6) > s.metric(
        "order-worker", "messaging.kafka.consumer.lag", 3, 4
    )
    assert s.metric("order-worker", "messaging.queue.depth", 5, 6) > 20
    assert (
        s.op("order-worker", "orders process", *F)[2]
        > 10 * s.op("order-worker", "orders process", *B)[2]
    )
    assert _rate(s, F) < 0.003  # nothing fails, it is only late


def crashloop(s: Summary) -> None:
    assert s.metric("recommendation", "k8s.container.restarts", *B) == 0
    assert s.metric("recommendation", "k8s.container.restarts", *F) >= 2
    assert "CrashLoopBackOff" in s.reasons
    calls = s.op("frontend", "oteldemo.RecommendationService/ListRecommendations", *F)
    assert calls[1] > 0.5 * calls[0]  # callers see it down
    assert s.op("frontend", "GET /", *F)[1] <= 3  # optional: pages degrade, they do not fail


SIGNATURES: dict[str, tuple[Callable[[Summary], None], float]] = {
    "oom": (oom, 4.0),
    "conversion": (conversion, 1.0),
    "latency": (latency, 1.0),
    "errors": (errors, 1.0),
    "dependency_timeout": (dependency_timeout, 1.0),
    "config_drift": (config_drift, 1.0),
    "cpu_saturation": (cpu_saturation, 1.0),
    "cache_failure": (cache_failure, 1.0),
    "queue_lag": (queue_lag, 1.0),
    "crashloop": (crashloop, 1.0),
}


def test_every_scenario_has_a_signature_test() -> None:
    assert set(SIGNATURES) == set(registry())


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signature_visible(recorded: Recorder, name: str) -> None:
    check, intensity = SIGNATURES[name]
    _, labels, summary = recorded(name, seed=1, intensity=intensity)
    assert labels["scenario"] == name
    check(summary)


def test_healthy_is_quiet(recorded: Recorder) -> None:
    _, labels, s = recorded("healthy", seed=1)
    assert labels["fault_class"] is None and labels["culprit"] is None
    whole = (0, 6)
    assert _rate(s, whole) < 0.003
    assert 0.6 < _conversion(s, whole) < 0.8
    assert (
        max(v for (m, svc, name), v in s.metric_max.items() if name == "k8s.container.restarts")
        == 0
    )
    # the harmless deploy happened, and nothing broke because of it
    assert labels["noise"] and labels["noise"][0]["kind"] == "deploy"
