"""A poll's windows arrive key by key; the stage allows for that disorder instead of dropping pods.

A Collector batches every pod's points of one 10 s step into one export request, and Bytewax
emits a poll of 64 such requests one key at a time: the first pod's 64 windows, then the next
pod's. Judged on arrival, every later pod looked silent for ten minutes and was declared gone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from operators.scout.detect.instances import InstanceWatch
from operators.scout.stage import ScoutStage
from sre_space.records import Anomaly, SignalWindow
from sre_space.settings import load_pipeline_config
from tests.scout.helpers import metric

POLL = 64
PODS = [f"svc-{i}" for i in range(6)]


def _windows(n: int) -> list[list[SignalWindow]]:
    """Per window, one cpu point per pod; svc-3 doubles from window 200 on."""
    rng = np.random.default_rng(11)
    out = []
    for i in range(n):
        out.append(
            [
                metric(
                    i,
                    "container.cpu.usage",
                    (100.0 if pod == "svc-3" and i >= 200 else 50.0) + rng.normal(0, 2.0),
                    attributes={"k8s.pod.name": pod},
                )
                for pod in PODS
            ]
        )
    return out


def _key_by_key(windows: list[list[SignalWindow]]) -> list[SignalWindow]:
    """Each poll's signals grouped by pod, as Bytewax emits them."""
    out: list[SignalWindow] = []
    for lo in range(0, len(windows), POLL):
        block = [s for sigs in windows[lo : lo + POLL] for s in sigs]
        out += sorted(block, key=lambda s: PODS.index((s.attributes or {})["k8s.pod.name"]))
    return out


class _Watch(InstanceWatch):
    """Remembers every series declared gone."""

    def __init__(self) -> None:
        super().__init__(60.0)
        self.ended: list[str] = []

    def gone(self, now_ns: int) -> list[str]:
        keys = super().gone(now_ns)
        self.ended += keys
        return keys


def _run(signals: list[SignalWindow], wait: bool) -> tuple[list[Any], list[str]]:
    """What the stage emitted, and the series it declared gone."""
    stage = ScoutStage(load_pipeline_config(), wait_disorder=wait)
    watch = stage.scout.instances = _Watch()
    out: list[Any] = []
    for sig in signals:
        out += stage.on_signal(sig)
    return out + stage.flush(), watch.ended


def _time(record: Any) -> int:
    """When a stage output happened in event time."""
    return int(getattr(record, "onset", None) or getattr(record, "at", None) or record.opened_at)


def test_a_replay_judges_pods_emitted_key_by_key_as_if_in_step() -> None:
    windows = _windows(320)
    in_step, _ = _run([s for sigs in windows for s in sigs], wait=True)
    by_key, ended = _run(_key_by_key(windows), wait=True)
    assert ended == []
    fired = [r for r in by_key if isinstance(r, Anomaly)]
    assert fired and {r.detail.split("=")[1].split("}")[0] for r in fired} == {"svc-3"}

    # Past the first poll (which teaches the stage the disorder) the verdicts are the same.
    def later(out: list[Any]) -> list[Any]:
        return [r for r in out if _time(r) >= windows[POLL][0].window_end]

    assert later(by_key) == later(in_step)


def test_without_the_wait_the_later_pods_are_judged_late_but_not_gone() -> None:
    # A simulated-clock run over Kafka releases on the newest window (responders act on it).
    windows = _windows(320)
    by_key, ended = _run(_key_by_key(windows), wait=False)
    assert ended == []
    in_step, _ = _run([s for sigs in windows for s in sigs], wait=False)
    assert by_key != in_step  # the stragglers were judged with later windows


def test_a_poll_delivered_in_one_batch_is_judged_as_if_in_step_from_the_first_window() -> None:
    # The flow hands the stage what one activation delivered: a poll's windows judged after the
    # whole batch leave no straggler, with no disorder to learn first (a flow resumed on a
    # backlog read its next ten minutes of metrics in one poll and missed every detection).
    windows = _windows(320)
    in_step, _ = _run([s for sigs in windows for s in sigs], wait=False)
    stage = ScoutStage(load_pipeline_config())
    watch = stage.scout.instances = _Watch()
    by_key = _key_by_key(windows)
    batched: list[Any] = []
    for lo in range(0, len(by_key), POLL * len(PODS)):
        batched += stage.on_batch(by_key[lo : lo + POLL * len(PODS)])
    batched += stage.flush()
    assert watch.ended == []
    assert any(isinstance(r, Anomaly) for r in batched)
    assert batched == in_step
