"""A rolled pod's metric series end: their anomalies clear and their state is dropped."""

from __future__ import annotations

import numpy as np

from operators.scout.detect.config import DetectionConfig, SlosConfig
from operators.scout.detect.events import AnomalyCleared
from operators.scout.detect.instances import InstanceWatch
from operators.scout.incidents.config import IncidentsConfig
from operators.scout.judge import Scout
from sre_space.records import Anomaly, SignalWindow
from sre_space.timeutil import NS_PER_S
from tests.scout.helpers import items, metric
from tests.scout.synth import window_bounds


def _pod(i: int, pod: str, value: float) -> SignalWindow:
    return metric(i, "queue.depth", value, attributes={"k8s.pod.name": pod})


def _scout() -> Scout:
    return Scout(DetectionConfig(), SlosConfig(), IncidentsConfig())


def _run(scout: Scout, windows: range, pods: dict[str, float], rng: np.random.Generator) -> list:
    out = []
    for i in windows:
        sigs = [_pod(i, p, level + rng.normal(0, 2.0)) for p, level in pods.items()]
        out += scout.on_window(window_bounds(i)[1], sigs).detections
    return out


def test_an_anomaly_of_a_replaced_pod_clears_once_the_pod_is_gone() -> None:
    rng = np.random.default_rng(3)
    scout = _scout()
    _run(scout, range(200), {"svc-a": 100.0, "svc-b": 100.0}, rng)
    fired = items(_run(scout, range(200, 206), {"svc-a": 300.0, "svc-b": 100.0}, rng), Anomaly)
    assert [a.metric for a in fired] == ["queue.depth"]
    # the rollout: svc-a is replaced by svc-c, svc-b keeps reporting
    after = _run(scout, range(206, 220), {"svc-b": 100.0, "svc-c": 100.0}, rng)
    cleared = items(after, AnomalyCleared)
    assert [c.id for c in cleared] == [fired[0].id]
    gone_at = next(d.at for d in after if isinstance(d.item, AnomalyCleared))
    assert gone_at - window_bounds(205)[1] > 60 * NS_PER_S  # not before `instance_gone`
    assert not any("svc-a" in key for key in scout.series)
    assert any("svc-b" in key for key in scout.series)


def test_a_pod_that_only_paused_keeps_its_anomaly() -> None:
    rng = np.random.default_rng(4)
    scout = _scout()
    _run(scout, range(200), {"svc-a": 100.0}, rng)
    fired = items(_run(scout, range(200, 206), {"svc-a": 300.0}, rng), Anomaly)
    assert fired
    # 50 s without a point (less than `instance_gone`), then still abnormal
    quiet = [scout.on_window(window_bounds(i)[1], []).detections for i in range(206, 211)]
    back = _run(scout, range(211, 215), {"svc-a": 300.0}, rng)
    assert not items([d for ds in quiet for d in ds] + back, AnomalyCleared)


def test_an_instance_is_gone_after_three_of_its_own_report_intervals() -> None:
    watch = InstanceWatch(gone_after_s=60.0)
    minute = 60 * NS_PER_S
    for k in range(5):  # reports once a minute
        watch.report(("svc", "pod-a"), "metric/svc/x{k8s.pod.name=pod-a}", k * minute)
    last = 4 * minute
    assert watch.gone(last + 2 * minute) == []
    restored = InstanceWatch.from_snapshot(60.0, watch.snapshot())
    assert restored.gone(last + 3 * minute + 1) == ["metric/svc/x{k8s.pod.name=pod-a}"]
    assert restored.gone(last + 10 * minute) == []  # told once


def test_the_scout_snapshot_keeps_what_the_instances_hold() -> None:
    rng = np.random.default_rng(5)
    scout = _scout()
    _run(scout, range(200), {"svc-a": 100.0}, rng)
    fired = items(_run(scout, range(200, 206), {"svc-a": 300.0}, rng), Anomaly)
    restored = Scout.from_snapshot(
        DetectionConfig(), SlosConfig(), IncidentsConfig(), scout.snapshot()
    )
    after = _run(restored, range(206, 216), {"svc-c": 100.0}, rng)
    assert [c.id for c in items(after, AnomalyCleared)] == [a.id for a in fired]
