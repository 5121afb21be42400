"""The official OpenTelemetry Python SDK as the workload: spans with known times, and the truth.

Each service gets its own TracerProvider (its resource names the service) and its own OTLP
exporter, gRPC or HTTP. Exporters are wrapped to record exactly which spans the Collector
acknowledged; the truth is computed from those spans, so the flow's signals can be compared with
what the SDK saw accepted, not with what it merely tried to send.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from bench.workload import OPERATIONS, Truth

# Generous: the restart test needs the SDK to retry through a Collector that is briefly away.
EXPORT_TIMEOUT_S = 30.0
MIB = 1024 * 1024


class AckingExporter(SpanExporter):
    """Passes spans on and keeps those the receiver acknowledged (export returned SUCCESS)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.acked: list[ReadableSpan] = []
        self.failed = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        with self._lock:
            if result == SpanExportResult.SUCCESS:
                self.acked.extend(spans)
            else:
                self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def span_exporter(protocol: str, endpoint: str) -> SpanExporter:
    """An OTLP span exporter: `grpc` to host:port, or `http` to http://host:port/v1/traces."""
    if protocol == "grpc":
        return GrpcSpanExporter(endpoint=endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S)
    return HttpSpanExporter(endpoint=f"http://{endpoint}/v1/traces", timeout=EXPORT_TIMEOUT_S)


@dataclass
class Shop:
    """Services, each with its TracerProvider and acknowledging exporter."""

    tracers: dict[str, TracerProvider] = field(default_factory=dict)
    exporters: dict[str, AckingExporter] = field(default_factory=dict)

    @classmethod
    def over(cls, services: dict[str, tuple[str, str]], queue: int) -> Shop:
        """`services`: name -> (protocol, endpoint). `queue` spans fit in each SDK queue."""
        shop = cls()
        for name, (protocol, endpoint) in services.items():
            exporter = AckingExporter(span_exporter(protocol, endpoint))
            provider = TracerProvider(resource=Resource.create({"service.name": name}))
            provider.add_span_processor(
                BatchSpanProcessor(
                    exporter,
                    max_queue_size=queue,
                    max_export_batch_size=1024,
                    schedule_delay_millis=100,
                    export_timeout_millis=int(EXPORT_TIMEOUT_S * 1000) * 2,
                )
            )
            shop.tracers[name] = provider
            shop.exporters[name] = exporter
        return shop

    def emit(
        self, n: int, *, seed: int, start_ns: int, rate_per_s: float = 5_000.0, offset: int = 0
    ) -> None:
        """`n` server spans, seeded: services round-robin, about 20 ms median, 3% errors."""
        rng = np.random.default_rng(seed)
        names = sorted(self.tracers)
        tracers = [self.tracers[s].get_tracer("sre-space.tests") for s in names]
        ops = rng.integers(0, len(OPERATIONS), size=n)
        end = start_ns + np.cumsum(rng.exponential(1e9 / rate_per_s, size=n).astype(np.int64))
        dur = (rng.lognormal(mean=3.0, sigma=0.8, size=n) * 1e6).astype(np.int64)
        err = rng.random(n) < 0.03
        for i in range(n):
            tracer = tracers[(i + offset) % len(tracers)]
            span = tracer.start_span(
                OPERATIONS[ops[i]], kind=SpanKind.SERVER, start_time=int(end[i] - dur[i])
            )
            if err[i]:
                span.set_status(Status(StatusCode.ERROR, "boom"))
            span.end(end_time=int(end[i]))

    def flush(self, timeout_s: float = 120.0) -> bool:
        return all(p.force_flush(int(timeout_s * 1000)) for p in self.tracers.values())

    def shutdown(self) -> None:
        for provider in self.tracers.values():
            provider.shutdown()

    def acked(self) -> list[ReadableSpan]:
        return [s for e in self.exporters.values() for s in e.acked]

    def failed(self) -> int:
        return sum(e.failed for e in self.exporters.values())


def truth_of(spans: Sequence[ReadableSpan]) -> Truth:
    """The exact per-span figures `bench.workload.expected_signals` needs."""
    return Truth(
        service=np.array([str(s.resource.attributes["service.name"]) for s in spans]),
        operation=np.array([s.name for s in spans]),
        end_ns=np.array([s.end_time for s in spans], dtype=np.int64),
        duration_ns=np.array([(s.end_time or 0) - (s.start_time or 0) for s in spans], np.int64),
        error=np.array([s.status.status_code == StatusCode.ERROR for s in spans]),
    )


def send_memory_gauges(protocol: str, endpoint: str, service: str, usage: int, limit: int) -> None:
    """One collection of container memory usage and limit gauges, exported once over OTLP."""
    if protocol == "grpc":
        exporter: GrpcMetricExporter | HttpMetricExporter = GrpcMetricExporter(
            endpoint=endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S
        )
    else:
        exporter = HttpMetricExporter(
            endpoint=f"http://{endpoint}/v1/metrics", timeout=EXPORT_TIMEOUT_S
        )
    # A long interval: points come from the explicit flush below and from shutdown; the values
    # are constant, so the window's usage and limit are known either way.
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": service, "k8s.pod.name": f"{service}-0"}),
        metric_readers=[reader],
    )
    meter = provider.get_meter("sre-space.tests")

    def gauge(value: int):  # type: ignore[no-untyped-def]
        def observe(_options: CallbackOptions) -> list[Observation]:
            return [Observation(value)]

        return observe

    meter.create_observable_gauge("container.memory.usage", [gauge(usage)], unit="By")
    meter.create_observable_gauge("k8s.container.memory_limit", [gauge(limit)], unit="By")
    if not provider.force_flush(int(EXPORT_TIMEOUT_S * 1000)):
        raise AssertionError(f"the SDK could not export metrics to {protocol}://{endpoint}")
    provider.shutdown()
