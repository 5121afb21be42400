"""A small run of the archive bench, so that it keeps working."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import archive, throughput


def test_the_archive_bench_writes_every_span_and_splits_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throughput, "OUT", tmp_path)
    monkeypatch.setattr(archive, "OUT", tmp_path)
    assert archive.main(["--spans", "3000", "--spans-per-request", "512", "--poll", "4"]) == 0
    result = json.loads((tmp_path / "archive-lean-512.json").read_text())
    assert result["spans"] == 3000
    assert result["caller_cpu_s_per_m"] > 0 and result["writer_cpu_s_per_m"] >= 0
    assert 10 < result["bytes_per_span"] < 200


def test_the_archive_bench_can_start_from_a_full_archive_with_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throughput, "OUT", tmp_path)
    monkeypatch.setattr(archive, "OUT", tmp_path)
    args = ["--spans", "3000", "--spans-per-request", "512", "--full-archive", "100"]
    assert archive.main(args) == 0
    result = json.loads((tmp_path / "archive-lean-512-full100.json").read_text())
    assert result["spans"] == 3000 and result["full_archive"] == 100
