"""N+1 versus fan-out: siblings are grouped by operation and target (peer, db statement); an N+1
is one call repeated serially, a bounded worker pool or calls to different peers are a fan-out."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from sinks.brain.config import DiagnosisConfig
from sinks.brain.structure import call_groups, prepare
from sinks.brain.traces import analyze_trace
from tests.brain.builders import S, frame


def _calls(
    starts: Sequence[float], ms: float, peers: Sequence[str], statements: Sequence[str]
) -> pl.DataFrame:
    """One parent with a `GET` client call per start; call i goes to `peers[i]` and runs
    `statements[i]` (empty: the attribute is not set)."""
    spans = [S("root", "", "api", "GET /report", 0, 400)]
    spans += [
        S(f"c{i}", "root", "api", "GET", start, start + ms, kind=3)
        for i, start in enumerate(starts)
    ]
    df = frame(spans)
    n = len(starts)
    return df.with_columns(
        pl.Series("peer.service", ["", *peers[:n]]),
        pl.Series("db.statement", ["", *statements[:n]]),
    )


def _groups(df: pl.DataFrame) -> list[tuple[str, int]]:
    cfg = DiagnosisConfig()
    rows = call_groups(prepare(df, cfg), cfg).to_dicts()
    return sorted((r["kind"], r["count"]) for r in rows)


def test_a_serial_loop_to_one_target_is_an_n_plus_one() -> None:
    starts = [2 + 12 * i for i in range(10)]
    same = ["inventory"] * 10
    # The statement's parameter differs per call; the statement is the same.
    queries = [f"SELECT * FROM items WHERE id = {i}" for i in range(10)]
    df = _calls(starts, 10, same, queries)
    assert _groups(df) == [("n_plus_one", 10)]
    assert "N+1: 10 serial calls" in analyze_trace(df).why


def test_a_bounded_worker_pool_is_a_fan_out() -> None:
    # Three workers, ten calls of 30 ms to one peer: at most three at a time, the durations sum to
    # more than the wall window though the union covers it with little overlap.
    starts = [2 + 30 * (i // 3) + 0.5 * (i % 3) for i in range(10)]
    assert _groups(_calls(starts, 30, ["inventory"] * 10, [""] * 10)) == [("fan_out", 10)]
    # Slightly concurrent calls with the same operation name to ten different peers: a fan-out,
    # never an N+1, however little they overlap.
    loose = [2 + 11 * i for i in range(10)]
    peers = [f"shard-{i}" for i in range(10)]
    df = _calls(loose, 12, peers, [""] * 10)
    assert _groups(df) == [("fan_out", 10)]
    assert not [p for p in analyze_trace(df).patterns if p["kind"] == "n_plus_one"]


def test_a_serial_loop_over_different_statements_is_not_an_n_plus_one() -> None:
    starts = [2 + 12 * i for i in range(10)]
    tables = [f"SELECT * FROM t{i}" for i in range(10)]
    assert _groups(_calls(starts, 10, ["db"] * 10, tables)) == [("fan_out", 10)]
