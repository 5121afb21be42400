"""When no data arrives at all, the heartbeat's watermark delay grows and Scout says so."""

from __future__ import annotations

from operators.scout.detect.events import ChangeEvent
from operators.scout.stage import ScoutStage
from operators.signals.pipeline import PipelineHealth
from sre_space.records import Anomaly, Incident
from sre_space.settings import load_pipeline_config
from sre_space.timeutil import rfc3339_to_ns

S = 1_000_000_000
W = 10 * S
T0 = 1_767_571_200 * S


def test_a_blind_pipeline_opens_an_incident() -> None:
    config = load_pipeline_config()
    stage = ScoutStage(config)
    health = PipelineHealth(W)
    out = []
    # Ten minutes of fresh data: the watermark keeps up with the wall clock.
    for k in range(60):
        health.on_decoded(T0 + k * W, "otlp_spans:0", k)
        for sig in health.heartbeat(T0 + k * W + S):
            out += stage.on_signal(sig)
    # Then the data stops: only the heartbeat still runs, and the delay grows.
    for k in range(60, 80):
        for sig in health.heartbeat(T0 + k * W + S):
            out += stage.on_signal(sig)
    out += stage.flush()
    anomalies = [r for r in out if isinstance(r, Anomaly)]
    assert any(a.metric == "watermark_delay_s" for a in anomalies), anomalies
    opened = [r for r in out if isinstance(r, Incident) and r.event == "opened"]
    assert opened and "watermark_delay_s" in opened[0].summary
    first_alarm = min(a.onset for a in anomalies if a.metric == "watermark_delay_s")
    assert first_alarm <= rfc3339_to_ns(
        "2026-01-05T00:12:00.000Z"
    )  # within two minutes of going blind
    assert not any(isinstance(r, ChangeEvent) for r in out)
