"""The windows' clock: a key's watermark waits for the slowest partition it hears from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bytewax.operators.windowing import EventClock
from hypothesis import given
from hypothesis import strategies as st

from flows.clock import AlignedClock
from sre_space.timeutil import NS_PER_S, ns_to_datetime

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T0 = 1_767_571_200 * NS_PER_S
WAIT = timedelta(seconds=5)


def _clock(skew_s: int = 300, awaited: dict[str, tuple[str, ...]] | None = None) -> AlignedClock:
    return AlignedClock(
        lambda ns: ns, WAIT, skew_s * NS_PER_S, awaited=awaited or {}, deterministic=True
    )


def _late(logic, source: str, ts_ns: int) -> bool:
    ts, watermark = logic.on_item((source, ts_ns))
    return bool(ts < watermark)


@given(st.lists(st.integers(0, 600 * NS_PER_S), min_size=1, max_size=60))
def test_one_source_is_bytewax_event_clock_step_for_step(offsets: list[int]) -> None:
    ours = _clock().build(None)
    theirs = EventClock(
        lambda ns: ns_to_datetime(ns), WAIT, now_getter=lambda: EPOCH, to_system_utc=lambda t: None
    ).build(None)
    for off in offsets:
        ours.before_batch()
        theirs.before_batch()
        assert ours.on_item(("spans:0", T0 + off)) == theirs.on_item(T0 + off)
    assert ours.on_notify() == theirs.on_notify()


TWO = {"spans": ("spans:0", "spans:1")}


def test_a_partition_running_ahead_makes_no_other_late() -> None:
    logic = _clock(awaited=TWO).build(None)
    minute = 60 * NS_PER_S
    # Partition 0 delivers four minutes in one poll, then partition 1 the same four minutes.
    assert not any(_late(logic, "spans:0", T0 + i * NS_PER_S) for i in range(0, 240))
    assert not any(_late(logic, "spans:1", T0 + i * NS_PER_S) for i in range(0, 240))
    assert logic.on_notify() == ns_to_datetime(T0 + 4 * minute - NS_PER_S) - WAIT
    # Behind the slowest partition by more than the lateness is late, as with one partition.
    assert _late(logic, "spans:1", T0 + 200 * NS_PER_S)


def test_an_awaited_partition_holds_the_watermark_before_it_delivers() -> None:
    logic = _clock(skew_s=120, awaited=TWO).build(None)
    _late(logic, "spans:0", T0 + 600 * NS_PER_S)
    # Partition 1 has not delivered: the watermark stays `skew` behind partition 0's newest.
    assert logic.on_notify() == ns_to_datetime(T0 + 480 * NS_PER_S) - WAIT
    assert not _late(logic, "spans:1", T0 + 490 * NS_PER_S)
    assert _late(logic, "spans:1", T0 + 470 * NS_PER_S)
    # Another topic's partitions are not awaited for this one.
    other = _clock(skew_s=120, awaited=TWO).build(None)
    _late(other, "metrics:0", T0 + 600 * NS_PER_S)
    assert other.on_notify() == ns_to_datetime(T0 + 600 * NS_PER_S) - WAIT


def test_a_partition_that_stops_holds_the_key_at_most_skew() -> None:
    logic = _clock(skew_s=60).build(None)
    _late(logic, "spans:1", T0)
    for i in range(0, 600, 10):
        _late(logic, "spans:0", T0 + i * NS_PER_S)
    assert logic.on_notify() == ns_to_datetime(T0 + 530 * NS_PER_S) - WAIT


def test_resumes_from_a_snapshot_and_from_an_event_clock_snapshot() -> None:
    logic = _clock(awaited=TWO).build(None)
    _late(logic, "spans:0", T0 + 100 * NS_PER_S)
    _late(logic, "spans:1", T0 + 50 * NS_PER_S)
    resumed = _clock(awaited=TWO).build(logic.snapshot())
    assert resumed.on_notify() == logic.on_notify()
    assert not _late(resumed, "spans:1", T0 + 50 * NS_PER_S)

    old = EventClock(
        lambda ns: ns_to_datetime(ns), WAIT, now_getter=lambda: EPOCH, to_system_utc=lambda t: None
    ).build(None)
    old.on_item(T0 + 100 * NS_PER_S)
    assert _clock().build(old.snapshot()).on_notify() == old.on_notify()


class _Live(AlignedClock):
    """A live clock whose system time the test moves."""

    system = datetime(2026, 12, 5, tzinfo=UTC)

    def now(self) -> datetime:
        return self.system


def test_a_live_key_wakes_when_the_wall_clock_brings_its_window_to_close() -> None:
    clock = _Live(lambda ns: ns, WAIT, 300 * NS_PER_S)
    logic = clock.build(None)
    assert logic.to_system_utc(ns_to_datetime(T0)) is None  # no watermark yet
    started = clock.system
    # a backlog: event time a year behind the wall clock
    logic.before_batch()
    _, watermark = logic.on_item(("spans:0", T0))
    close = ns_to_datetime(T0 + 10 * NS_PER_S)
    wake = logic.to_system_utc(close)
    # not at once (EventClock's default maps the close time to itself, long past): the window
    # is due when the wall clock has moved the watermark to it, 15 s from now
    assert wake == started + (close - watermark) == started + timedelta(seconds=15)
    clock.system = wake - timedelta(microseconds=1)
    assert logic.on_notify() < close
    clock.system = wake
    assert logic.on_notify() == close


def test_a_deterministic_clock_never_wakes_on_the_wall_clock() -> None:
    logic = _clock().build(None)
    logic.on_item(("spans:0", T0))
    assert logic.to_system_utc(ns_to_datetime(T0 + 10 * NS_PER_S)) is None
