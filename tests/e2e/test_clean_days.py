"""Days of clean traffic streamed through a named pipe into one replay (`suite --days N`), here a
short stretch of the quiet night: scored, nothing stored but the outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sre_space.harness.clean_days import run_clean_days

pytestmark = [pytest.mark.e2e]


def test_a_streamed_clean_stretch_is_scored_without_storing_it(tmp_path: Path) -> None:
    result = run_clean_days(0.02, 7, tmp_path)  # 28.8 minutes from Sunday 23:00 local
    assert result["recording"] == "healthy-0.02d-seed7"
    assert result["hours"] == pytest.approx(0.48)
    assert result["deploys"] == 1 and result["faults"] == []
    assert result["false_incidents"] == [], result
    folder = tmp_path / "healthy-0.02d-seed7"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["anomalies.jsonl", "deadletters.jsonl", "incidents.jsonl", "labels.json"]
    assert list(tmp_path.glob("*.pb")) == []  # the pipe lived in a temporary folder
