"""Local tracker: one issue per incident, one comment per step, lifecycle labels, Markdown."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.fixer.tracker import LocalTracker, lifecycle_labels
from sinks.store.sqlite import Store
from sre_space.timeutil import rfc3339_to_ns

from .helpers import INCIDENT, diagnosis

T3, T4, T5 = (rfc3339_to_ns(f"2026-11-28T10:0{m}:00.000Z") for m in (3, 4, 5))


def test_lifecycle_is_idempotent_and_rendered(tmp_path: Path, store: Store) -> None:
    tracker = LocalTracker(store, out_dir=tmp_path / "issues", secrets=["s3cr3t-value"])
    ref = tracker.open_issue(INCIDENT, "conversion 0.62 -> 0.37 (token s3cr3t-value)")
    assert tracker.open_issue(INCIDENT, "again") == ref
    assert ref.number == 1
    assert tracker.comment_diagnosis(diagnosis(), at=rfc3339_to_ns("2026-11-28T10:01:00.000Z"))
    assert not tracker.comment_diagnosis(diagnosis(), at=rfc3339_to_ns("2026-11-28T10:02:00.000Z"))
    assert tracker.set_state("inc-7", "diagnosed") == lifecycle_labels("diagnosed", "critical")
    assert tracker.comment_verification("inc-7", healthy=True, detail="3/3 windows", at=T3)
    assert tracker.close_with_postmortem("inc-7", "# Post-mortem\n\nall good", at=T4)
    assert not tracker.close_with_postmortem("inc-7", "# Post-mortem\n\nall good", at=T5)
    doc = tracker.issue_doc("inc-7")
    assert doc is not None
    assert doc["state"] == "closed"
    assert doc["labels"] == ["sre-space", "incident", "state:resolved", "severity:critical"]
    assert len(doc["comments"]) == 3
    md = tracker.markdown("inc-7")
    assert md.startswith("# #1 [critical] checkout conversion down 40%")
    assert "<!-- sre-space:incident=inc-7 step=open -->" in md
    assert "s3cr3t-value" not in md and "[REDACTED]" in md
    # untrusted evidence cannot forge a marker or ping anyone
    assert md.count("step=postmortem -->") == 1
    assert "@admins" not in md
    files = list((tmp_path / "issues").glob("*.md"))
    assert [f.name for f in files] == ["00001-inc-7.md"] and files[0].read_text() == md


def test_a_crash_between_comment_and_record_does_not_duplicate(store: Store) -> None:
    tracker = LocalTracker(store)
    tracker.open_issue(INCIDENT, "s")
    rec = tracker.record("inc-7")
    assert rec is not None
    tracker.comment("inc-7", "diagnosis", "first")
    store.upsert("tracker", "local:inc-7", rec)  # the bookkeeping lost the step
    assert not LocalTracker(store).comment("inc-7", "diagnosis", "first")
    doc = tracker.issue_doc("inc-7")
    assert doc is not None and len(doc["comments"]) == 1


def test_escalate_labels_and_comments(store: Store) -> None:
    tracker = LocalTracker(store)
    tracker.open_issue(INCIDENT, "s")
    assert tracker.escalate("inc-7", "the fix did not help", at=T3)
    doc = tracker.issue_doc("inc-7")
    assert doc is not None
    assert "state:escalated" in doc["labels"] and "needs-human" in doc["labels"]
    assert doc["state"] == "open"


def test_comment_before_open_is_an_error(store: Store) -> None:
    with pytest.raises(KeyError, match="open_issue first"):
        LocalTracker(store).comment("nope", "x", "y")
