"""A flood of malformed messages among good OTLP traffic, through the Kafka flow and a real broker.

10,000 messages that are not export requests (random bytes, truncated protobuf, broken JSON, JSON
without service.name, JSON that is not an object, empty values, tombstones) are spread over the
partitions of both input topics among good trace and metrics requests. The flow must dead-letter
each of them exactly once, with its reason and origin, compute the same signals as from the good
traffic alone, and end normally.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from bytewax.testing import run_main

from bench.workload import generate
from flows.main import build_kafka_flow
from sinks.store import Store
from tests.conftest import ConsumeAll, Produce, TopicFactory
from tests.flows.truth import assert_matches_truth
from tests.reliability.helpers import (
    MALFORMED_KINDS,
    assert_written_once,
    data_signals,
    flow_settings,
    flow_topics,
    interleave,
    malformed_messages,
    metrics_traffic,
    produce_lanes,
    read_dead_letters,
    read_signals,
)

pytestmark = pytest.mark.kafka

MALFORMED = 10_000
SPANS_PARTITIONS = 3
METRICS_PARTITIONS = 2


def test_ten_thousand_malformed_messages_are_dead_lettered_once_and_change_no_signal(
    tmp_path: Path,
    topic_factory: TopicFactory,
    produce: Produce,
    consume_all: ConsumeAll,
    kafka_bootstrap: str,
) -> None:
    requests, truth = generate(120_000, seed=91, spans_per_request=100, services=4)
    metrics = metrics_traffic(truth, every_s=0.5)
    # Most of the flood goes to the spans topic, the busy one in production.
    bad_spans = malformed_messages(MALFORMED * 4 // 5, signal="traces", example=requests[0], seed=1)
    bad_metrics = malformed_messages(
        MALFORMED - len(bad_spans), signal="metrics", example=metrics[0], seed=2
    )
    span_lanes = interleave(requests, [v for _, v in bad_spans], SPANS_PARTITIONS, seed=3)
    metric_lanes = interleave(metrics, [v for _, v in bad_metrics], METRICS_PARTITIONS, seed=4)

    flooded = flow_topics(
        topic_factory, spans_partitions=SPANS_PARTITIONS, metrics_partitions=METRICS_PARTITIONS
    )
    bad_at = {
        (flooded["spans_topic"], p, o)
        for p, o in produce_lanes(produce, flooded["spans_topic"], span_lanes)
    } | {
        (flooded["metrics_topic"], p, o)
        for p, o in produce_lanes(produce, flooded["metrics_topic"], metric_lanes)
    }
    assert len(bad_at) == MALFORMED

    # The reference: the same good traffic alone, same partitions, through the same flow.
    clean = flow_topics(
        topic_factory, spans_partitions=SPANS_PARTITIONS, metrics_partitions=METRICS_PARTITIONS
    )
    produce_lanes(produce, clean["spans_topic"], interleave(requests, [], SPANS_PARTITIONS, 3))
    produce_lanes(produce, clean["metrics_topic"], interleave(metrics, [], METRICS_PARTITIONS, 4))

    flooded_settings = flow_settings(kafka_bootstrap, flooded, tmp_path / "flooded", tail=False)
    started = time.perf_counter()
    run_main(build_kafka_flow(flooded_settings))  # returns at the end offsets; raises on error
    flooded_s = time.perf_counter() - started
    started = time.perf_counter()
    run_main(
        build_kafka_flow(flow_settings(kafka_bootstrap, clean, tmp_path / "clean", tail=False))
    )
    clean_s = time.perf_counter() - started
    good_total = len(requests) + len(metrics)
    spans = len(truth.end_ns)
    print(
        f"\nmalformed flood: {MALFORMED} malformed + {good_total} good messages ({spans} spans) "
        f"in {flooded_s:.1f} s, {spans / flooded_s:.0f} spans/s; the good ones alone in "
        f"{clean_s:.1f} s, {spans / clean_s:.0f} spans/s (the difference is within run-to-run "
        f"noise on a shared machine; nothing here is asserted on time)"
    )

    # Every malformed message is dead-lettered exactly once, with a reason and its origin.
    dead = read_dead_letters(consume_all, flooded["deadletter_topic"])
    assert len(dead) == MALFORMED
    origins = Counter((d.source, d.partition, d.offset) for d in dead)
    assert max(origins.values()) == 1
    assert set(origins) == bad_at
    assert all(d.reason.strip() for d in dead)
    reasons = " | ".join({d.reason.split(":")[0] for d in dead})
    for expected in ("protobuf", "invalid JSON", "service.name", "must be an object", "empty"):
        assert expected in reasons, reasons
    mix = Counter(kind for kind, _ in bad_spans + bad_metrics)
    assert set(mix) == set(MALFORMED_KINDS)
    print(f"malformed kinds: {dict(mix)}")
    print(f"dead letters by reason: {Counter(d.reason.split(':')[0] for d in dead).most_common()}")
    assert Store(flooded_settings.state_dir / "sre.db").count("deadletters") == MALFORMED

    # The good traffic gives exactly the signals it gives alone, and the exact truth.
    signals = read_signals(consume_all, flooded["signals_topic"])
    assert_written_once(signals)
    assert_matches_truth(signals, truth, flooded_settings.pipeline.signals.window_seconds * 10**9)
    assert {s.metric for s in signals if s.kind == "metric"} >= {"memory"}
    reference = read_signals(consume_all, clean["signals_topic"])
    assert data_signals(signals) == data_signals(reference)
    assert not read_dead_letters(consume_all, clean["deadletter_topic"])
