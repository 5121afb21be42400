"""Fixtures for the chaos tests: short recordings built once per session and summarised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chaos.recorder import record
from chaos.shop import DEFAULT_EPOCH_NS
from chaos.summary import Summary, summarize
from tests.chaos.params import DURATION_S, ONSET_S, RATE, Recorder


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    """record(name, seed=1, intensity=1.0, ...) -> (file, labels, summary), cached per session."""
    cache: dict[tuple[Any, ...], tuple[Path, dict[str, Any], Summary]] = {}
    folder = tmp_path_factory.mktemp("recordings")

    def get(
        name: str, seed: int = 1, intensity: float = 1.0, **kw: Any
    ) -> tuple[Path, dict[str, Any], Summary]:
        key = (name, seed, intensity, tuple(sorted(kw.items())))
        if key not in cache:
            out = folder / f"{name}-{seed}-{intensity}-{len(cache)}.jsonl"
            labels = record(
                name,
                seed,
                kw.pop("duration_s", DURATION_S),
                out,
                onset_s=kw.pop("onset_s", ONSET_S),
                intensity=intensity,
                rate_rps=kw.pop("rate_rps", RATE),
                bundle=kw.pop("bundle", False),
                **kw,
            )
            cache[key] = (out, labels, summarize(out, DEFAULT_EPOCH_NS))
        return cache[key]

    return get
