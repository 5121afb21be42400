"""Live mode against the real broker: publish what the Collector would, read it back."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chaos import control
from chaos.live import kafka_publisher, run_live
from chaos.shop import Shop, ShopConfig


def test_live_shop_publishes_otlp_proto_and_obeys_the_control_file(
    kafka_bootstrap: str,
    topic_factory,
    consume_all,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    spans_topic, metrics_topic = topic_factory(), topic_factory()
    state = tmp_path / "state"
    shop = Shop(
        seed=1, gitops_path=state / "gitops", config=ShopConfig(rate_rps=5, metric_interval_s=5)
    )
    publish, flush = kafka_publisher(kafka_bootstrap, spans_topic, metrics_topic)
    sent = {"spans": 0, "metrics": 0}

    def counting(batch):  # type: ignore[no-untyped-def]
        sent[batch.kind] += 1
        publish(batch)

    control.send(state, {"cmd": "inject", "scenario": "errors"})  # before start: history, ignored
    run_live(shop, counting, state, speed=200.0, duration_s=20, log=lambda _m: None)
    assert flush() == 0
    assert shop.injections == {}
    spans = consume_all(spans_topic, min_messages=sent["spans"])
    metrics = consume_all(metrics_topic, min_messages=sent["metrics"])
    assert len(spans) == sent["spans"] >= 19 and len(metrics) == sent["metrics"] == 4
    n = 0
    for rec in spans:
        assert rec.key is None
        req = ExportTraceServiceRequest()
        req.ParseFromString(rec.value)
        n += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        assert all(
            len(sp.trace_id) == 16
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for sp in ss.spans
        )
    assert n > 200
    for rec in metrics:
        req = ExportMetricsServiceRequest()
        req.ParseFromString(rec.value)
        assert {
            m.name for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        } >= {"container.memory.usage", "k8s.container.restarts"}
