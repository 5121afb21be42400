"""The product's defaults alone, on telemetry they know nothing about: a recording of the shop
replayed without its site file still gets SLO burn alerts, RED anomalies and metric anomalies."""

from __future__ import annotations

from pathlib import Path

from chaos.recorder import record
from flows.replay import replay
from sre_space.records import Anomaly, Incident, read_jsonl
from sre_space.settings import load_pipeline_config


def test_a_cpu_saturation_is_seen_with_no_site_file(tmp_path: Path) -> None:
    rec = tmp_path / "cpu.pb"
    record("cpu_saturation", 1, 16 * 60, rec, onset_s=8 * 60, bundle=False)
    config = load_pipeline_config()  # no journeys, no site objectives, no metric list
    assert config.journeys == {}
    files = replay([rec], tmp_path / "out", config)
    # the file holds anomalies, their clearings and change events: keep the anomalies
    lines = files["anomalies"].read_text(encoding="utf-8").splitlines()
    anomalies = [Anomaly.from_json(line) for line in lines if '"onset"' in line]
    kinds = {(a.detector, a.kind) for a in anomalies}
    assert ("slo_burn", "span") in kinds  # the default availability and latency objectives
    assert {("significance", "span"), ("baseline", "span")} & kinds  # RED
    # a metric no config lists (CFS throttling) is judged as a series of its own
    throttled = [a for a in anomalies if a.kind == "metric" and a.detector == "forecast"]
    assert any(a.metric == "container.cpu.throttling" for a in throttled)
    assert read_jsonl(str(files["incidents"]), Incident)
