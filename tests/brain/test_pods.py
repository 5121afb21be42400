"""Pod metrics as evidence (`sinks.brain.pods`), on a made-up layout: a gateway calls a ledger of
three pods, which reads from a vault. Traces go round-robin over the ledger pods."""

from __future__ import annotations

import random
from typing import Any

import polars as pl

from sinks.brain.config import DiagnosisConfig
from sinks.brain.engine import analyze
from sinks.brain.pods import classify_metric, pod_findings, pod_series
from sinks.brain.population import analyze_population
from sre_space.records import SignalWindow
from tests.brain.builders import MS, T0, S, frame

PODS = ("ledger-7f9-a", "ledger-7f9-b", "ledger-7f9-c")
INSTANCE_IDS = {"ledger-7f9-a": "uuid-a", "ledger-7f9-b": "uuid-b", "ledger-7f9-c": "uuid-c"}
WINDOW_MS = 60_000
TRACES = 150  # per window
BASELINE = (T0, T0 + WINDOW_MS * MS)
WINDOW = (T0 + WINDOW_MS * MS, T0 + 2 * WINDOW_MS * MS)


def _trace(pod: str, ledger_ms: float, vault_ms: float) -> list[S]:
    pod_attrs = {"k8s.pod.name": pod}
    l0 = 1.5
    lc0 = l0 + ledger_ms / 2
    v0 = lc0 + 0.5
    v1 = v0 + vault_ms
    lc1 = v1 + 0.5
    l1 = lc1 + ledger_ms / 2
    return [
        S("g", "", "gateway", "GET /transfer", 0, l1 + 1.5),
        S("gc", "g", "gateway", "ledger.Post", 1, l1 + 0.5, kind=3),
        S("l", "gc", "ledger", "ledger.Post", l0, l1, attrs=pod_attrs),
        S("lc", "l", "ledger", "vault.Read", lc0, lc1, kind=3, attrs=pod_attrs),
        S("v", "lc", "vault", "vault.Read", v0, v1),
    ]


def _spans(slow_pod: str | None = None, slow_vault: float = 0.0, seed: int = 7) -> pl.DataFrame:
    """Baseline then incident window; `slow_pod`'s own work and the vault slow down in the incident."""
    rng = random.Random(seed)
    frames = []
    for w in (0, 1):
        for i in range(TRACES):
            pod = PODS[i % len(PODS)]
            ledger = rng.uniform(8.0, 12.0) + (40.0 if w and pod == slow_pod else 0.0)
            vault = rng.uniform(4.0, 6.0) + (slow_vault if w else 0.0)
            offset = w * WINDOW_MS + i * WINDOW_MS / TRACES
            frames.append(frame(_trace(pod, ledger, vault), trace=f"w{w}t{i}", offset_ms=offset))
    spans = pl.concat(frames)
    ids = pl.col("k8s.pod.name").replace_strict(INSTANCE_IDS, default="")
    return spans.with_columns(ids.alias("service.instance.id"))


def _cpu(
    rising: str | None, key: str = "k8s.pod.name", seed: int = 3, metric: str = "k8s.pod.cpu.usage"
) -> list[dict[str, Any]]:
    """One point every 5 s per ledger pod over both windows; `rising` goes 0.2 -> 0.9 cores."""
    rng = random.Random(seed)
    out = []
    for step in range(2 * WINDOW_MS // 5000):
        at = T0 + step * 5000 * MS
        for pod in PODS:
            high = rising == pod and at >= WINDOW[0]
            instance = pod if key == "k8s.pod.name" else INSTANCE_IDS[pod]
            out.append(
                {
                    "service": "ledger",
                    "metric": metric,
                    "unit": "{cpu}",
                    "time_ns": at,
                    "value": (0.9 if high else 0.2) + rng.uniform(-0.02, 0.02),
                    "attributes": {key: instance} if key else {},
                }
            )
    return out


def _findings(spans: pl.DataFrame, metrics: list[dict[str, Any]]) -> list[Any]:
    cfg = DiagnosisConfig()
    report, inc, base = analyze_population(spans, WINDOW, BASELINE, cfg)
    return pod_findings(metrics, report, inc, base, WINDOW, BASELINE, cfg)


def test_classify_by_semantic_convention_name_and_unit() -> None:
    assert classify_metric("k8s.pod.cpu.usage") == ("cpu", "pod")
    assert classify_metric("container.memory.working_set", "By") == ("memory", "pod")
    assert classify_metric("k8s.pod.network.io", "By") == ("network", "pod")
    assert classify_metric("system.cpu.utilization") == ("cpu", "node")
    assert classify_metric("k8s.node.memory.usage") == ("memory", "node")
    assert classify_metric("process.runtime.usage", "{millicore}") == ("cpu", "pod")
    assert classify_metric("k8s.container.cpu_limit") is None
    assert classify_metric("http.server.request.duration", "s") is None


def test_pod_whose_cpu_rose_with_its_latency_ranks_first() -> None:
    spans = _spans(slow_pod="ledger-7f9-b")
    found = _findings(spans, _cpu(rising="ledger-7f9-b"))
    assert [f.pod for f in found] == ["ledger-7f9-b"]
    top = found[0]
    assert (top.joined_by, top.resource, top.metric) == ("k8s.pod.name", "cpu", "k8s.pod.cpu.usage")
    assert top.change > 3.0 and abs(top.peers_change) < 0.1
    # One trace in three goes through the pod, each 40 ms slower: about 13 of the ~13 ms rise.
    assert 0.8 <= top.explained <= 1.0
    assert top.served_inc_ms - top.served_base_ms > 10.0
    assert top.correlation is not None and top.correlation > 0.8
    assert set(top.trace_ids) <= set(
        spans.filter(pl.col("k8s.pod.name") == "ledger-7f9-b").get_column("trace_id").to_list()
    )

    diagnosis = analyze(
        spans, WINDOW, BASELINE, metrics=_cpu(rising="ledger-7f9-b"), cfg=DiagnosisConfig()
    ).diagnosis
    first = diagnosis.candidates[0]
    assert first.service == "ledger" and first.fault_class == "cpu_saturation"
    pod_evidence = [e for e in first.evidence if e.kind == "pod_cpu"]
    assert len(pod_evidence) == 1
    assert "ledger-7f9-b" in pod_evidence[0].description
    assert "k8s.pod.cpu.usage" in pod_evidence[0].description
    assert pod_evidence[0].incident is not None and pod_evidence[0].incident > 0.8
    assert pod_evidence[0].trace_ids == top.trace_ids


def test_a_busier_pod_that_served_no_slower_requests_is_not_blamed() -> None:
    # The vault slows down; one ledger pod's CPU rises but its own work does not.
    spans = _spans(slow_vault=15.0)
    assert _findings(spans, _cpu(rising="ledger-7f9-c")) == []
    diagnosis = analyze(
        spans, WINDOW, BASELINE, metrics=_cpu(rising="ledger-7f9-c"), cfg=DiagnosisConfig()
    ).diagnosis
    assert diagnosis.candidates[0].service == "vault"
    for candidate in diagnosis.candidates:
        assert not [e for e in candidate.evidence if e.kind.startswith("pod_")]


def test_cpu_that_did_not_move_beyond_its_peers_is_not_blamed() -> None:
    # Every pod's CPU rises together (more traffic): no pod stands out, even the slow one.
    metrics = [
        p
        for rising in PODS
        for p in _cpu(rising=rising)
        if p["attributes"]["k8s.pod.name"] == rising
    ]
    assert _findings(_spans(slow_pod="ledger-7f9-b"), metrics) == []


def test_join_falls_back_to_instance_id_then_service_name() -> None:
    spans = _spans(slow_pod="ledger-7f9-b")
    by_id = _findings(spans, _cpu(rising="ledger-7f9-b", key="service.instance.id"))
    assert [(f.pod, f.joined_by) for f in by_id] == [("uuid-b", "service.instance.id")]
    assert by_id[0].explained > 0.8

    # Spans without the pod name: the pod's series joins on its instance id.
    no_pod = spans.with_columns(pl.lit("").alias("k8s.pod.name"))
    metrics = _cpu(rising="ledger-7f9-b")
    for p in metrics:
        p["attributes"]["service.instance.id"] = INSTANCE_IDS[p["attributes"]["k8s.pod.name"]]
    found = _findings(no_pod, metrics)
    assert [(f.pod, f.joined_by) for f in found] == [("ledger-7f9-b", "service.instance.id")]

    # Neither attribute on the spans: the whole service's spans stand for the pod.
    bare = no_pod.with_columns(pl.lit("").alias("service.instance.id"))
    found = _findings(bare, _cpu(rising="ledger-7f9-b"))
    assert [(f.pod, f.joined_by) for f in found] == [("ledger-7f9-b", "service.name")]
    assert 0.8 <= found[0].explained <= 1.0

    # A series that names no instance is the service's own.
    unnamed = [
        p
        for p in _cpu(rising="ledger-7f9-b", key="")
        if p["value"] > 0.5 or p["time_ns"] < WINDOW[0]
    ]
    found = _findings(bare, unnamed)
    assert [(f.pod, f.joined_by) for f in found] == [("ledger", "service.name")]


def test_flow_metric_signals_are_read_with_their_instance() -> None:
    signal = SignalWindow(
        kind="metric",
        window_start=WINDOW[0],
        window_end=WINDOW[0] + 10 * 10**9,
        service="ledger",
        metric="container.cpu.usage",
        value=0.9,
        mean=0.8,
        unit="{cpu}",
        attributes={"k8s.pod.name": "ledger-7f9-b", "cpu.mode": "user"},
    )
    rows = pod_series([signal]).to_dicts()
    assert len(rows) == 1
    row = rows[0]
    assert (row["k8s.pod.name"], row["service.instance.id"], row["resource"]) == (
        "ledger-7f9-b",
        "",
        "cpu",
    )
    assert row["series"] == "container.cpu.usage{cpu.mode=user}" and row["value"] == 0.8


def test_without_metric_history_the_siblings_are_the_reference() -> None:
    spans = _spans(slow_pod="ledger-7f9-b")
    window_only = [p for p in _cpu(rising="ledger-7f9-b") if p["time_ns"] >= WINDOW[0]]
    found = _findings(spans, window_only)
    assert [(f.pod, f.reference) for f in found] == [("ledger-7f9-b", "sibling instances")]
    assert 0.15 < found[0].baseline < 0.25 and found[0].incident > 0.85 and found[0].change > 2.0
