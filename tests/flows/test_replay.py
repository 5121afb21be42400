"""Replay: recordings through the real Bytewax flow; exact counts, quantiles within 1% of numpy."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest

from bench.workload import generate, iter_json_lines
from flows.replay import replay
from sre_space.cli import main as cli_main
from sre_space.records import SignalWindow, read_jsonl
from sre_space.settings import load_pipeline_config
from tests.flows.truth import assert_matches_truth

CONFIG = load_pipeline_config()
WINDOW_NS = CONFIG.signals.window_seconds * 10**9


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "proto"])
def test_replay_of_every_file_format(tmp_path: Path, fmt: str) -> None:
    requests, truth = generate(6_000, seed=11, spans_per_request=300)
    path = tmp_path / f"rec.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(line + "\n" for line in iter_json_lines(requests)))
    elif fmt == "jsonl.gz":
        with gzip.open(path, "wt") as fh:
            fh.writelines(line + "\n" for line in iter_json_lines(requests))
    else:  # the Collector file exporter's `format: proto`: 4-byte big-endian length prefixes
        path.write_bytes(b"".join(struct.pack(">I", len(r)) + r for r in requests))
    files = replay([path], tmp_path / "out", CONFIG)
    signals = read_jsonl(str(files["signals"]), SignalWindow)
    assert_matches_truth(signals, truth, WINDOW_NS)
    assert files["deadletters"].read_text() == ""


def test_replay_is_deterministic_and_two_workers_agree(tmp_path: Path) -> None:
    requests, _ = generate(4_000, seed=3, spans_per_request=200)
    path = tmp_path / "rec.jsonl"
    path.write_text("".join(line + "\n" for line in iter_json_lines(requests)))
    a = replay([path], tmp_path / "a", CONFIG)["signals"].read_bytes()
    b = replay([path], tmp_path / "b", CONFIG)["signals"].read_bytes()
    c = replay([path], tmp_path / "c", CONFIG, workers=2)["signals"].read_bytes()
    assert a == b == c
    assert a


def test_malformed_lines_go_to_dead_letters_and_good_signals_are_unchanged(tmp_path: Path) -> None:
    requests, truth = generate(3_000, seed=5, spans_per_request=250)
    lines = list(iter_json_lines(requests))
    bad = [
        "{not json",
        json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": []}]}),
        json.dumps(
            {
                "resourceSpans": [
                    {
                        "resource": {
                            "attributes": [{"key": "service.name", "value": {"stringValue": "x"}}]
                        },
                        "scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "00"}]}],
                    }
                ]
            }
        ),
    ]
    mixed = [lines[0], bad[0], *lines[1:5], bad[1], *lines[5:], bad[2]]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(line + "\n" for line in mixed))
    files = replay([path], tmp_path / "out", CONFIG)
    assert_matches_truth(read_jsonl(str(files["signals"]), SignalWindow), truth, WINDOW_NS)
    dead = [json.loads(line) for line in files["deadletters"].read_text().splitlines()]
    assert sorted(d["offset"] for d in dead) == [1, 6, len(mixed) - 1]
    assert all(d["reason"] and d["source"] == str(path) for d in dead)


def test_late_data_is_counted_not_dropped(tmp_path: Path) -> None:
    requests, truth = generate(3_000, seed=9, spans_per_request=100, rate_per_s=100.0)
    lines = list(iter_json_lines(requests))
    # The first request arrives last: far behind the watermark, its spans are late.
    path = tmp_path / "late.jsonl"
    path.write_text("".join(line + "\n" for line in [*lines[1:], lines[0]]))
    signals = read_jsonl(str(replay([path], tmp_path / "out", CONFIG)["signals"]), SignalWindow)
    late = sum(s.late for s in signals if s.kind == "pipeline" and s.metric == "late")
    counted = sum(s.count for s in signals if s.kind == "span")
    assert late == 100
    assert counted + late == len(truth.end_ns)


def test_cli_replay_writes_signals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    requests, _ = generate(1_000, seed=2)
    path = tmp_path / "rec.jsonl"
    path.write_text("".join(line + "\n" for line in iter_json_lines(requests)))
    assert cli_main(["replay", str(path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "signals.jsonl").read_text().count('"schema":"sre.signal/v1"') > 0
    assert "1000 spans" in capsys.readouterr().err


def test_metrics_lines_become_saturation_and_passthrough_signals(tmp_path: Path) -> None:
    from bench.otlp_encode import PointSpec, metrics_request, to_otlp_json

    mib = 1024 * 1024
    t0 = 1_767_571_200 * 10**9
    lines = []
    # Memory of one pod climbs 10 MiB per 15 s toward a 256 MiB limit; restarts reported every 30 s.
    for step in range(12):
        ts = t0 + step * 15 * 10**9
        points = [
            PointSpec("container.memory.usage", (100 + 10 * step) * mib, ts, unit="By"),
            PointSpec("k8s.container.memory_limit", 256 * mib, ts, unit="By"),
            PointSpec("container.cpu.utilization", 0.25, ts, unit="1"),
        ]
        if step % 2 == 0:
            points.append(
                PointSpec("k8s.container.restarts", step // 4, ts, is_sum=True, monotonic=True)
            )
        req = metrics_request([({"service.name": "cart", "k8s.pod.name": "cart-0"}, points)])
        lines.append(to_otlp_json(req))
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    signals = read_jsonl(str(replay([path], tmp_path / "out", CONFIG)["signals"]), SignalWindow)
    memory = [s for s in signals if s.metric == "memory"]
    assert len(memory) == 12  # one point per 15 s lands in 12 distinct 10 s windows
    assert [s.utilization for s in memory] == [round((100 + 10 * i) / 256, 6) for i in range(12)]
    assert all(s.limit == 256 * mib and s.unit == "By" for s in memory)
    cpu = [s for s in signals if s.metric == "cpu"]
    assert {s.utilization for s in cpu} == {0.25}
    restarts = [s.value for s in signals if s.metric == "k8s.container.restarts"]
    assert restarts == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]


def test_a_burst_of_garbage_makes_scout_say_the_pipeline_is_hurt(tmp_path: Path) -> None:
    # Half an hour of clean traffic, then two minutes in which most requests are garbage.
    requests, _ = generate(36_000, seed=13, spans_per_request=20, rate_per_s=20.0)
    lines = list(iter_json_lines(requests))
    burst = range(len(lines) * 3 // 4, len(lines) * 3 // 4 + 120)
    mixed = []
    for i, line in enumerate(lines):
        mixed.append(line)
        if i in burst:
            mixed += ["{garbage"] * 3
    path = tmp_path / "burst.jsonl"
    path.write_text("".join(line + "\n" for line in mixed))
    files = replay([path], tmp_path / "out", CONFIG)
    signals = read_jsonl(str(files["signals"]), SignalWindow)
    dead = [s for s in signals if s.kind == "pipeline" and s.metric == "deadletters"]
    assert sum(int(s.value or 0) for s in dead) == 3 * len(burst)
    incidents = [json.loads(line) for line in files["incidents"].read_text().splitlines()]
    assert any("deadletters" in i["summary"] for i in incidents), incidents
