"""Any gauge or sum is a signal per series; bad metric input is a signal too, never a crash.

NaN and infinite values, negative counters, counter resets, duplicate and out-of-order points,
and a service whose attribute sets explode: each ends as a series value, a `late` or a pipeline
signal, every point counted somewhere.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

from bench.otlp_encode import PointSpec, metrics_request
from flows.replay import replay
from operators.otlp import decode_metrics_proto
from operators.scout.detect.config import DetectionConfig
from operators.scout.detect.series import SeriesDetector
from operators.signals import SignalSpec, finalize, metric_partials
from operators.signals.aggregate import INVALID_POINTS, SERIES_OVERFLOW
from operators.signals.limit import SeriesLimit
from operators.signals.partials import MetricPartial
from sre_space.records import Anomaly, SignalWindow, read_jsonl
from sre_space.settings import PipelineConfig, load_pipeline_config

CONFIG = load_pipeline_config()
SPEC = SignalSpec.from_config(CONFIG)
W = SPEC.window_ns
T0 = 1_767_571_200 * 10**9
POD = {"service.name": "api", "k8s.pod.name": "api-0"}


def _record(path: Path, requests: list[list[tuple[dict[str, str], list[PointSpec]]]]) -> Path:
    # The Collector file exporter's proto format: 4-byte big-endian length prefixes.
    blobs = [metrics_request(r).SerializeToString() for r in requests]
    path.write_bytes(b"".join(struct.pack(">I", len(b)) + b for b in blobs))
    return path


def _signals(tmp_path: Path, requests: list, config: PipelineConfig = CONFIG) -> list[SignalWindow]:
    rec = _record(tmp_path / "rec.pb", requests)
    return read_jsonl(str(replay([rec], tmp_path / "out", config)["signals"]), SignalWindow)


def _partials(points: list[PointSpec], resource: dict[str, str] = POD) -> list[SignalWindow]:
    batch = decode_metrics_proto(metrics_request([(resource, points)]).SerializeToString())
    return [finalize(p, W) for p in metric_partials(batch, SPEC)]


def test_any_gauge_or_sum_is_a_series_per_instance_and_point_attributes() -> None:
    sigs = _partials(
        [
            PointSpec("nab.value", 3.5, T0 + 1),
            PointSpec("http.server.active_requests", 4, T0 + 1, attributes={"http.method": "GET"}),
            PointSpec("http.server.active_requests", 1, T0 + 2, attributes={"http.method": "PUT"}),
            PointSpec("system.disk.io", 7, T0 + 1, is_sum=True, monotonic=True),
        ]
    )
    by_key = {s.key: s for s in sigs}
    assert set(by_key) == {
        ("metric", "api", "nab.value{k8s.pod.name=api-0}"),
        ("metric", "api", "http.server.active_requests{http.method=GET,k8s.pod.name=api-0}"),
        ("metric", "api", "http.server.active_requests{http.method=PUT,k8s.pod.name=api-0}"),
        ("metric", "api", "system.disk.io{k8s.pod.name=api-0}"),
    }
    disk = by_key[("metric", "api", "system.disk.io{k8s.pod.name=api-0}")]
    assert disk.temporality == "cumulative" and disk.value == 7.0
    # a resource without an instance attribute is one series named by the metric alone
    [plain] = _partials([PointSpec("nab.value", 2.0, T0)], {"service.name": "nab.x"})
    assert plain.key == ("metric", "nab.x", "nab.value") and plain.attributes is None


def test_opt_out_by_name_and_saturation_inputs_are_not_series_twice(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("metrics:\n  series:\n    exclude: ['system.*']\n", encoding="utf-8")
    spec = SignalSpec.from_config(load_pipeline_config(site))
    points = [
        PointSpec("system.cpu.time", 1.0, T0, is_sum=True),
        PointSpec("queue.size", 2.0, T0),
        PointSpec("container.memory.usage", 10.0, T0),  # feeds the memory saturation signal
    ]
    batch = decode_metrics_proto(metrics_request([(POD, points)]).SerializeToString())
    assert sorted(p.metric for p in metric_partials(batch, spec)) == ["memory", "queue.size"]


def test_delta_sums_report_the_window_s_total() -> None:
    batch = decode_metrics_proto(
        metrics_request(
            [(POD, [PointSpec("req", 3, T0), PointSpec("req", 4, T0 + 1)])]
        ).SerializeToString()
    )
    # bench's encoder writes cumulative sums; flip these two points to delta
    batch.temporality[:] = ["delta", "delta"]
    batch.is_sum[:] = [True, True]
    [sig] = [finalize(p, W) for p in metric_partials(batch, SPEC)]
    assert (sig.temporality, sig.value, sig.count) == ("delta", 7.0, 2)


def test_nan_infinities_and_negative_counters_are_counted_not_crashed_on(tmp_path: Path) -> None:
    good = [PointSpec("temp", 20.0 + i, T0 + i * 10**9) for i in range(3)]
    bad = [
        PointSpec("temp", math.nan, T0 + 4 * 10**9),
        PointSpec("temp", math.inf, T0 + 5 * 10**9),
        PointSpec("temp", -math.inf, T0 + 6 * 10**9),
        PointSpec("errors", -3, T0 + 7 * 10**9, is_sum=True, monotonic=True),
        PointSpec("container.memory.usage", math.nan, T0 + 8 * 10**9),  # a saturation input
    ]
    later = [PointSpec("temp", 1.0, T0 + 40 * 10**9)]  # closes the first window
    sigs = _signals(tmp_path, [[(POD, good + bad)], [(POD, later)]])
    invalid = [s for s in sigs if s.metric == INVALID_POINTS]
    assert [(s.kind, s.service, s.value) for s in invalid] == [("pipeline", "api", 5.0)]
    [temp] = [s for s in sigs if s.metric == "temp" and s.window_start == T0]
    assert (temp.count, temp.value, temp.min, temp.max) == (3, 22.0, 20.0, 22.0)
    assert not [s for s in sigs if s.metric in ("errors", "memory")]


def test_duplicate_and_out_of_order_points_give_the_newest_point(tmp_path: Path) -> None:
    t = [T0 + i * 10**9 for i in range(4)]
    points = [
        PointSpec("depth", 5.0, t[2]),
        PointSpec("depth", 9.0, t[3]),
        PointSpec("depth", 9.0, t[3]),  # a duplicate
        PointSpec("depth", 1.0, t[0]),  # out of order within the window
    ]
    late = [PointSpec("depth", 2.0, T0 + 1)]  # after its window closed
    after = [PointSpec("depth", 3.0, T0 + 60 * 10**9)]
    sigs = _signals(tmp_path, [[(POD, points)], [(POD, after)], [(POD, late)]])
    first = next(s for s in sigs if s.metric == "depth")
    assert (first.window_start, first.value, first.count, first.min) == (T0, 9.0, 4, 1.0)
    assert [s.late for s in sigs if s.metric == "late"] == [1]


def test_a_counter_reset_is_no_negative_rate() -> None:
    det = SeriesDetector(DetectionConfig())
    values = [100.0 * i for i in range(40)] + [5.0 + 100.0 * i for i in range(20)]
    out = []
    for i, v in enumerate(values):
        sig = SignalWindow(
            kind="metric",
            service="api",
            metric="requests",
            window_start=T0 + i * W,
            window_end=T0 + (i + 1) * W,
            value=v,
            temporality="cumulative",
            attributes={"k8s.pod.name": "api-0"},
        )
        out += det.on_signal(sig)
    # the rate is the same 10/s before and after the restart of the counter: nothing to say,
    # and the window of the reset is skipped, not learnt as a negative rate
    assert not [d.item for d in out if isinstance(d.item, Anomaly)]
    model = det.fields["rate"].model
    assert model is not None and model.skipped == 0
    assert model.n == len(values) - 2  # the first point and the reset have no rate
    # the forecaster learns a counter as its increase per sampling step: every one was 100 (10/s)
    assert det.count_step == W / 1e9
    assert abs(model.models[0].level - 100.0) < 1e-6


def test_a_million_attribute_sets_are_capped_and_counted() -> None:
    cap = 1000
    limit = SeriesLimit(cap, idle_ns=3600 * 10**9, window_ns=W)
    admitted = overflow = 0
    for i in range(1_000_000):
        part = MetricPartial("api", "hits", 0, T0, "", True, attributes={"user.id": str(i)})
        part.add_usage("", T0, 1.0)
        [out] = limit.admit(part)
        assert isinstance(out, MetricPartial)
        if out.pipeline:
            assert out.metric == SERIES_OVERFLOW and out.key == f"pipeline|api|{SERIES_OVERFLOW}"
            overflow += out.n
        else:
            admitted += 1
    assert (admitted, overflow) == (cap, 1_000_000 - cap)  # every point in some signal
    assert len(limit.seen) == cap  # state stays bounded


def test_idle_series_give_their_place_back() -> None:
    limit = SeriesLimit(2, idle_ns=60 * 10**9, window_ns=W)

    def part(name: str, ts: int) -> MetricPartial:
        p = MetricPartial("api", name, ts // W, ts, "", False)
        p.add_usage("", ts, 1.0)
        return p

    assert not limit.admit(part("a", T0))[0].pipeline  # type: ignore[union-attr]
    assert not limit.admit(part("b", T0))[0].pipeline  # type: ignore[union-attr]
    assert limit.admit(part("c", T0 + W))[0].pipeline  # type: ignore[union-attr]
    limit.admit(part("b", T0 + 100 * 10**9))  # b stays busy, a goes idle
    assert not limit.admit(part("c", T0 + 120 * 10**9))[0].pipeline  # type: ignore[union-attr]
    assert set(limit.seen) == {"metric|api|b", "metric|api|c"}


def test_an_attribute_explosion_through_the_flow_is_a_pipeline_anomaly(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("metrics:\n  series: {max_per_service: 20}\n", encoding="utf-8")
    config = load_pipeline_config(site)
    requests = []
    for w in range(6):
        ts = T0 + w * W
        points = [
            PointSpec("hits", 1.0, ts, attributes={"user.id": f"u{w}-{i}"}) for i in range(50)
        ]
        requests.append([(POD, points)])
    sigs = _signals(tmp_path, requests, config)
    series = {s.key for s in sigs if s.metric == "hits"}
    overflow = [s for s in sigs if s.metric == SERIES_OVERFLOW]
    assert len(series) == 20
    assert sum(s.count for s in sigs if s.metric == "hits") + sum(s.count for s in overflow) == 300
    det = SeriesDetector(DetectionConfig())
    fired = [d.item for s in overflow for d in det.on_signal(s) if isinstance(d.item, Anomaly)]
    assert [(a.kind, a.service, a.detector) for a in fired] == [("pipeline", "api", "threshold")]
