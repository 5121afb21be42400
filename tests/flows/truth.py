"""Compare the flow's span signals with the exact figures of the generated workload."""

from __future__ import annotations

from bench.workload import Truth, expected_signals
from sre_space.records import SignalWindow


def assert_matches_truth(signals: list[SignalWindow], truth: Truth, window_ns: int) -> None:
    """Counts and errors exact; p50/p95/p99 within 1% of numpy's on the same spans."""
    want = expected_signals(truth, window_ns)
    got = {(s.service, s.operation, s.window_start): s for s in signals if s.kind == "span"}
    assert set(got) == set(want)
    for key, exp in want.items():
        sig = got[key]
        assert (sig.count, sig.errors) == (exp["count"], exp["errors"]), key
        for q in ("p50_ms", "p95_ms", "p99_ms"):
            assert abs(getattr(sig, q) - exp[q]) <= 0.01 * exp[q] + 0.001, (key, q)
