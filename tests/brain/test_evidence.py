"""Resource and change evidence from plain inputs, scoring helpers and action parameters."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from sinks.brain.changes import commit_changes, flag_changes, version_changes
from sinks.brain.config import DiagnosisConfig
from sinks.brain.engine import analyze
from sinks.brain.population import add_flags
from sinks.brain.resources import resource_evidence
from sinks.brain.scoring import label_commits, label_windows, score_diagnosis, summarize
from sre_space.records import SignalWindow
from sre_space.timeutil import ns_to_rfc3339
from tests.brain.synth import BASELINE, INCIDENT, S, generate

W, B = INCIDENT, BASELINE


def _sw(service: str, metric: str, at: int, **kw: Any) -> SignalWindow:
    return SignalWindow(
        kind="metric",
        window_start=at,
        window_end=at + 10 * S,
        service=service,
        metric=metric,
        **kw,
    )


def test_signal_windows_memory_pool_and_lag() -> None:
    items = [
        _sw("payment", "memory", B[0] + S, value=200.0, limit=512.0, utilization=0.4),
        _sw("payment", "memory", W[0] + S, value=500.0, limit=512.0, utilization=0.97),
        _sw("worker", "messaging.kafka.consumer.lag", B[0] + S, value=3.0),
        _sw("worker", "messaging.kafka.consumer.lag", W[0] + S, value=400.0),
        _sw("checkout", "db.client.connection.count", W[0] + S, value=2.0, limit=2.0),
        _sw("checkout", "db.client.connection.count", B[0] + S, value=5.0, limit=20.0),
        # a span signal is ignored
        SignalWindow(kind="span", window_start=W[0], window_end=W[1]),
    ]
    found = resource_evidence(items, W, B)
    assert {f.kind for f in found["payment"]} == {"memory"}
    assert found["payment"][0].incident == 0.97
    assert found["worker"][0].kind == "lag"
    pool = found["checkout"][0]
    assert pool.kind == "pool" and "shrank from 20 to 2" in pool.description


def test_a_backlog_is_the_total_of_its_consumers_and_its_recent_growth_is_measured() -> None:
    items = [
        _sw("worker", "messaging.kafka.consumer.lag", B[0] + S, value=1.0, attributes=pod)
        for pod in ({"k8s.pod.name": "w-1"}, {"k8s.pod.name": "w-2"})
    ]
    # flat for a minute of the window, then each of two pods' lag grows 1/s
    for i in range(12):
        for pod in ("w-1", "w-2"):
            value = 1.0 if i < 6 else 1.0 + 10.0 * (i - 5)
            at = W[0] + i * 10 * S
            items.append(
                _sw(
                    "worker",
                    "messaging.kafka.consumer.lag",
                    at,
                    value=value,
                    attributes={"k8s.pod.name": pod},
                )
            )
    (lag,) = resource_evidence(items, W, B)["worker"]
    assert lag.detail["backlog"] == 2 * 61.0
    assert lag.detail["recent_growth_per_s"] == pytest.approx(2.0)
    assert lag.detail["growth_per_s"] == pytest.approx(120.0 / 110.0, abs=1e-4)


def test_restart_reasons_from_dict_samples() -> None:
    samples = [
        {
            "service": "shipping",
            "metric": "k8s.container.restarts",
            "time_ns": B[0] + S,
            "value": 0.0,
        },
        {
            "service": "shipping",
            "metric": "k8s.container.restarts",
            "at": ns_to_rfc3339(W[0] + 5 * S),
            "value": 4.0,
            "attributes": {"k8s.container.last_terminated_reason": "CrashLoopBackOff"},
        },
        {"service": "cart", "metric": "k8s.container.restarts", "time_ns": W[0] + S, "value": 0.0},
    ]
    found = resource_evidence(samples, W, B)
    assert [f.kind for f in found["shipping"]] == ["crashloop"]
    assert "cart" not in found


def test_cpu_utilization_is_recognised_by_its_words_and_unit_not_only_its_name() -> None:
    def sample(service: str, metric: str, unit: str, value: float) -> dict[str, Any]:
        at = W[0] + 5 * S
        return {"service": service, "metric": metric, "unit": unit, "time_ns": at, "value": value}

    found = resource_evidence(
        [
            sample("ads", "vendor.pod.cpu_usage_rate", "%", 88.0),
            sample("cart", "vendor.pod.cpu_usage_ratio", "1", 0.97),
            sample("quiet", "vendor.pod.cpu_usage_rate", "%", 12.0),
            sample("node", "vendor.node_cpu_usage_rate", "%", 99.0),  # the machine, not the pod
            sample("bytes", "vendor.pod.cpu_usage", "s", 99.0),  # a time, not a share
            sample("mem", "vendor.pod.memory_usage_rate", "%", 99.0),
        ],
        W,
        B,
    )
    assert {svc: [f.kind for f in fs] for svc, fs in found.items()} == {
        "ads": ["cpu"],
        "cart": ["cpu"],
    }
    assert found["ads"][0].incident == pytest.approx(0.88)


def test_commits_in_both_spellings_and_lookback() -> None:
    onset = W[0]
    commits: list[dict[str, Any]] = [
        {
            "sha": "a" * 40,
            "at": onset - 60 * S,
            "message": "checkout: connection_pool max 20 -> 2",
            "files": ["services/checkout.yaml"],
        },
        {
            "commit": "b" * 40,
            "time": ns_to_rfc3339(onset - 30 * S),
            "subject": "enable flag new_rules",
            "files": ["services/payment.yaml"],
        },
        {
            "sha": "c" * 40,
            "at": onset - 10 * 3600 * S,
            "message": "old",
            "files": ["services/cart.yaml"],
        },
        {"sha": "d" * 40, "at": "not a time"},
    ]
    found = commit_changes(commits, onset, W[1], DiagnosisConfig())
    assert [(c.service, c.sha) for c in found] == [("payment", "b" * 40), ("checkout", "a" * 40)]
    assert "connection_pool" in found[1].topics and "feature_flag" in found[0].topics
    assert found[0].strength > found[1].strength


def test_versions_and_flag_owner() -> None:
    shop = generate("conversion", 2, traces_per_window=60)
    spans = add_flags(shop.spans.with_columns(pl.col("events").fill_null("")))
    inc = spans.filter(pl.col("start_ns") >= W[0])
    base = spans.filter(pl.col("start_ns") < W[0])
    flags = flag_changes(inc, base)
    assert [(f.service, f.value) for f in flags] == [("payment", "new_pricing_rules=on")]
    assert version_changes(base, base) == []
    errors = generate("errors", 2, traces_per_window=60).spans
    v = version_changes(
        errors.filter(pl.col("start_ns") >= W[0]), errors.filter(pl.col("start_ns") < W[0])
    )
    assert [(c.service, c.value, c.previous) for c in v] == [("checkout", "2.1.0", "2.0.3")]


def _versions(rows: list[tuple[int, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"service": ["checkout"] * len(rows), "service_version": [v for _, v in rows]}
        | {"start_ns": [t for t, _ in rows]}
    )


def test_a_deploy_that_fell_into_the_baseline_is_still_a_version_change() -> None:
    # A leak is seen minutes after its deploy: 1.4.3 replaced 1.4.2 five minutes into the baseline.
    base = _versions([(B[0] + i * 10 * S, "1.4.2" if i < 30 else "1.4.3") for i in range(60)])
    inc = _versions([(W[0] + i * 10 * S, "1.4.3") for i in range(12)])
    assert version_changes(inc, base) == []  # the baseline saw it: not new there
    (found,) = version_changes(inc, base, since_ns=B[0])
    assert (found.value, found.previous, found.at_ns) == ("1.4.3", "1.4.2", B[0] + 300 * S)
    assert version_changes(inc, base, since_ns=B[0] + 301 * S) == []  # before the lookback
    # A fleet that runs both versions throughout had no deploy.
    mixed = _versions([(B[0] + i * 10 * S, ("1.4.2", "1.4.3")[i % 2]) for i in range(60)])
    assert version_changes(inc, mixed, since_ns=B[0]) == []


def test_actions_take_their_parameters_from_the_structured_evidence() -> None:
    shop = generate("errors", 1)
    top = analyze(shop.spans, W, B, commits=shop.commits).diagnosis.candidates[0]
    asked = {a.action: a for a in top.actions}
    assert top.action_names[0] == "rollback_version"
    assert (asked["rollback_version"].service, asked["rollback_version"].params) == (
        "checkout",
        {"to_version": "2.0.3"},
    )
    assert asked["revert_commit"].params == {"sha": "abcd" + "0" * 36}
    cited = {e.id: e for e in top.evidence}
    assert len(cited) == len(top.evidence)
    for request in top.actions:
        assert request.evidence and set(request.evidence) <= set(cited), request
    assert {cited[i].kind for i in asked["revert_commit"].evidence} == {"change_commit"}
    conv = analyze(generate("conversion", 1).spans, W, B).diagnosis.candidates[0]
    flag = conv.actions[0]
    assert (flag.action, flag.service, flag.params) == (
        "set_feature_flag",
        "payment",
        {"flag": "new_pricing_rules", "value": False},
    )
    assert analyze(generate(None, 1).spans, W, B).diagnosis.abstained


def test_scoring_helpers() -> None:
    labels = {
        "scenario": "errors",
        "seed": 1,
        "start": ns_to_rfc3339(B[0]),
        "onset": ns_to_rfc3339(W[0]),
        "end": ns_to_rfc3339(W[1]),
        "fault_class": "error_rate",
        "culprit": {"service": "checkout"},
        "remediation": {"action": "rollback_version"},
        "changes": [
            {"commit": "abc", "time": ns_to_rfc3339(W[0]), "subject": "deploy", "files": []}
        ],
    }
    assert label_windows(labels) == (W, B)
    assert label_commits(labels)[0]["sha"] == "abc"
    d = analyze(generate("errors", 1).spans, W, B).diagnosis
    row = score_diagnosis(d, labels)
    assert row["top1"] and row["top3"] and row["class_ok"] and row["remediation_ok"]
    assert summarize([row, {**row, "top1": False}])["top1"] == 0.5
