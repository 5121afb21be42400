"""Small parts of the model: traffic shape, circuit breaker, cross-process bytes."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

from chaos.rand import Rand
from chaos.recorder import _noise_deploys, record
from chaos.scenarios import _set
from chaos.shop import DEFAULT_EPOCH_NS, Shop, ShopConfig
from chaos.summary import Summary
from chaos.traffic import Traffic
from sre_space.timeutil import NS_PER_S, rfc3339_to_ns

REPO = Path(__file__).resolve().parents[2]


def test_weekly_shape_has_a_quiet_night_and_quieter_weekends() -> None:
    traffic = Traffic(Rand(1), 20.0, utc_offset_h=0.0)
    week = [rfc3339_to_ns("2026-01-05T00:00:00Z") + m * 60 * NS_PER_S for m in range(7 * 1440)]
    rates = [traffic.expected(t) for t in week]
    assert abs(sum(rates) / len(rates) - 20.0) < 0.01  # the mean over a week is the configured rate
    monday = rates[:1440]
    assert 3 * 60 <= monday.index(min(monday)) <= 5 * 60  # the quiet night's bottom near 4 am
    assert min(monday) < 0.25 * 20.0 < 1.5 * 20.0 < max(monday)
    assert 18 * 60 <= monday.index(max(monday)) <= 21 * 60  # the evening peak
    saturday = rates[5 * 1440 : 6 * 1440]
    assert sum(saturday) < 0.9 * sum(monday)  # weekends are quieter
    # smooth across hours and midnights: no step between minutes
    assert max(abs(b - a) for a, b in itertools.pairwise(rates)) < 0.01 * max(rates)
    # the customers' time zone shifts the shape, it does not change it
    shifted = Traffic(Rand(1), 20.0, utc_offset_h=-1.0)
    assert shifted.expected(week[60]) == traffic.expected(week[0])
    noon = rfc3339_to_ns("2026-01-05T12:00:00Z")
    noisy = [traffic.rate(noon, 1.0) / traffic.expected(noon) for _ in range(600)]
    assert min(noisy) > 0.75 and max(noisy) < 1.25  # a few percent of slow noise
    assert max(abs(b / a - 1) for a, b in itertools.pairwise(noisy)) < 0.03  # no jumps


def test_a_long_clean_recording_gets_a_deploy_every_eight_hours() -> None:
    deploys = _noise_deploys(7, None, None, 7 * 86400.0)
    assert len(deploys) == 21
    slots = [int(at // (8 * 3600)) for at, _ in deploys]
    assert slots == list(range(21))  # one in each 8-hour slot
    assert len(_noise_deploys(7, None, None, 3600.0)) == 1
    assert len(_noise_deploys(7, "cart", 1200.0, 3600.0)) == 1  # a fault's: one, before it


def test_the_shared_database_has_headroom_at_the_evening_peak() -> None:
    # A real shop is provisioned for its peak: at 1.7x the mean the database serving every
    # service stays well below its CPU limit, so its queries keep their healthy latency.
    shop = Shop(seed=1, config=ShopConfig(epoch_ns=DEFAULT_EPOCH_NS + 20 * 3600 * NS_PER_S))
    assert shop.traffic.expected(shop.now_ns) > 1.6 * shop.config.rate_rps
    busy = []
    for _ in range(60):
        shop.advance(10)
        busy += [pod.rho for pod in shop.cluster.pods["postgres"]]
    assert sum(busy) / len(busy) < 0.5 and max(busy) < 0.7, (sum(busy) / len(busy), max(busy))


def test_circuit_breaker_fails_fast_instead_of_waiting() -> None:
    def shipping_calls(breaker: bool) -> tuple[int, float]:
        shop = Shop(seed=2, config=ShopConfig(rate_rps=6))
        if breaker:
            shop.repo.commit(
                "checkout", lambda d: _set(d, ("circuit_breaker",), True), "breaker on"
            )
            shop.reload()
        shop.inject("dependency_timeout")
        s = Summary()
        for batch in shop.iter_batches(120):
            s.add(batch.json_doc(), shop.config.epoch_ns)
        n, _e, ms = s.op("checkout", "oteldemo.ShippingService/GetQuote", 1, 2)
        return n, ms

    plain, broken = shipping_calls(False), shipping_calls(True)
    assert plain[1] > 700  # every call waits for its deadline
    assert broken[1] < 100  # the open breaker answers at once (a probe now and then)


def test_same_bytes_across_processes(tmp_path: Path) -> None:
    # hash randomization differs between processes; the output must not depend on it
    here = tmp_path / "here.jsonl"
    record("crashloop", 5, 90, here, onset_s=30, rate_rps=3, bundle=False)
    there = tmp_path / "there.jsonl"
    code = f"from chaos.recorder import _noise_deploys, record; record('crashloop', 5, 90, {str(there)!r}, onset_s=30, rate_rps=3, bundle=False)"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (here, there)]
    assert digest[0] == digest[1]
