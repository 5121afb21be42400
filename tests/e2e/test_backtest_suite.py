"""The scored chaos suite as a regression gate: every scenario x 3 seeds, plus 3 fault-free hours.

Targets (issue 4, Scout): every fault detected, one incident per fault, zero false incidents in
clean traffic, median time to detect at most 30 s of event time for errors, dependency_timeout
and conversion; oom by issue 15's leak bar (`bench.leak_detection`). And the Brain (issue 5): top-1 culprit in at least 95% of the
detected faults, within the top 3 in all, fault class right in at least 90%.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from bench import leak_detection
from chaos import SITE_CONFIG
from operators.scout.detect.config import load_detection
from operators.scout.detect.scoring import final_incidents, render_table
from operators.signals.aggregate import SignalSpec
from sinks.memory.memory import Memory
from sre_space.harness.diagnose_replay import diagnosis_table
from sre_space.harness.suite import run_suite
from sre_space.records import ANOMALY_SCHEMA, Anomaly, Diagnosis, Incident, SignalWindow, read_jsonl
from sre_space.settings import Settings, load_pipeline_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
FAST_SCENARIOS = ("oom", "errors", "dependency_timeout", "conversion")
# 30 healthy deploys and 30 leaks: "at most 1% paged" is then "none paged"; the bench runs 200.
LEAK_DEPLOYS = 30


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("suite")


@pytest.fixture(scope="module")
def report(suite_dir: Path) -> dict[str, Any]:
    result = run_suite(
        suite_dir, seeds=(1, 2, 3), minutes=20, onset_minutes=8, healthy_hours=3, jobs=2
    )
    print(render_table(result))
    print(diagnosis_table(result))
    return result


def test_every_fault_is_detected_once(report: dict[str, Any]) -> None:
    table = render_table(report)
    for name, s in report["scenarios"].items():
        assert s["detected"] == s["runs"], f"{name} missed\n{table}"
        assert s["incidents_per_fault"] == 1.0, f"{name}: one incident per fault\n{table}"
        # the faulty service is among the incident's services (a cache by its own counters)
        assert s["culprit_hits"] == s["runs"], f"{name}: culprit not in the incident\n{table}"


def test_no_false_incidents(report: dict[str, Any]) -> None:
    totals = report["totals"]
    false = [
        (r["recording"], r["false_incidents"]) for r in report["recordings"] if r["false_incidents"]
    ]
    assert totals["false_incidents"] == 0, false
    assert totals["clean_hours"] >= 3.0


# Reached today: errors and dependency_timeout at 20 s, conversion at 30 s (the flag flip is a
# change event and the journey's rates are pooled since it), oom at 50 s (new pods fitted one by
# one: seeds 50/60/50, was 50/70/50). The bound holds it.
REACHED_S = {"oom": 60.0, "errors": 30.0, "dependency_timeout": 30.0, "conversion": 30.0}


def test_time_to_detect_does_not_regress(report: dict[str, Any]) -> None:
    ttd = {name: report["scenarios"][name]["ttd_median_s"] for name in FAST_SCENARIOS}
    assert all(ttd[n] is not None and ttd[n] <= REACHED_S[n] for n in FAST_SCENARIOS), ttd


def test_oom_meets_the_leak_bar() -> None:
    """Issue 15's oom bar at 10 s memory samples: median page at most 60 s after the deploy,
    every leak paged before its first OOM kill, at most 1% of healthy deploys paged."""
    pipeline = load_pipeline_config(str(SITE_CONFIG))
    result = leak_detection.measure(
        LEAK_DEPLOYS,
        "checkout",
        10.0,
        load_detection(pipeline.extra),
        SignalSpec.from_config(pipeline),
    )
    assert result["ttd_median_s"] is not None and result["ttd_median_s"] <= 60.0, result
    assert result["leaks_paged_after_first_kill"] == 0, result
    assert result["healthy_paged_share"] <= 0.01, result


def test_the_brain_names_the_culprit(report: dict[str, Any]) -> None:
    d = report["diagnosis"]
    assert d["cases"] == report["totals"]["detected"]
    assert d["top1"] >= 0.95 and d["top3"] == 1.0 and d["fault_class"] >= 0.90, diagnosis_table(
        report
    )


def _run(folder: Path) -> tuple[Incident, list[Anomaly], Diagnosis, list[SignalWindow]]:
    incident = final_incidents(read_jsonl(str(folder / "incidents.jsonl"), Incident))[0]
    lines = (folder / "anomalies.jsonl").read_text().splitlines()
    anomalies = [
        Anomaly.from_dict(d) for d in map(json.loads, lines) if d["schema"] == ANOMALY_SCHEMA
    ]
    diagnosis = next(
        d
        for d in read_jsonl(str(folder / "diagnoses.jsonl"), Diagnosis)
        if d.incident_id == incident.id
    )
    signals = read_jsonl(str(folder / "signals.jsonl"), SignalWindow)
    return incident, anomalies, diagnosis, signals


def test_memory_recalls_its_own_kind_from_real_runs(
    report: dict[str, Any], suite_dir: Path, tmp_path: Path
) -> None:
    """Issue 7: post-mortems of one run of every scenario indexed (seed 1); a new incident of each
    scenario (seeds 2 and 3) finds its own kind first in at least 90% of cases."""
    memory = Memory.from_settings(Settings(state_dir=tmp_path / "state"))
    kind_of: dict[str, str] = {}
    for scenario in report["scenarios"]:
        incident, anomalies, diagnosis, signals = _run(suite_dir / f"{scenario}-seed1")
        memory.learn(incident, anomalies, diagnosis, None, [], signals)
        kind_of[incident.id] = scenario
    hits, asked = 0, 0
    for scenario in report["scenarios"]:
        for seed in (2, 3):
            _, _, diagnosis, _ = _run(suite_dir / f"{scenario}-seed{seed}")
            # Every recording starts at the same event time, so a scenario's incidents get the
            # same deterministic id in every seed; a new incident has its own id.
            diagnosis = dataclasses.replace(
                diagnosis, incident_id=f"{diagnosis.incident_id}/{seed}"
            )
            found = memory.similar_incidents(diagnosis, n=3)
            asked += 1
            hits += bool(found) and kind_of.get(found[0].incident_id) == scenario
    print(f"memory: own kind first in {hits}/{asked}")
    assert hits / asked >= 0.9, f"own kind first in {hits}/{asked}"
