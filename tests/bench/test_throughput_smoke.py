"""A small run of the throughput bench, so that it keeps working (the full run stays out of CI)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bench import throughput


def run_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, object]:
    monkeypatch.setenv("SRE_BENCH_OUT", str(tmp_path))
    monkeypatch.setattr(throughput, "OUT", tmp_path)
    assert throughput.main(["--spans", "1500", "--spans-per-request", "512", *args]) == 0
    [result] = tmp_path.glob("throughput-*.json")
    summary: dict[str, object] = json.loads(result.read_text())
    return summary


@pytest.mark.parametrize("workload", ["lean", "rich"])
def test_each_path_counts_every_span_of_the_workload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workload: str
) -> None:
    summary = run_bench(
        tmp_path, monkeypatch, "--workload", workload, "--modes", "naive", "columnar"
    )
    results = summary["results"]
    assert isinstance(results, list)
    assert [r["mode"] for r in results] == ["naive", "columnar"]
    assert all(r["spans"] == 1500 and r["peak_rss_mib"] > 0 for r in results)
    assert results[0]["x_naive"] == 1.0
    size = summary["bytes_per_span"]
    assert isinstance(size, float) and (size > 500) == (workload == "rich")


def test_rounds_give_each_ratio_against_its_own_rounds_naive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = run_bench(tmp_path, monkeypatch, "--modes", "naive", "columnar", "--rounds", "3")
    rounds = summary["rounds"]
    assert isinstance(rounds, list) and len(rounds) == 3
    results = summary["results"]
    assert isinstance(results, list)
    naive, columnar = results
    assert (naive["mode"], naive["runs"], naive["x_naive"]) == ("naive", 3, 1.0)
    ratios = [round(one[1]["spans_per_cpu_s"] / one[0]["spans_per_cpu_s"], 2) for one in rounds]
    assert [one[1]["x_naive"] for one in rounds] == ratios
    assert columnar["x_naive_range"] == [min(ratios), max(ratios)]
    assert columnar["x_naive"] == sorted(ratios)[1]
    assert columnar["peak_rss_mib"] == max(one[1]["peak_rss_mib"] for one in rounds)


@pytest.mark.kafka
def test_the_kafka_paths_turn_every_span_into_signals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str
) -> None:
    summary = run_bench(
        tmp_path, monkeypatch, "--kafka", kafka_bootstrap, "--modes", "kafka", "kafka_no_archive"
    )
    results = summary["results"]
    assert isinstance(results, list)
    assert [(r["mode"], r["spans"]) for r in results] == [
        ("kafka", 1500),
        ("kafka_no_archive", 1500),
    ]


@pytest.mark.kafka
def test_the_scaleout_bench_counts_every_span_on_one_and_two_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str
) -> None:
    from bench import scaleout

    monkeypatch.setenv("SRE_BENCH_OUT", str(tmp_path))
    monkeypatch.setattr(scaleout, "OUT", tmp_path)
    args = ["--kafka", kafka_bootstrap, "--spans", "150000", "--spans-per-request", "4096"]
    assert scaleout.main([*args, "--independent"]) == 0
    results = json.loads((tmp_path / "scaleout.json").read_text())
    # 30 s of spans over four partitions read out of step: every span in its window, none late;
    # and the same spans as two separate flows of two partitions each.
    assert [(r["procs"], r["independent"], r["spans"], r["late_spans"]) for r in results] == [
        (1, False, 150000, 0),
        (2, False, 150000, 0),
        (2, True, 150000, 0),
    ]
    assert all(len(run["members"]) == r["procs"] for r in results for run in r["runs"])
    # the machine's busy cores (Linux) and the ratio had none been idle, per run and as a median
    assert all(
        0 < run["machine"]["cores_busy"] <= run["machine"]["cores"]
        for r in results
        for run in r["runs"]
    )
    assert all(r["x_one_full"] > 0 for r in results)


def test_the_scaleout_summary_is_the_median_of_each_round_s_ratio() -> None:
    from bench.scaleout import summary

    def run(procs: int, independent: bool, spans_per_s: int, x_one: float) -> dict[str, Any]:
        return {
            "procs": procs,
            "independent": independent,
            "partitions": 4,
            "spans": 1000,
            "late_spans": 0,
            "peak_rss_mib": 100.0 + procs,
            "seconds": 1000 / spans_per_s,
            "spans_per_s": spans_per_s,
            "cpu_seconds": 1.0,
            "spans_per_cpu_s": 1000,
            "x_one": x_one,
        }

    rounds = [
        [run(1, False, 100, 1.0), run(2, False, 150, 1.5)],
        [run(1, False, 50, 1.0), run(2, False, 100, 2.0)],
        [run(1, False, 80, 1.0), run(2, False, 96, 1.2)],
    ]
    rows = summary(rounds)
    assert [(r["procs"], r["x_one"], r["x_one_range"], len(r["runs"])) for r in rows] == [
        (1, 1.0, [1.0, 1.0], 3),
        (2, 1.5, [1.2, 2.0], 3),
    ]
    # the ratio's median is not the ratio of the medians (100 / 80 = 1.25 here)
    assert [r["spans_per_s"] for r in rows] == [80, 100]


def test_the_machine_s_busy_seconds_leave_out_idle_and_iowait() -> None:
    from bench.scaleout import busy_seconds

    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat = (
        f"cpu  {tick} 0 {tick} {50 * tick} {3 * tick} 0 {tick} 0 7 7\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
    )
    assert busy_seconds(stat) == 3.0


def test_the_full_machine_ratio_is_the_cluster_s_cpu_spread_over_every_core() -> None:
    from bench.scaleout import _machine

    def member(start: float, end: float, busy: tuple[float, float]) -> dict[str, Any]:
        return {"monotonic": [start, end], "machine_busy": list(busy)}

    # from the first start (9.0, busy 99) to the last end (13.0, busy 104): 5 CPU-s in 4 s
    machine = _machine([member(10.0, 13.0, (100.0, 104.0)), member(9.0, 12.0, (99.0, 103.0))], 600)
    cores = len(os.sched_getaffinity(0))
    assert machine == {
        "cores": cores,
        "cores_busy": 1.25,
        "spans_per_s_full": round(600 / (5 / cores)),
    }
    assert _machine([member(1.0, 2.0, (None, None))], 600) == {}  # type: ignore[arg-type]
