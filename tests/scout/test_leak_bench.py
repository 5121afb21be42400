"""The leak bench end to end on a few seeds: shop pods -> OTLP -> signals with per-pod utilization
-> the series detector; leaks after a deploy page within a minute, healthy deploys do not."""

from __future__ import annotations

from bench.leak_detection import measure
from operators.scout.detect.config import DetectionConfig
from operators.signals.aggregate import SignalSpec
from sre_space.settings import load_pipeline_config


def test_leaks_page_within_a_minute_and_healthy_deploys_do_not() -> None:
    spec = SignalSpec.from_config(load_pipeline_config())
    result = measure(4, "checkout", 10.0, DetectionConfig(), spec)
    assert result["healthy_paged"] == 0 and result["leaks_missed"] == 0, result
    assert result["ttd_p90_s"] <= 60.0, result
