"""Actions proposed from evidence: parameters from structured fields, the class's order, sizing
inputs, Memory's reordering, and the typed request's JSON round trip (old string form included)."""

from __future__ import annotations

from typing import Any

import pytest

from sinks.brain.faults import DRAIN_S, propose, queue_demand
from sre_space.actions import request
from sre_space.records import ActionRequest, Candidate, Diagnosis, Evidence


def ev(kind: str, i: int, **fields: Any) -> Evidence:
    return Evidence(
        kind=kind, description="prose the actions never read", id=f"{kind}#{i}", **fields
    )


def test_changes_are_undone_first_with_their_own_parameters() -> None:
    evidence = [
        ev("error_origin", 0),
        ev("change_commit", 1, commit="0123456789ab"),
        ev("change_version", 2, version="2.1.0", previous_version="2.0.3"),
        ev("attribute", 3, version="2.1.0"),
    ]
    out = propose("svc", "error_regression", evidence, [])
    assert [a.action for a in out] == ["rollback_version", "revert_commit", "restart"]
    rollback, revert, restart = out
    assert rollback.params == {"to_version": "2.0.3"}
    assert rollback.evidence == ["change_version#2", "attribute#3"]
    assert (revert.params, revert.evidence) == ({"sha": "0123456789ab"}, ["change_commit#1"])
    assert restart.evidence == ["error_origin#0"]
    assert {a.service for a in out} == {"svc"}


def test_prose_alone_proposes_nothing() -> None:
    # A change described in words but without its structured fields cannot be undone.
    text = Evidence(kind="change_commit", description="commit 0123456789ab 'pool 20 -> 2'", id="c")
    assert propose("svc", "config_pool_exhaustion", [text], []) == []


def test_load_classes_scale_first_sized_from_the_load() -> None:
    cpu = ev("resource_cpu", 0, measures={"utilization": 0.97})
    commit = ev("change_commit", 1, commit="0123456789ab")
    out = propose("svc", "cpu_saturation", [commit, cpu, ev("latency_shift", 2)], [])
    assert [a.action for a in out] == ["scale_replicas", "revert_commit"]
    assert out[0].params == {"utilization": 0.97}
    assert out[0].evidence == ["resource_cpu#0", "latency_shift#2"]


def test_queue_demand_is_arrivals_plus_drain_over_processing() -> None:
    # Consumers process 10/s while the lag grows 10/s: arrivals 20/s; 6000 queued drain over
    # DRAIN_S seconds adds 6000 / DRAIN_S per second.
    m = {"processed_per_s": 10.0, "growth_per_s": 10.0, "backlog": 6000.0}
    assert queue_demand(m) == pytest.approx((20.0 + 6000.0 / DRAIN_S) / 10.0, abs=1e-4)
    assert queue_demand({"backlog": 50.0}) is None  # nothing processed: no rate to size from
    # The window began before the backlog rose: its processed rate (10/s) still counts healthy
    # minutes. Arrivals are 20/s either way; the consumers manage 20 - 15 = 5/s now.
    late = {**m, "recent_growth_per_s": 15.0}
    assert queue_demand(late) == pytest.approx((20.0 + 6000.0 / DRAIN_S) / 5.0, abs=1e-4)
    lag = ev("resource_lag", 0, measures=m)
    (scale,) = propose("svc", "queue_lag", [lag], [])
    assert scale.params == {"utilization": queue_demand(m)}


def test_memory_saturation_raises_the_limit_from_the_peak() -> None:
    mem = ev("resource_memory", 0, measures={"utilization": 0.98, "limit": 512.0})
    version = ev("change_version", 1, version="2", previous_version="1")
    out = propose("svc", "memory_leak", [mem, version, ev("resource_oom_kill", 2)], [])
    assert [a.action for a in out] == ["rollback_version", "raise_memory_limit", "restart"]
    # The OOM kill says the peak is at least the limit: the larger utilization wins.
    assert out[1].params == {"utilization": 1.0}
    assert out[1].evidence == ["resource_memory#0", "resource_oom_kill#2"]


def test_callers_timing_out_get_a_breaker_and_the_stuck_service_a_restart() -> None:
    timeouts = ev("error_origin", 0, peer="caller")
    out = propose("stuck", "dependency_timeout", [timeouts], [])
    assert [(a.action, a.service) for a in out] == [
        ("restart", "stuck"),
        ("enable_circuit_breaker", "caller"),
        ("raise_timeout", "caller"),
    ]


def test_memory_moves_what_worked_first_and_drops_what_failed() -> None:
    evidence = [ev("change_version", 0, version="2"), ev("resource_cpu", 1)]
    similar = [
        {"fault_class": "error_regression", "action": "restart", "outcome": "worked"},
        {"fault_class": "error_regression", "action": "rollback_version", "outcome": "failed"},
        {"fault_class": "other", "action": "scale_replicas", "outcome": "failed"},
    ]
    out = propose("svc", "error_regression", evidence, similar)
    assert [(a.action, a.source) for a in out] == [
        ("restart", "memory"),
        ("scale_replicas", "brain"),
    ]
    # Everything failed before: the evidence's own list stands rather than nothing.
    failed = [
        {"fault_class": "error_regression", "action": a, "outcome": "failed"}
        for a in ("rollback_version", "scale_replicas")
    ]
    assert [a.action for a in propose("svc", "error_regression", evidence, failed)] == [
        "rollback_version",
        "scale_replicas",
    ]


def test_requests_are_typed_at_the_source() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        request("format_disk", "svc", [])
    with pytest.raises(ValueError, match="must be float"):
        request("scale_replicas", "svc", [], utilization="high")
    with pytest.raises(ValueError, match="needs parameter 'sha'"):
        request("revert_commit", "svc", [])
    with pytest.raises(ValueError, match="no parameter"):
        request("restart", "svc", [], command="sh")


def test_typed_requests_round_trip_and_old_records_still_read() -> None:
    asked = ActionRequest("scale_replicas", "svc", {"utilization": 1.5}, ["resource_cpu#0"])
    cand = Candidate(
        "svc", "cpu_saturation", 1.0, 0.9, evidence=[ev("resource_cpu", 0)], actions=[asked]
    )
    d = Diagnosis("i", 0, 1, 0, 0, [cand])
    back = Diagnosis.from_json(d.to_json())
    assert back == d and back.candidates[0].actions[0].key() == asked.key()
    old = {
        "service": "svc",
        "fault_class": "crashloop",
        "score": 1,
        "confidence": 1,
        "remediations": ["restart"],
    }
    assert Candidate.from_dict(old).actions == [ActionRequest("restart", "svc")]


def test_the_saturated_service_scales_before_its_callers_get_a_breaker() -> None:
    # Callers time out on the saturated service: their breaker only mitigates, capacity fixes it.
    evidence = [ev("error_origin", 0, peer="caller"), ev("resource_cpu", 1, measures={})]
    out = propose("svc", "cpu_saturation", evidence, [])
    assert [(a.action, a.service) for a in out][:3] == [
        ("scale_replicas", "svc"),
        ("enable_circuit_breaker", "caller"),
        ("raise_timeout", "caller"),
    ]
