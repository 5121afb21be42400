"""`sre-space diagnose` on thin inputs, through the product's command line: no spans in the
baseline, only metrics, only one trace. Each gives a diagnosis or a stated abstention with its
reason (exit 0, JSON on stdout), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sre_space.cli import main
from tests.brain.otlp_writer import metrics_request, spans_request
from tests.brain.synth import BASELINE, INCIDENT, Shop, generate


def _seconds(window: tuple[int, int]) -> list[str]:
    return [f"{window[0] / 1e9:.3f}", f"{window[1] / 1e9:.3f}"]


def _diagnose(
    path: Path, capsys: pytest.CaptureFixture[str], baseline: bool = True
) -> dict[str, Any]:
    argv = ["diagnose", str(path), "--window", *_seconds(INCIDENT), "--json"]
    if baseline:
        argv += ["--baseline", *_seconds(BASELINE)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Traceback" not in out
    return json.loads(out)


@pytest.fixture(scope="module")
def shop() -> Shop:
    return generate("oom", 3, traces_per_window=120)


def test_no_spans_in_the_baseline_names_the_baseline_it_used(
    shop: Shop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    incident_only = shop.spans.filter(pl.col("start_ns") >= INCIDENT[0])
    path = tmp_path / "incident-only.json"
    path.write_text(json.dumps(spans_request(incident_only)))
    out = _diagnose(path, capsys)
    assert out["candidates"], out["summary"]
    # The baseline window holds nothing: the diagnosis says what it compared against instead.
    assert "Baseline: the first quarter of the incident window" in out["summary"]
    assert "payment" in [c["service"] for c in out["candidates"][:3]]


def test_only_metrics_abstains_saying_why_and_keeps_the_metric_evidence(
    shop: Shop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "metrics-only.json"
    path.write_text(json.dumps(metrics_request(shop.metrics)))
    out = _diagnose(path, capsys)
    assert out["abstained"] is True
    assert "0 traces in the incident window" in out["summary"]
    # The metrics still point somewhere: the best guess is the pod that ran out of memory.
    assert out["candidates"] and out["candidates"][0]["service"] == "payment"


@pytest.mark.parametrize("baseline", [True, False])
def test_only_one_trace_abstains_saying_why(
    shop: Shop, tmp_path: Path, capsys: pytest.CaptureFixture[str], baseline: bool
) -> None:
    first = shop.spans.filter(pl.col("start_ns") >= INCIDENT[0]).get_column("trace_id")[0]
    path = tmp_path / "one-trace.json"
    path.write_text(json.dumps(spans_request(shop.spans.filter(pl.col("trace_id") == first))))
    out = _diagnose(path, capsys, baseline=baseline)
    assert out["abstained"] is True
    assert "Not sure" in out["summary"] and "1 traces in the incident window" in out["summary"]


def test_an_empty_file_is_an_abstention_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.json"
    path.write_text("")
    out = _diagnose(path, capsys, baseline=False)
    assert out["abstained"] is True and out["candidates"] == []
    assert "0 traces in the incident window" in out["summary"]


def test_a_missing_file_is_a_one_line_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert main(["diagnose", str(missing), "--window", "0", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"diagnose: no such recording: {missing}"
    ]
