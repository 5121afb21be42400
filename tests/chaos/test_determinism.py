"""Same seed and same manifests give the same bytes; another seed gives other bytes."""

from __future__ import annotations

import json
from pathlib import Path

from chaos.recorder import labels_path, record
from chaos.shop import Shop, ShopConfig


def _record(tmp: Path, name: str, seed: int, sub: str) -> Path:
    out = tmp / sub / f"{name}.jsonl.gz"
    record(name, seed, 150, out, onset_s=60, rate_rps=8, intensity=2.0)
    return out


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = _record(tmp_path, "oom", 11, "a")
    b = _record(tmp_path, "oom", 11, "b")
    assert a.read_bytes() == b.read_bytes()
    la, lb = json.loads(labels_path(a).read_text()), json.loads(labels_path(b).read_text())
    assert la == lb  # commit ids included: commit dates are event time
    assert la["culprit"]["commit"] and len(la["changes"]) == 2


def test_other_seed_other_bytes(tmp_path: Path) -> None:
    a = _record(tmp_path, "healthy", 1, "a")
    b = _record(tmp_path, "healthy", 2, "b")
    assert a.read_bytes() != b.read_bytes()


def test_in_process_protos_are_deterministic() -> None:
    def run() -> list[bytes]:
        shop = Shop(seed=4, config=ShopConfig(rate_rps=10))
        traces, metrics = shop.step(30)
        shop.inject("cache_failure")
        t2, m2 = shop.step(30)
        return [m.SerializeToString() for m in [*traces, *metrics, *t2, *m2]]

    assert run() == run()
