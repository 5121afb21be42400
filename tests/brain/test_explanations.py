"""Changes and attribute concentrations explain a symptom; without one they name no root cause.

The case is the false diagnosis of a CI drill: a service with a usual trickle of failures on one
route, a commit that touched it (the repo's first), and two requests in three thousand cut short
there. Each piece is ordinary; together they once made a confident root cause.
"""

from __future__ import annotations

import polars as pl

from sinks.brain.config import DiagnosisConfig
from sinks.brain.engine import analyze
from tests.brain.builders import MS, T0, S, frame

N = 1500
ONSET_MS = N * 100.0


def _trace(i: int, cut: bool) -> list[S]:
    """entry -> shop (which calls db); every 100th request to /x fails, as it always has."""
    route = "/x" if i % 5 == 0 else "/y"
    failing = i % 100 == 0
    spans = [
        S("r", "", "entry", "GET /", 0, 30, kind=2),
        S("c", "r", "entry", "call shop", 1, 29, kind=3),
        S("s", "c", "shop", "GET " + route, 2, 28, error=failing, attrs={"http.route": route}),
    ]
    if not cut:
        spans += [
            S("d", "s", "shop", "query", 3, 20, kind=3),
            S("q", "d", "db", "SELECT", 4, 19),
        ]
    return spans


def _spans(cut: set[int]) -> pl.DataFrame:
    frames = [frame(_trace(i, False), f"b{i}", i * 100.0) for i in range(N)]
    frames += [frame(_trace(i, i in cut), f"i{i}", ONSET_MS + i * 100.0) for i in range(N)]
    return pl.concat(frames)


def _diagnose(spans: pl.DataFrame, cfg: DiagnosisConfig) -> tuple[bool, list[str], float]:
    onset = T0 + int(ONSET_MS * MS)
    window = (onset, onset + int(N * 100.0 * MS))
    commit = {
        "sha": "a" * 40,
        "at": onset - 60 * 10**9,
        "message": "Initial manifests",
        "services": ["shop", "entry", "db"],
    }
    analysis = analyze(spans, window, (T0, onset), commits=[commit], onset_ns=onset, cfg=cfg)
    d = analysis.diagnosis
    return d.abstained, [c.service for c in d.candidates], analysis.ranking.confidence


def test_a_commit_and_ordinary_failures_do_not_make_a_whisker_of_a_symptom_a_root_cause() -> None:
    spans = _spans(cut={7, 911})
    abstained, services, confidence = _diagnose(spans, DiagnosisConfig())
    assert abstained, (services, confidence)
    assert confidence < 0.1
    # The rule is what holds it: with explanations counted on any symptom, the same data named
    # shop at a confidence past the bar.
    loose = DiagnosisConfig(min_symptom_score=0.0)
    abstained, services, confidence = _diagnose(spans, loose)
    assert not abstained and services[0] == "shop", (services, confidence)


def test_a_real_cut_still_takes_its_change_and_attribute() -> None:
    spans = _spans(cut={i for i in range(N) if i % 5 == 0})
    abstained, services, confidence = _diagnose(spans, DiagnosisConfig())
    assert not abstained and services[0] == "shop", (services, confidence)
    assert confidence >= 0.5
