"""Event-time progress: the slowest awaited input, and the disorder windows arrive in."""

from __future__ import annotations

from operators.signals.progress import IDLE_NS, MAX_DISORDER_NS, Disorder, Progress
from sre_space.timeutil import NS_PER_S

HOUR = IDLE_NS
MIN = 60 * NS_PER_S


def test_progress_waits_for_the_slowest_awaited_input_until_it_idles() -> None:
    progress = Progress(("traces", "metrics"))
    progress.see("traces", 10 * HOUR)
    assert progress.reached() == 9 * HOUR  # metrics never came: an hour later it stops holding
    progress.see("metrics", 10 * HOUR - MIN)
    assert progress.reached() == 10 * HOUR - MIN


def test_disorder_is_the_largest_lag_of_the_last_hour_or_two() -> None:
    disorder = Disorder()
    disorder.see(10 * HOUR, 10 * HOUR - 10 * MIN)
    disorder.see(10 * HOUR + MIN, 10 * HOUR)  # in order enough: the larger lag stays
    assert disorder.lag_ns == 10 * MIN
    disorder.see(11 * HOUR, 11 * HOUR - MIN)  # next hour: the last hour's lag still counts
    assert disorder.lag_ns == 10 * MIN
    disorder.see(12 * HOUR, 12 * HOUR - MIN)  # two hours on, it has aged out
    assert disorder.lag_ns == MIN
    disorder.see(15 * HOUR, 15 * HOUR)  # a gap of hours forgets everything
    assert disorder.lag_ns == 0


def test_a_backlog_older_than_the_cap_is_not_waited_for() -> None:
    disorder = Disorder()
    disorder.see(10 * HOUR, 10 * HOUR - MAX_DISORDER_NS - MIN)
    disorder.see(10 * HOUR, 10 * HOUR + MIN)  # ahead of the newest: no lag
    assert disorder.lag_ns == 0


def test_disorder_survives_a_snapshot() -> None:
    disorder = Disorder()
    disorder.see(10 * HOUR, 10 * HOUR - 5 * MIN)
    assert Disorder.restore(disorder.snapshot()) == disorder
    assert Disorder.restore(None) == Disorder()
