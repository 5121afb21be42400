"""Snapshot and restore mid-stream: identical output to an uninterrupted run."""

from __future__ import annotations

import json
import pickle
from typing import Any

from operators.scout.detect.config import DetectionConfig, load_slos
from operators.scout.incidents.config import IncidentsConfig
from operators.scout.judge import Scout
from tests.scout.synth import JOURNEYS, Fault, Shop

SLOS = load_slos(
    {
        "slos": {
            "time_scale": 60,
            "min_events": 50,
            "objectives": {
                "availability": {"type": "availability", "objective": 0.999},
                "latency": {"type": "latency", "objective": 0.95, "threshold_ms": 300},
                "conv": {"type": "conversion", "cuj": "checkout", "objective": 0.8},
            },
        }
    }
)
FAULTS = [
    Fault("errors", "payment", 120, 150, 0.3),
    Fault("leak", "inventory", 100, None, 0.002),
    Fault("deploy", "cart", 140, version="2.0.0"),
]


def _scout() -> Scout:
    return Scout(DetectionConfig(), SLOS, IncidentsConfig(), JOURNEYS)


def _run(restarts_at: set[int], codec: str) -> list[Any]:
    scout = _scout()
    out: list[Any] = []
    for i, (end, sigs, edges) in enumerate(Shop(seed=3, faults=FAULTS).windows(220)):
        if i in restarts_at:
            data = scout.snapshot()
            if codec == "pickle":
                data = pickle.loads(pickle.dumps(data))
            else:
                data = json.loads(json.dumps(data))
            scout = Scout.from_snapshot(DetectionConfig(), SLOS, IncidentsConfig(), data, JOURNEYS)
        res = scout.on_window(end, sigs, edges)
        out += [d.item for d in res.detections] + res.incidents
    return out


def test_restore_mid_stream_gives_identical_output() -> None:
    straight = _run(set(), "pickle")
    kinds = {type(x).__name__ for x in straight}
    assert {"Anomaly", "AnomalyCleared", "ChangeEvent", "Incident"} <= kinds
    assert _run({60, 125, 170}, "pickle") == straight
    assert _run({135}, "json") == straight


def test_detector_objects_pickle_as_bytewax_state() -> None:
    scout = _scout()
    for end, sigs, edges in Shop(seed=1).windows(30):
        scout.on_window(end, sigs, edges)
    clone = pickle.loads(pickle.dumps(scout))
    assert clone.snapshot() == scout.snapshot()
