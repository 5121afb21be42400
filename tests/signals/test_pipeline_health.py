"""SRE-Space's own health signals: dead letters per window, watermark delay, consumer lag."""

from __future__ import annotations

from operators.signals.pipeline import PipelineHealth

S = 1_000_000_000
W = 10 * S


def test_dead_letters_are_counted_in_the_window_of_the_newest_event_time() -> None:
    h = PipelineHealth(W)
    assert h.on_decoded(100 * W + 1, "otlp_spans:0", 0) == []
    h.on_dead("otlp_spans:0", 1)
    h.on_dead("otlp_spans:0", 2)
    assert h.on_decoded(100 * W + 5, "otlp_spans:0", 3) == []
    [closed] = h.on_decoded(101 * W, "otlp_spans:0", 4)  # a later window closes the first
    assert (closed.metric, closed.value, closed.count, closed.error_rate) == (
        "deadletters",
        2.0,
        4,
        0.5,
    )
    [last] = h.flush()
    assert (last.value, last.count) == (0.0, 1)


def test_heartbeat_reports_a_growing_watermark_delay_when_no_data_arrives() -> None:
    h = PipelineHealth(W)
    assert h.heartbeat(50 * W)[0].value == 0.0  # nothing seen yet: starting, not stale
    h.on_decoded(50 * W, "t:0", 0)
    delays = [h.heartbeat(50 * W + k * W)[0].value for k in range(1, 4)]
    assert delays == [10.0, 20.0, 30.0]


def test_consumer_lag_from_end_offsets_and_positions() -> None:
    h = PipelineHealth(W)
    h.on_decoded(1, "t:0", 41)
    h.on_dead("t:1", 9)
    assert h.lag({"t:0": 42, "t:1": 15, "t:2": 3}) == 0 + 5 + 3
    [_, lag] = h.heartbeat(W, consumer_lag=h.lag({"t:0": 50}))
    assert (lag.metric, lag.value) == ("consumer_lag", 8.0)


def test_snapshot_round_trip() -> None:
    h = PipelineHealth(W)
    h.on_decoded(5 * W, "t:0", 7)
    h.on_dead("t:0", 8)
    again = PipelineHealth.from_snapshot(h.snapshot())
    assert again.snapshot() == h.snapshot()
    assert again.flush() == h.flush()


def _health_run(events: list[tuple[str, int, bool]], gate: bool) -> list[tuple[int, int, float]]:
    h = PipelineHealth(W, awaited=("spans", "metrics") if gate else ())
    out = []
    for source, t, dead in events:
        out += h.on_dead(source) if dead else h.on_decoded(t, source)
    out += h.flush()
    return [(s.window_start, s.count, s.value) for s in out]


def test_partitions_read_far_apart_give_the_same_windows_when_gated() -> None:
    # spans export every second, metrics every ten; a dead letter on each topic now and then
    spans = [("spans:0", 100 * W + k * S, k % 97 == 5) for k in range(600)]
    metrics = [("metrics:0", 100 * W + k * W + 3 * S, k % 13 == 4) for k in range(60)]
    in_step = sorted(spans + metrics, key=lambda e: e[1])
    # one poll of metrics covers the whole ten minutes before the spans' first poll is read
    metrics_first = metrics + spans
    reference = _health_run(in_step, gate=True)
    assert len(reference) == 60 and sum(c for _, c, _ in reference) == 660
    assert _health_run(metrics_first, gate=True) == reference
    assert _health_run(spans + metrics, gate=True) == reference
    # ungated (live) windows close on the newest partition: the spans behind it pile up late
    assert _health_run(metrics_first, gate=False) != reference
