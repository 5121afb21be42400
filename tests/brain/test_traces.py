"""Trace-level analysis: error origin, self time, critical path, N+1 vs fan-out."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.brain.config import DiagnosisConfig
from sinks.brain.structure import add_critical_path, add_self_time, prepare
from sinks.brain.traces import analyze_trace
from tests.brain.builders import S, frame, span_hex
from tests.brain.trace_cases import CASES, Case


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_trace_case(case: Case) -> None:
    result = analyze_trace(frame(case.spans))
    if case.locus is None:
        assert result.locus is None, result.why
    else:
        service, operation, name = case.locus
        assert result.locus == {
            "service": service,
            "operation": operation,
            "span_id": span_hex("t1", name),
        }, result.why
    got = {(p["kind"], p["service"], p["operation"], p["count"]) for p in result.patterns}
    for expected in case.patterns:
        assert expected in got, result.patterns
    if not case.patterns:
        assert not [p for p in result.patterns if p["kind"] == "n_plus_one"]
    for word in case.why:
        assert word in result.why, result.why


def test_output_shape_matches_the_cli_contract() -> None:
    out = analyze_trace(frame(CASES[1].spans)).to_dict()
    assert set(out) >= {"locus", "why", "patterns"}
    assert set(out["locus"]) == {"service", "operation", "span_id"}


def test_self_time_accounts_for_overlapping_children() -> None:
    spans = [
        S("root", "", "a", "op", 0, 100),
        S("c1", "root", "b", "x", 10, 50, kind=3),
        S("c2", "root", "c", "y", 30, 70, kind=3),  # overlaps c1: union 10..70 = 60
        S("c3", "root", "d", "z", 90, 130, kind=3),  # runs past the parent: counts to 100 only
    ]
    df = add_self_time(prepare(frame(spans), DiagnosisConfig()))
    self_ms = {r["operation"]: r["self_ns"] / 1e6 for r in df.to_dicts()}
    assert self_ms["op"] == pytest.approx(100 - 60 - 10)
    assert self_ms["x"] == pytest.approx(40)


def test_critical_path_follows_the_last_finishing_chain() -> None:
    spans = [
        S("root", "", "a", "root", 0, 100),
        S("fast", "root", "b", "parallel-fast", 5, 20, kind=3),
        S("slow", "root", "c", "parallel-slow", 5, 60, kind=3),
        S("next", "root", "d", "after", 62, 95, kind=3),
    ]
    df = add_critical_path(add_self_time(prepare(frame(spans), DiagnosisConfig())))
    crit = {r["operation"]: r for r in df.to_dicts()}
    assert crit["parallel-slow"]["on_critical"]
    assert not crit["parallel-fast"]["on_critical"]
    assert crit["after"]["on_critical"]
    assert df.get_column("critical_ns").sum() == crit["root"]["duration_ns"]


@st.composite
def _trees(draw: st.DrawFn) -> list[S]:
    n = draw(st.integers(1, 25))
    spans = [S("s0", "", "svc0", "root", 0, draw(st.integers(10, 1000)))]
    for i in range(1, n):
        parent = spans[draw(st.integers(0, i - 1))]
        start = draw(st.integers(int(parent.start), int(parent.end)))
        end = draw(st.integers(start + 1, int(parent.end) + 50))
        spans.append(S(f"s{i}", parent.id, f"svc{i % 4}", f"op{i % 5}", start, end, kind=3))
    return spans


@settings(max_examples=60, deadline=None)
@given(_trees())
def test_critical_time_sums_to_the_root_duration(spans: list[S]) -> None:
    df = add_critical_path(add_self_time(prepare(frame(spans), DiagnosisConfig())))
    root = df.filter(pl.col("is_root")).get_column("duration_ns")[0]
    assert df.get_column("critical_ns").sum() == root
    assert (df.get_column("self_ns") >= 0).all()
    assert (df.get_column("self_ns") <= df.get_column("duration_ns")).all()


def test_many_traces_at_once_match_one_at_a_time() -> None:
    # The vectorised rules must not mix traces: two traces analysed together give each its own locus.
    a = frame(CASES[1].spans, trace="ta")
    b = frame(CASES[3].spans, trace="tb")
    both = pl.concat([a, b])
    from sinks.brain.structure import error_origins

    origins = error_origins(prepare(both, DiagnosisConfig()), DiagnosisConfig()).filter(
        pl.col("primary")
    )
    loci = {(r["trace_id"][-4:], r["locus_service"]) for r in origins.to_dicts()}
    assert (b"ta".hex(), "shipping") in loci
    assert (b"tb".hex(), "inventory") in loci
