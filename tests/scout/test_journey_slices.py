"""A journey sliced by a request attribute (`journeys.*.slice_by`): a fault that fails one slice
is found in the slice's rates, a healthy slice stays quiet, the SLO counts the whole journey
once, and the slices judged per journey are capped."""

from __future__ import annotations

import numpy as np

from operators.scout.detect.budget import matches
from operators.scout.detect.config import DetectionConfig, RatesConfig, SlosConfig, SloSpec
from operators.scout.incidents.config import IncidentsConfig
from operators.scout.judge import Scout
from sre_space.records import Anomaly
from tests.scout.helpers import funnel, items
from tests.scout.synth import JOURNEYS, window_bounds

SHARES = {"bronze": 0.5, "silver": 0.3, "gold": 0.15, "platinum": 0.05}


def _run(seed: int, n: int, onset: int, sick_pass: float) -> tuple[list[Anomaly], Scout]:
    """~25 journeys a window over four levels; from `onset` gold's payments pass `sick_pass`."""
    rng = np.random.default_rng(seed)
    scout = Scout(DetectionConfig(), SlosConfig(), IncidentsConfig(), JOURNEYS)
    found: list[Anomaly] = []
    for i in range(n):
        whole = np.zeros(3, dtype=int)
        sigs = []
        for level, share in SHARES.items():
            started = int(rng.poisson(25 * share))
            checkout = int(rng.binomial(started, 0.7))
            ok = sick_pass if level == "gold" and i >= onset else 0.97
            steps = [started, checkout, int(rng.binomial(checkout, ok))]
            whole += steps
            sigs.append(funnel(i, steps, level))
        sigs.append(funnel(i, [int(x) for x in whole]))
        found += items(scout.on_window(window_bounds(i)[1], sigs).detections, Anomaly)
    return found, scout


def test_a_fault_of_one_slice_is_found_in_the_slice_within_a_few_windows() -> None:
    for seed in range(5):
        found, _ = _run(seed, n=140, onset=120, sick_pass=0.1)
        assert found, seed
        first = found[0]
        assert first.cuj == "checkout" and "{level=gold}" in first.detail, (seed, first)
        assert first.onset <= window_bounds(123)[0], seed


def test_healthy_slices_stay_quiet() -> None:
    for seed in range(5):
        found, scout = _run(seed, n=480, onset=480, sick_pass=0.97)
        assert found == [], seed
        assert sorted(k for k in scout.series if k.startswith("cuj//")) == [
            "cuj//checkout",
            *(f"cuj//checkout{{level={lvl}}}" for lvl in sorted(SHARES)),
        ]


def test_the_slices_judged_per_journey_are_capped() -> None:
    detection = DetectionConfig(rates=RatesConfig(max_slices=2))
    scout = Scout(detection, SlosConfig(), IncidentsConfig(), JOURNEYS)
    for i in range(3):
        sigs = [funnel(i, [10, 7, 7], f"v{j}") for j in range(5)] + [funnel(i, [50, 35, 35])]
        scout.on_window(window_bounds(i)[1], sigs)
    assert sorted(scout.series) == [
        "cuj//checkout",
        "cuj//checkout{level=v0}",
        "cuj//checkout{level=v1}",
    ]


def test_a_conversion_objective_counts_the_whole_journey_not_its_slices() -> None:
    spec = SloSpec(type="conversion", cuj="checkout", objective=0.5)
    assert matches(spec, funnel(0, [10, 7, 7]))
    assert not matches(spec, funnel(0, [10, 7, 7], "gold"))
