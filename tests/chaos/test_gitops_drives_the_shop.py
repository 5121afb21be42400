"""A merged manifest change really changes the shop's behaviour."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from chaos.gitops import GitOpsRepo
from chaos.scenarios import _set
from chaos.shop import Shop, ShopConfig
from chaos.summary import Summary


def _run(shop: Shop, seconds: float, s: Summary) -> None:
    for batch in shop.iter_batches(seconds):
        s.add(batch.json_doc(), shop.config.epoch_ns)


def _fix(shop: Shop, service: str, path: tuple[str, ...], value: Any) -> str:
    # as the Fixer would: a real commit on main; the shop notices on its next reload
    return shop.repo.commit(
        service, lambda d: _set(d, path, value), f"fix {service}", when_ns=shop.now_ns
    )


def _shop(rate: float = 5) -> Shop:
    return Shop(seed=8, config=ShopConfig(rate_rps=rate))


def test_rolling_back_the_version_removes_the_leak() -> None:
    shop, s = _shop(), Summary()
    inj = shop.inject("oom", intensity=4)
    _run(shop, 120, s)
    _fix(shop, "checkout", ("version",), inj.previous_version)
    _run(shop, 600, s)
    assert s.metric("checkout", "container.memory.usage", 0, 2) > 300 * 2**20
    assert s.metric("checkout", "container.memory.usage", 4, 12) < 260 * 2**20
    assert s.metric("checkout", "k8s.container.restarts", 4, 12) == 0  # new pods, no more kills
    assert shop.desired["checkout"].version == "1.4.2" and not shop.catalog.active(shop.desired)


def test_raising_the_limit_only_delays_the_oom() -> None:
    def first_kill(limit: int) -> int:
        shop, s = _shop(rate=1), Summary()  # the leak does not depend on traffic
        _fix(shop, "checkout", ("resources", "memory_limit_mib"), limit)
        shop.reload()
        shop.inject("oom", intensity=4)
        _run(shop, 900, s)
        return min(
            m
            for (m, svc, name), v in s.metric_max.items()
            if svc == "checkout" and name == "k8s.container.restarts" and v > 0
        )

    assert first_kill(1024) > first_kill(512) + 2


def test_turning_the_flag_off_removes_the_bug() -> None:
    shop, s = _shop(), Summary()
    shop.inject("conversion")
    _run(shop, 300, s)
    _fix(shop, "payment", ("feature_flags", "new_fraud_rules"), False)
    _run(shop, 300, s)

    def gold_declines(a: int, b: int) -> float:
        d, ok = s.count("outcome.gold.declined", a, b), s.count("outcome.gold.approved", a, b)
        return d / max(1, d + ok)

    assert gold_declines(0, 5) > 0.7 and gold_declines(6, 10) < 0.15


def test_a_bigger_pool_removes_exhaustion_and_more_replicas_remove_saturation() -> None:
    shop, s = _shop(), Summary()
    # a smaller CPU limit needs a smaller surge to saturate: fewer spans, a faster test
    _fix(shop, "catalog", ("resources", "cpu_limit_millicores"), 200)
    _run(shop, 60, s)
    shop.inject("config_drift")
    inj = shop.inject("cpu_saturation")
    _run(shop, 120, s)
    _fix(shop, "inventory", ("connection_pool", "max"), 20)
    _fix(shop, "catalog", ("replicas",), inj.remediation["params"]["replicas"])
    _run(shop, 150, s)
    assert s.op("inventory", "POST /inventory/reserve", 1, 3)[1] > 10
    assert s.op("inventory", "POST /inventory/reserve", 4, 6)[1] == 0
    assert s.metric("catalog", "container.cpu.utilization", 2, 3) >= 0.99
    assert s.metric("catalog", "container.cpu.utilization", 4, 6) < 0.9  # max over pods and samples


def test_a_restart_clears_runtime_faults() -> None:
    shop, s = _shop(), Summary()
    shop.inject("cache_failure")
    shop.inject("dependency_timeout")
    _run(shop, 120, s)
    _fix(shop, "redis", ("rollout", "restarted_at"), "2026-01-05T00:02:00.000Z")
    _fix(shop, "shipping", ("rollout", "restarted_at"), "2026-01-05T00:02:00.000Z")
    _run(shop, 180, s)
    assert s.count("cache.hit", 0, 2) < 0.05 * s.count("cache.miss", 0, 2)
    assert s.count("cache.hit", 3, 5) > 5 * s.count("cache.miss", 3, 5)
    assert s.op("shipping", "oteldemo.ShippingService/GetQuote", 3, 5)[2] < 100
    assert shop.catalog.runtime == []


def _pod_names(shop: Shop, service: str) -> set[str]:
    return {p.name for p in shop.cluster.pods[service]}


def test_a_pod_template_change_rolls_the_pods_as_kubernetes_does() -> None:
    shop = _shop()
    shop.step(1)
    before = _pod_names(shop, "checkout")
    _fix(shop, "checkout", ("replicas",), len(before) + 1)
    _fix(shop, "payment", ("feature_flags", "new_fraud_rules"), True)
    shop.reload()
    scaled = _pod_names(shop, "checkout")
    assert before < scaled  # a scale-up keeps the running pods and adds one
    for path, value in [
        (("resources", "memory_limit_mib"), 768),
        (("resources", "cpu_limit_millicores"), 900),
        (("timeouts", "downstream_ms"), 900),
        (("connection_pool", "max"), 30),
        (("circuit_breaker",), True),
    ]:
        running = _pod_names(shop, "checkout")
        _fix(shop, "checkout", path, value)
        shop.reload()
        rolled = _pod_names(shop, "checkout")
        assert len(rolled) == len(running) and not rolled & running, path


def test_a_rollout_for_any_template_change_clears_runtime_faults() -> None:
    shop = _shop()
    shop.inject("cache_failure")
    assert shop.catalog.runtime
    _fix(shop, "redis", ("resources", "memory_limit_mib"), 768)
    shop.reload()
    assert shop.catalog.active(shop.desired) == [] and shop.catalog.runtime == []


def test_clear_undoes_the_injections_own_commits_only() -> None:
    shop = _shop()
    inj = shop.inject("crashloop")
    assert shop.desired["recommendation"].downstream_timeout_ms == 50
    shop.clear(inj.tag)
    assert shop.desired["recommendation"].downstream_timeout_ms == 500
    fixed = shop.inject("errors")
    _fix(shop, "cart", ("version",), "3.2.1")  # someone rolled back already
    shop.reload()
    head = shop.head
    shop.clear(fixed.tag)
    assert shop.head == head  # nothing to undo: no extra commit


def test_a_main_that_does_not_render_keeps_the_last_good_state(tmp_path: Path) -> None:
    repo = GitOpsRepo.create(tmp_path / "gitops")
    shop = Shop(seed=1, gitops_path=repo.path, config=ShopConfig(rate_rps=2))
    _fix(shop, "cart", ("replicas",), 3)
    shop.reload()
    cart = repo.path / "base/cart.yaml"
    cart.write_text(cart.read_text().replace("memory: 256Mi", "memory: plenty"))
    subprocess.run(["git", "-C", str(repo.path), "commit", "-qam", "broken"], check=True)
    assert shop.reload()
    assert shop.desired["cart"].replicas == 3  # the last good render still runs
    assert shop.manifest_errors and "plenty" in shop.manifest_errors[0]
    traces, _ = shop.step(5)
    assert traces
