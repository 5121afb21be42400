"""Backtest scoring: detection, time to detect, false incidents per clean hour, precision, recall."""

from __future__ import annotations

import pytest

from operators.scout.detect.scoring import (
    final_incidents,
    render_table,
    score_recording,
    score_suite,
)
from sre_space.records import Incident
from sre_space.timeutil import rfc3339_to_ns


def _inc(id: str, opened: str, services: list[str], event: str = "opened") -> Incident:
    return Incident(
        id=id,
        fingerprint="f",
        state="open",
        opened_at=rfc3339_to_ns(opened),
        updated_at=rfc3339_to_ns(opened),
        services=services,
        severity="minor",
        event=event,
    )


LABEL = {
    "scenario": "oom",
    "seed": 1,
    "culprit": {"service": "payment"},
    "fault_class": "resource",
    "onset": "2026-01-01T00:10:00Z",
    "end": "2026-01-01T00:20:00Z",
    "remediation": "raise_memory_limit",
}


def test_final_incidents_keeps_the_first_opened_at() -> None:
    evs = [
        _inc("a", "2026-01-01T00:10:20Z", ["payment"]),
        _inc("a", "2026-01-01T00:11:00Z", ["payment", "checkout"], "updated"),
    ]
    (final,) = final_incidents(evs)
    assert final.opened_at == rfc3339_to_ns("2026-01-01T00:10:20.000Z") and final.event == "updated"


def test_score_one_recording() -> None:
    incidents = [
        _inc("early-false", "2026-01-01T00:02:00Z", ["cart"]),
        _inc("hit", "2026-01-01T00:10:25Z", ["checkout", "payment"]),
        _inc("echo", "2026-01-01T00:22:00Z", ["payment"]),  # within the post slack: not false
    ]
    rec = score_recording(
        incidents,
        LABEL,
        start=rfc3339_to_ns("2026-01-01T00:00:00Z"),
        end=rfc3339_to_ns("2026-01-01T01:00:00Z"),
        name="oom-1",
    )
    (fault,) = rec["faults"]
    assert fault["detected"] and fault["ttd_s"] == pytest.approx(25.0)
    assert fault["incidents"] == ["hit", "echo"] and fault["culprit_in_services"]
    assert rec["false_incidents"] == ["early-false"]
    # clean time: 60 min minus [09:30, 25:00] = 44.5 min
    assert rec["clean_hours"] == pytest.approx(44.5 / 60)


def test_suite_totals_and_table() -> None:
    hit = score_recording(
        [_inc("hit", "2026-01-01T00:10:20Z", ["payment"])],
        LABEL,
        start=rfc3339_to_ns("2026-01-01T00:00:00Z"),
        end=rfc3339_to_ns("2026-01-01T00:30:00Z"),
    )
    miss = score_recording(
        [],
        {**LABEL, "seed": 2},
        start=rfc3339_to_ns("2026-01-01T00:00:00Z"),
        end=rfc3339_to_ns("2026-01-01T00:30:00Z"),
    )
    clean = score_recording(
        [_inc("noise", "2026-01-01T00:05:00Z", ["cart"])],
        None,
        start=rfc3339_to_ns("2026-01-01T00:00:00Z"),
        end=rfc3339_to_ns("2026-01-01T02:00:00Z"),
    )
    report = score_suite([hit, miss, clean])
    assert report["scenarios"]["oom"]["detected"] == 1
    assert report["scenarios"]["oom"]["recall"] == 0.5
    assert report["scenarios"]["oom"]["ttd_median_s"] == pytest.approx(20.0)
    totals = report["totals"]
    assert totals["false_incidents"] == 1 and totals["precision"] == 0.5
    assert totals["clean_hours"] == pytest.approx(2 + 2 * (30 - 15.5) / 60)
    table = render_table(report)
    assert "oom" in table and "1/2" in table and "precision 0.50" in table
