"""The Collector's own health as pipeline signals: an export Kafka refuses is seen by the flow.

The spans topic only takes small messages (max.message.bytes 16 KiB, as a misconfigured topic
would), so the broker refuses the Collector's span batches: a permanent error, dropped upstream.
The Collector pushes its own metrics into its own pipeline (deploy/otel-collector.yaml), so the
flow gets `otelcol_exporter_send_failed_spans` as a pipeline signal equal to the Collector's count.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sre_space.records import SignalWindow
from tests.ecosystem.pipeline import collector_metric, run_flow, wait_for_metric
from tests.ecosystem.sdk import Shop

pytestmark = pytest.mark.collector


def test_spans_the_collector_could_not_export_become_a_pipeline_signal(
    tmp_path: Path, topic_factory, consume_all, collector_factory, kafka_bootstrap: str
) -> None:
    topics = {
        "spans_topic": topic_factory(1, config={"max.message.bytes": "16384"}),
        "metrics_topic": topic_factory(1),
        "signals_topic": topic_factory(1),
        "deadletter_topic": topic_factory(1),
    }
    collector = collector_factory(kafka_bootstrap, topics["spans_topic"], topics["metrics_topic"])
    n = 5_000
    shop = Shop.over({"checkout": ("grpc", collector.grpc)}, n)
    shop.emit(n, seed=5, start_ns=time.time_ns() - 60 * 10**9)
    assert shop.flush()
    shop.shutdown()
    # The Collector accepted every span (the SDK cannot tell) and then failed to export them.
    assert len(shop.acked()) == n
    url = collector.metrics_url
    wait_for_metric(url, "otelcol_exporter_send_failed_spans", 1, exporter="kafka")
    failed = -1.0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the count stops moving
        now = collector_metric(url, "otelcol_exporter_send_failed_spans", exporter="kafka")
        if now == failed:
            break
        failed = now
        time.sleep(1.5)
    sent = collector_metric(url, "otelcol_exporter_sent_spans", exporter="kafka")
    assert failed > n / 2 and failed + sent == n
    # Two more self-reports (one a second) after the count settled are in Kafka.
    points = collector_metric(url, "otelcol_exporter_sent_metric_points", exporter="kafka")
    wait_for_metric(url, "otelcol_exporter_sent_metric_points", points + 1, exporter="kafka")
    time.sleep(1.5)
    points = collector_metric(url, "otelcol_exporter_sent_metric_points", exporter="kafka")
    wait_for_metric(url, "otelcol_exporter_sent_metric_points", points + 1, exporter="kafka")

    run_flow(kafka_bootstrap, topics, tmp_path / "state")

    signals = [SignalWindow.from_json(r.value) for r in consume_all(topics["signals_topic"])]
    health = [
        s
        for s in signals
        if s.kind == "pipeline" and s.metric == "otelcol_exporter_send_failed_spans"
    ]
    assert health, sorted({(s.kind, s.metric) for s in signals})
    assert {s.service for s in health} == {"otelcol-sre"}
    # A cumulative count summed over the Collector's exporters: its last value is the total.
    assert max(s.value or 0.0 for s in health) == failed
    assert sum(s.count for s in signals if s.kind == "span") == sent
