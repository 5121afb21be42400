"""Change events: deploys from versions, restarts from cumulative counts, flags."""

from __future__ import annotations

from operators.detect.changes import ChangeTracker
from operators.detect.config import DetectionConfig
from operators.detect.events import ChangeEvent
from operators.detect.series import SeriesDetector
from tests.detect.helpers import items, metric, span


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
    assert tr.on_flags("cart", {"new_pricing_rules": False}, "2026-01-01T00:00:00.000Z") == []
    (ev,) = tr.on_flags("cart", {"new_pricing_rules": True}, "2026-01-01T00:00:10.000Z")
    assert (ev.change, ev.name, ev.before, ev.after) == (
        "flag",
        "new_pricing_rules",
        "false",
        "true",
    )
    assert ChangeTracker.from_snapshot(tr.snapshot()).snapshot() == tr.snapshot()
