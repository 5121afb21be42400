"""Change events: deploys from versions, restarts from cumulative counts, flags."""

from __future__ import annotations

import random

from operators.scout.detect.changes import ChangeTracker
from operators.scout.detect.config import DetectionConfig
from operators.scout.detect.events import ChangeEvent
from operators.scout.detect.series import SeriesDetector
from sre_space.records import Anomaly
from sre_space.timeutil import rfc3339_to_ns
from tests.scout.helpers import cuj, items, metric, span
from tests.scout.synth import at


def test_new_version_is_one_deploy_event_with_a_stable_id() -> None:
    det_a, det_b = SeriesDetector(DetectionConfig()), SeriesDetector(DetectionConfig())
    events = []
    for i in range(10):
        versions = {"1.0": 50} if i < 5 else {"1.0": 10, "1.1": 40}
        events += items(det_a.on_signal(span(i, 50, versions=versions)), ChangeEvent)
        sig = span(i + 1, 50, operation="POST /x", versions=versions)
        events += items(det_b.on_signal(sig), ChangeEvent)
    assert len(events) == 2  # one per series, same change
    assert events[0].id == events[1].id
    assert events[0].change == "deploy" and events[0].before == "1.0" and events[0].after == "1.1"


def test_restart_increase_is_a_change_and_replacement_is_not() -> None:
    det = SeriesDetector(DetectionConfig())
    ev = []
    for i, value in enumerate([0, 0, 1, 1, 3, 0, 0]):
        ev += items(det.on_signal(metric(i, "k8s.container.restarts", float(value))), ChangeEvent)
    assert [(e.change, e.count) for e in ev] == [("restart", 1), ("restart", 2)]


def test_flag_changes() -> None:
    tr = ChangeTracker()
    assert (
        tr.on_flags("cart", {"new_pricing_rules": False}, rfc3339_to_ns("2026-01-01T00:00:00.000Z"))
        == []
    )
    (ev,) = tr.on_flags(
        "cart", {"new_pricing_rules": True}, rfc3339_to_ns("2026-01-01T00:00:10.000Z")
    )
    assert (ev.change, ev.name, ev.before, ev.after) == (
        "flag",
        "new_pricing_rules",
        "false",
        "true",
    )
    assert ChangeTracker.from_snapshot(tr.snapshot()).snapshot() == tr.snapshot()


def _cuj_drop(change: bool, seed: int) -> int | None:
    """Windows after the drop starts until the conversion anomaly fires (None: never in 12)."""
    rng = random.Random(seed)
    det = SeriesDetector(DetectionConfig())
    for i in range(60):  # a settled baseline: 24 journeys a window, 97% complete
        det.on_signal(cuj(i, 24, sum(rng.random() < 0.97 for _ in range(24))))
    if change:
        det.on_change(ChangeEvent(id="f", change="flag", service="payment", at=at(60)))
    for k in range(12):
        out = det.on_signal(cuj(60 + k, 24, sum(rng.random() < 0.84 for _ in range(24))))
        if items(out, Anomaly):
            return k + 1
    return None


def test_a_drop_right_after_a_change_fires_on_the_pool_since_the_change() -> None:
    # The pool of every window since the flag flip is tested at alpha_change and fires at once;
    # without the change the same drop needs k of n windows. Same data either way.
    with_change = [_cuj_drop(True, s) for s in range(20)]
    without = [_cuj_drop(False, s) for s in range(20)]
    assert all(w is not None for w in with_change) and all(w is not None for w in without)
    assert sum(with_change) < sum(without)  # type: ignore[arg-type]
    assert sorted(with_change)[10] <= 3  # median within three windows of the flip


def test_no_alarm_after_a_change_that_changes_nothing() -> None:
    rng = random.Random(5)
    fired = 0
    for trial in range(40):
        det = SeriesDetector(DetectionConfig())
        for i in range(60):
            det.on_signal(cuj(i, 24, sum(rng.random() < 0.97 for _ in range(24))))
        det.on_change(ChangeEvent(id=f"d{trial}", change="deploy", service="cart", at=at(60)))
        for k in range(40):
            out = det.on_signal(cuj(60 + k, 24, sum(rng.random() < 0.97 for _ in range(24))))
            fired += bool(items(out, Anomaly))
    assert fired == 0


def _small_journey_drop(seed: int, late: int) -> int | None:
    """Windows after the change is seen until a small journey's drop fires (None: never in 12):
    2-3 journeys a window, nearly all failing from the window the change appeared in, which is
    seen `late` windows after that window was judged (its spans arrived late)."""
    rng = random.Random(seed)
    det = SeriesDetector(DetectionConfig())
    for i in range(80):
        n = rng.randint(2, 3)
        det.on_signal(cuj(i, n, sum(rng.random() < 0.97 for _ in range(n))))
    det.on_signal(cuj(80, 3, 0))  # the change's own window: its journeys already fail
    for k in range(late):
        det.on_signal(cuj(81 + k, 1, 1))
    det.on_change(ChangeEvent(id="f", change="flag", service="payment", at=at(81)))
    for k in range(12):
        out = det.on_signal(cuj(81 + late + k, 2, 0))
        if items(out, Anomaly):
            return k + 1
    return None


def test_the_windows_since_a_change_are_pooled_from_the_one_it_appeared_in() -> None:
    # 3 failed journeys in the change's window (and a good one in each window judged before the
    # change was seen) and 2 in the next reach `min_trials` (5): the pool fires on that window.
    assert [_small_journey_drop(s, late) for s in range(3) for late in (0, 2)] == [1] * 6
