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
    # At intensity 1 (demand 120% of the CPU) the saturated service fails 7.7-10% of its requests
    # (seeds 1-4), at the default page rule's 14.4x burn of a 99.5% objective (7.2%): whether eight
    # minutes of it, after eight clean ones, page within the hour's window is the draws' call. At
    # intensity 2 (140%) it fails 14.5-16.6% and pages one to two minutes after the onset.
    record("cpu_saturation", 1, 16 * 60, rec, onset_s=8 * 60, intensity=2.0, bundle=False)
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
