"""A small run of the live bench, so that it keeps working (the full run stays out of CI)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import live


def test_a_live_run_counts_every_span_it_sent_in_the_flows_signals(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    out = tmp_path / "live.json"
    live.main(
        [
            "--kafka", kafka_bootstrap,
            "--rate", "4",
            "--seconds", "2",
            "--spans-per-request", "64",
            "--idle-s", "1",
            "--settle-s", "5",
            "--out", str(out),
        ]
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["spans"] == 8 * 64
    assert result["spans_in_signals"] == result["spans"]
    assert result["idle_core_pct"] > 0 and result["cpu_s_per_1m_spans"] > 0
    assert result["peak_rss_mib"] > 0
