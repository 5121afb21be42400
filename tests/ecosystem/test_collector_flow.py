"""SDK -> real Collector (deploy/otel-collector.yaml) -> Kafka -> `python -m bytewax.run flows.main`.

The OpenTelemetry Python SDK sends traces over OTLP/gRPC (checkout) and OTLP/HTTP (payment) and
memory gauges over one of them; the Collector writes otlp_proto or otlp_json to Kafka exactly as
compose runs it; the flow's signals must equal the truth of the spans the Collector acknowledged:
counts and errors exact, p50/p95/p99 within the sketch's 1%.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sre_space.records import SignalWindow
from tests.ecosystem.conftest import COLLECTOR_CONFIG, binary
from tests.ecosystem.pipeline import collector_metric, run_flow, wait_for_metric
from tests.ecosystem.sdk import MIB, Shop, send_memory_gauges, truth_of
from tests.flows.truth import assert_matches_truth

pytestmark = pytest.mark.collector

WINDOW_NS = 10 * 10**9
N_SPANS = 100_000


def _topics(topic_factory) -> dict[str, str]:
    return {
        "spans_topic": topic_factory(1),
        "metrics_topic": topic_factory(1),
        "signals_topic": topic_factory(1),
        "deadletter_topic": topic_factory(1),
    }


def _signals(consume_all, topic: str) -> list[SignalWindow]:
    return [SignalWindow.from_json(r.value) for r in consume_all(topic, idle=1.0)]


def _recent_start_ns(seconds_ago: int) -> int:
    # Near the wall clock, where the SDK stamps the metric points too.
    return (time.time_ns() // WINDOW_NS) * WINDOW_NS - seconds_ago * 10**9


@pytest.mark.parametrize(
    ("encoding", "metrics_over"), [("otlp_proto", "grpc"), ("otlp_json", "http")]
)
def test_sdk_spans_and_metrics_through_the_collector_give_exact_signals(
    encoding: str,
    metrics_over: str,
    tmp_path: Path,
    topic_factory,
    consume_all,
    collector_factory,
    kafka_bootstrap: str,
) -> None:
    topics = _topics(topic_factory)
    collector = collector_factory(
        kafka_bootstrap, topics["spans_topic"], topics["metrics_topic"], encoding=encoding
    )
    shop = Shop.over(
        {"checkout": ("grpc", collector.grpc), "payment": ("http", collector.http)},
        queue=N_SPANS,
    )
    shop.emit(N_SPANS, seed=17, start_ns=_recent_start_ns(60))
    assert shop.flush(), "the SDK could not flush its spans to the Collector"
    shop.shutdown()
    acked = shop.acked()
    assert (len(acked), shop.failed()) == (N_SPANS, 0)
    endpoint = collector.grpc if metrics_over == "grpc" else collector.http
    send_memory_gauges(metrics_over, endpoint, "payment", usage=192 * MIB, limit=256 * MIB)

    # Everything accepted is in Kafka before the flow starts reading to the end.
    wait_for_metric(collector.metrics_url, "otelcol_exporter_sent_spans", N_SPANS, exporter="kafka")
    wait_for_metric(
        collector.metrics_url, "otelcol_exporter_sent_metric_points", 2, exporter="kafka"
    )
    assert (
        collector_metric(
            collector.metrics_url, "otelcol_exporter_send_failed_spans", exporter="kafka"
        )
        == 0
    )
    records = consume_all(topics["spans_topic"], idle=1.0)
    first = records[0].value or b""
    assert first.startswith(b"{") == (encoding == "otlp_json"), first[:40]

    run_flow(kafka_bootstrap, topics, tmp_path / "state")

    signals = _signals(consume_all, topics["signals_topic"])
    assert_matches_truth(signals, truth_of(acked), WINDOW_NS)
    memory = {(s.service, s.utilization, s.value) for s in signals if s.metric == "memory"}
    assert memory == {("payment", 0.75, 192 * MIB)}
    assert consume_all(topics["deadletter_topic"], idle=1.0) == []


def _span_ids_in_kafka(consume_all, topic: str) -> list[bytes]:
    ids = []
    for record in consume_all(topic, idle=1.0):
        request = ExportTraceServiceRequest()
        request.ParseFromString(record.value or b"")
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                ids.extend(s.span_id for s in ss.spans)
    return ids


def test_a_collector_restart_mid_stream_loses_nothing_it_acknowledged(
    tmp_path: Path, topic_factory, consume_all, collector_factory, kafka_bootstrap: str
) -> None:
    """SIGTERM drains the batch processor and the exporter's queue; the SDK retries meanwhile.

    Collector: batch 200 ms, in-memory sending queue of 1000 batches, retries for up to 300 s
    (deploy/otel-collector.yaml). SDK: export timeout 30 s with its own retries, queue of all spans.
    """
    topics = _topics(topic_factory)
    collector = collector_factory(kafka_bootstrap, topics["spans_topic"], topics["metrics_topic"])
    n, chunks = 30_000, 30
    shop = Shop.over({"checkout": ("grpc", collector.grpc), "payment": ("http", collector.http)}, n)
    start = _recent_start_ns(60)
    restarted = threading.Event()

    def restart() -> None:
        # Exit status 1: the Collector's last push of its own metrics finds its receiver closed
        # (deploy/otel-collector.yaml). What matters is that the pipelines drained first.
        collector.stop()
        time.sleep(1.0)  # the SDK's exports fail meanwhile and are retried
        collector.start()
        restarted.set()

    per_chunk = n // chunks
    for c in range(chunks):
        shop.emit(per_chunk, seed=100 + c, start_ns=start + c * 10**9 // 5, offset=c)
        if c == chunks // 2:
            threading.Thread(target=restart, daemon=True).start()
        time.sleep(0.1)
    assert restarted.wait(120), "the Collector did not come back"
    assert shop.flush(), "the SDK could not flush its spans after the restart"
    shop.shutdown()
    acked = shop.acked()
    assert len(acked) == n, f"acknowledged {len(acked)} of {n}; {shop.failed()} failed for good"

    # The restart really split the stream: the second Collector accepted some spans, not all.
    after = collector_metric(collector.metrics_url, "otelcol_receiver_accepted_spans")
    assert 0 < after < n, f"the restarted Collector accepted {after} of {n} spans"
    deadline = time.monotonic() + 120
    in_kafka: list[bytes] = []
    want = {s.context.span_id.to_bytes(8, "big") for s in acked}
    while time.monotonic() < deadline and not want <= set(in_kafka):
        in_kafka = _span_ids_in_kafka(consume_all, topics["spans_topic"])
    assert want <= set(in_kafka), f"{len(want - set(in_kafka))} acknowledged spans are not in Kafka"

    run_flow(kafka_bootstrap, topics, tmp_path / "state")
    signals = _signals(consume_all, topics["signals_topic"])
    # Exact on what Kafka holds: a retried batch may be there twice (at-least-once), never zero.
    duplicates = len(in_kafka) - len(set(in_kafka))
    assert sum(s.count for s in signals if s.kind == "span") == n + duplicates
    if duplicates == 0:
        assert_matches_truth(signals, truth_of(acked), WINDOW_NS)


def test_an_encoding_the_flow_cannot_read_becomes_dead_letters(
    tmp_path: Path, topic_factory, consume_all, collector_factory, kafka_bootstrap: str
) -> None:
    """zipkin_json is a valid Collector encoding but not OTLP: every message is a dead letter."""
    topics = _topics(topic_factory)
    collector = collector_factory(
        kafka_bootstrap, topics["spans_topic"], topics["metrics_topic"], encoding="zipkin_json"
    )
    shop = Shop.over({"checkout": ("grpc", collector.grpc)}, 2_000)
    shop.emit(2_000, seed=3, start_ns=_recent_start_ns(60))
    assert shop.flush()
    shop.shutdown()
    wait_for_metric(collector.metrics_url, "otelcol_exporter_sent_spans", 2_000, exporter="kafka")
    records = consume_all(topics["spans_topic"], idle=1.0)
    assert records and all((r.value or b"").startswith(b"[") for r in records)

    run_flow(kafka_bootstrap, topics, tmp_path / "state")

    dead = [json.loads(r.value) for r in consume_all(topics["deadletter_topic"], idle=1.0)]
    assert sorted(d["offset"] for d in dead) == [r.offset for r in records]
    assert all(d["source"] == topics["spans_topic"] and d["reason"] for d in dead)
    assert [s for s in _signals(consume_all, topics["signals_topic"]) if s.kind == "span"] == []


def test_an_unknown_encoding_name_stops_the_collector_with_a_clear_error(tmp_path: Path) -> None:
    env = {
        "OTELCOL_SPANS_ENCODING": "otlp_yaml",
        "OTELCOL_KAFKA_BROKERS": "127.0.0.1:1",
        "OTELCOL_HEALTH": "127.0.0.1:0",
        "OTELCOL_OTLP_GRPC": "127.0.0.1:0",
        "OTELCOL_OTLP_HTTP": "127.0.0.1:0",
        "OTELCOL_METRICS_HOST": "127.0.0.1",
        "OTELCOL_METRICS_PORT": "0",
    }
    began = time.monotonic()
    done = subprocess.run(
        [str(binary("collector")), f"--config={COLLECTOR_CONFIG}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert 'unrecognized traces encoding "otlp_yaml"' in done.stderr, done.stderr[-2000:]
    assert time.monotonic() - began < 30
