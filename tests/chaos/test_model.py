"""Small parts of the model: traffic shape, circuit breaker, cross-process bytes."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

from chaos.rand import Rand
from chaos.recorder import record
from chaos.scenarios import _set
from chaos.shop import Shop, ShopConfig
from chaos.summary import Summary
from chaos.traffic import Traffic
from sre_space.timeutil import rfc3339_to_ns

REPO = Path(__file__).resolve().parents[2]


def test_daily_shape_peaks_in_the_afternoon() -> None:
    traffic = Traffic(Rand(1), 20.0)
    at = {h: traffic.expected(rfc3339_to_ns(f"2026-01-05T{h:02d}:00:00Z")) for h in range(24)}
    assert max(at, key=lambda h: at[h]) == 15 and min(at, key=lambda h: at[h]) == 3
    assert abs(sum(at.values()) / 24 - 20.0) < 0.01  # the mean is the configured rate
    noon = rfc3339_to_ns("2026-01-05T12:00:00Z")
    noisy = [traffic.rate(noon, 1.0) / traffic.expected(noon) for _ in range(600)]
    assert min(noisy) > 0.75 and max(noisy) < 1.25  # a few percent of slow noise
    assert max(abs(b / a - 1) for a, b in itertools.pairwise(noisy)) < 0.03  # no jumps


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
    code = f"from chaos.recorder import record; record('crashloop', 5, 90, {str(there)!r}, onset_s=30, rate_rps=3, bundle=False)"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (here, there)]
    assert digest[0] == digest[1]
