"""ExportMetricsServiceRequest (proto or OTLP/JSON) to MetricBatch: gauge and sum data points.

Metric volume is small next to spans (one point per series per collection interval), so points
are plain parallel lists. Histograms and summaries are accepted and skipped: the span path already
gives latency distributions. A sum's aggregation temporality and monotonicity come from the data:
a cumulative sum is judged on its rate, whatever its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError as ProtoDecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from operators.otlp.errors import DecodeError, DecodeLimits
from operators.otlp.json_traces import load_json
from operators.otlp.values import json_attrs, proto_attrs, value_size

# Resource attributes that name the instance a metric point comes from, the first present wins.
INSTANCE_KEYS = ("k8s.pod.name", "service.instance.id", "host.name")
# OTLP AggregationTemporality: 1 DELTA, 2 CUMULATIVE (0 UNSPECIFIED is read as neither)
_TEMPORALITY = {
    1: "delta",
    2: "cumulative",
    "AGGREGATION_TEMPORALITY_DELTA": "delta",
    "AGGREGATION_TEMPORALITY_CUMULATIVE": "cumulative",
}


@dataclass(slots=True)
class MetricBatch:
    """Data points of one export request, one entry per point."""

    service: list[str] = field(default_factory=list)
    instance: list[str] = field(default_factory=list)
    metric: list[str] = field(default_factory=list)
    unit: list[str] = field(default_factory=list)
    is_sum: list[bool] = field(default_factory=list)
    ts_ns: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)
    # "cumulative" or "delta" for sums, "" for gauges (and sums of unspecified temporality)
    temporality: list[str] = field(default_factory=list)
    monotonic: list[bool] = field(default_factory=list)
    # the resource attribute the instance was read from (`k8s.pod.name`, ...), "" when none
    instance_key: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.value)

    def add(
        self,
        service: str,
        instance: str,
        metric: str,
        unit: str,
        is_sum: bool,
        ts_ns: int,
        value: float,
        attributes: dict[str, Any],
        temporality: str = "",
        monotonic: bool = False,
        instance_key: str = "",
    ) -> None:
        self.service.append(service)
        self.instance.append(instance)
        self.metric.append(metric)
        self.unit.append(unit)
        self.is_sum.append(is_sum)
        self.ts_ns.append(ts_ns)
        self.value.append(value)
        self.attributes.append(attributes)
        self.temporality.append(temporality)
        self.monotonic.append(monotonic)
        self.instance_key.append(instance_key)


def _resource_identity(attrs: dict[str, Any], index: int) -> tuple[str, str, str]:
    """(service, instance, the attribute the instance came from)."""
    svc = attrs.get("service.name")
    if not isinstance(svc, str) or not svc:
        # The Kubernetes cluster receiver reports a Deployment's replica counts on a resource
        # that names the Deployment, not a service: the Deployment is the service it runs.
        svc = attrs.get("k8s.deployment.name")
    if not isinstance(svc, str) or not svc:
        raise DecodeError(
            f"resourceMetrics[{index}] has no service.name (or k8s.deployment.name) resource"
            " attribute"
        )
    key = next((k for k in INSTANCE_KEYS if attrs.get(k)), "")
    return svc, str(attrs[key]) if key else "", key


def decode_metrics_proto(data: bytes, limits: DecodeLimits | None = None) -> MetricBatch:
    """Decode otlp_proto metrics bytes; DecodeError names what is wrong."""
    limits = limits or DecodeLimits()
    limits.check_size(data)
    req = ExportMetricsServiceRequest()
    try:
        req.ParseFromString(data)
    except ProtoDecodeError as exc:
        raise DecodeError(f"invalid ExportMetricsServiceRequest protobuf: {exc}") from None
    if data and not req.resource_metrics:
        raise DecodeError(
            f"{len(data)} bytes parsed to an ExportMetricsServiceRequest with no resourceMetrics "
            "(wrong message type or garbage)"
        )
    check = len(data) > limits.max_attribute_bytes
    out = MetricBatch()
    for r_index, rm in enumerate(req.resource_metrics):
        attrs = proto_attrs(rm.resource.attributes)
        if check:
            _check_sizes(attrs, limits.max_attribute_bytes)
        svc, instance, ikey = _resource_identity(attrs, r_index)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                which = m.WhichOneof("data")
                if which not in ("gauge", "sum"):
                    continue
                points = m.gauge.data_points if which == "gauge" else m.sum.data_points
                temporality = (
                    _TEMPORALITY.get(m.sum.aggregation_temporality, "") if which == "sum" else ""
                )
                monotonic = which == "sum" and m.sum.is_monotonic
                for p in points:
                    v = p.as_double if p.WhichOneof("value") == "as_double" else float(p.as_int)
                    pattrs = proto_attrs(p.attributes) if p.attributes else {}
                    if check:
                        _check_sizes(pattrs, limits.max_attribute_bytes)
                    out.add(
                        svc,
                        instance,
                        m.name,
                        m.unit,
                        which == "sum",
                        p.time_unix_nano,
                        v,
                        pattrs,
                        temporality,
                        monotonic,
                        ikey,
                    )
    return out


def decode_metrics_json(data: bytes | str, limits: DecodeLimits | None = None) -> MetricBatch:
    """Decode an OTLP/JSON ExportMetricsServiceRequest."""
    limits = limits or DecodeLimits()
    return metrics_json_to_batch(load_json(data, limits), limits)


def metrics_json_to_batch(obj: dict[str, Any], limits: DecodeLimits | None = None) -> MetricBatch:
    """Points from a parsed OTLP/JSON metrics request."""
    limits = limits or DecodeLimits()
    resource_metrics = obj.get("resourceMetrics", obj.get("resource_metrics"))
    if not isinstance(resource_metrics, list):
        raise DecodeError("OTLP/JSON metrics request has no resourceMetrics list")
    out = MetricBatch()
    try:
        for r_index, rm in enumerate(resource_metrics):
            attrs = json_attrs((rm.get("resource") or {}).get("attributes"))
            _check_sizes(attrs, limits.max_attribute_bytes)
            svc, instance, ikey = _resource_identity(attrs, r_index)
            for sm in rm.get("scopeMetrics", rm.get("scope_metrics")) or []:
                for m in sm.get("metrics") or []:
                    temporality, monotonic = "", False
                    if "gauge" in m:
                        points, is_sum = (m["gauge"] or {}).get("dataPoints") or [], False
                    elif "sum" in m:
                        body = m["sum"] or {}
                        points, is_sum = body.get("dataPoints") or [], True
                        raw = body.get("aggregationTemporality", 0)
                        temporality = _TEMPORALITY.get(
                            raw if isinstance(raw, str) else int(raw), ""
                        )
                        monotonic = bool(body.get("isMonotonic", False))
                    else:
                        continue
                    for p in points:
                        if "asDouble" in p:
                            # OTLP/JSON spells non-finite doubles as strings ("NaN", "Infinity")
                            v = float(p["asDouble"])
                        elif "asInt" in p:
                            v = float(int(p["asInt"]))
                        else:
                            continue
                        pattrs = json_attrs(p.get("attributes"))
                        _check_sizes(pattrs, limits.max_attribute_bytes)
                        ts = int(p.get("timeUnixNano", p.get("time_unix_nano")) or 0)
                        out.add(
                            svc,
                            instance,
                            str(m.get("name", "")),
                            str(m.get("unit", "")),
                            is_sum,
                            ts,
                            v,
                            pattrs,
                            temporality,
                            monotonic,
                            ikey,
                        )
    except DecodeError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        raise DecodeError(f"malformed OTLP/JSON metrics request: {exc!r}") from None
    return out


def _check_sizes(attrs: dict[str, Any], limit: int) -> None:
    for key, value in attrs.items():
        size = value_size(value)
        if size > limit:
            raise DecodeError(
                f"attribute {key!r} is {size} bytes, over max_attribute_bytes={limit}"
            )
