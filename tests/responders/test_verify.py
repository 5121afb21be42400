"""Verification: harm gone and backlog drained, not demand ended; a draining backlog gets its time.

Made-up services (an `ingest` API in front of a `indexer` queue consumer), no simulated shop.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from operators.scout.detect.events import AnomalyCleared
from sinks.fixer.fixer import Remedy
from sinks.fixer.forge import ForgeResult, PullRequest
from sinks.fixer.policy import VerificationConfig
from sinks.fixer.rollout import GitOpsReconciler
from sinks.fixer.tracker import LocalTracker
from sinks.outputs.store_sink import record_rows
from sinks.store import Store
from sinks.store.incidents import record_events
from sre_space.records import Anomaly, Incident, Record, SignalWindow
from sre_space.responders.machine import HealthSample, Responder, ResponderSteps
from sre_space.responders.verify import IncidentHealth, drain_rate
from sre_space.timeutil import NS_PER_S, rfc3339_to_ns

T0 = rfc3339_to_ns("2027-05-10T14:00:00.000Z")
W = 10 * NS_PER_S


def put(store: Store, *records: Record) -> None:
    for record in records:
        for table, rid, payload, ts, key in record_rows(record):
            store.upsert(table, rid, payload, ts=ts, key=key)


def anomaly(
    aid: str, service: str, signal: str, observed: float, expected: float, **kw: Any
) -> Anomaly:
    return Anomaly(
        id=aid,
        detector="baseline",
        signal=signal,
        kind=kw.pop("kind", "span"),
        onset=T0,
        observed=observed,
        expected=expected,
        score=5.0,
        service=service,
        **kw,
    )


def cleared(a: Anomaly, at: int) -> AnomalyCleared:
    return AnomalyCleared(a.id, a.detector, a.signal, at, a.service, a.operation)


def incident(*anomalies: Anomaly, services: list[str]) -> Incident:
    return Incident(
        id="inc-idx",
        fingerprint="indexer/latency",
        state="open",
        opened_at=T0,
        updated_at=T0,
        services=services,
        severity="critical",
        anomaly_ids=[a.id for a in anomalies],
    )


def backlog(service: str, start: int, value: float) -> SignalWindow:
    return SignalWindow(
        kind="metric", window_start=start, window_end=start + W, service=service,
        metric="queue", value=value,
    )  # fmt: skip


def consumer(service: str, start: int) -> SignalWindow:
    return SignalWindow(
        kind="span", window_start=start, window_end=start + W, service=service,
        operation="jobs process", span_kind="consumer", count=20,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "sre.db")


def test_open_incident_is_unhealthy_until_scout_recovers_it(store: Store) -> None:
    health = IncidentHealth(store)
    inc = incident(services=["ingest"])
    inc = dataclasses.replace(inc, anomaly_ids=["an-missing"])
    assert health(inc, T0, T0) is None  # not stored yet
    record_events(store, [inc])
    sample = health(inc, T0 + W, T0)
    assert sample is not None and not sample.healthy
    assert "an-missing (not in the store)" in sample.detail
    recovered = dataclasses.replace(
        inc, state="recovered", event="recovered", recovered_at=T0 + 6 * W, updated_at=T0 + 7 * W
    )
    record_events(store, [recovered])
    sample = health(inc, T0 + 8 * W, T0)
    assert sample is not None and sample.healthy
    assert sample.detail == "Scout: incident recovered since 2027-05-10T14:01:00.000Z"


def test_a_demand_surge_does_not_hold_verification_but_a_traffic_drop_does(store: Store) -> None:
    slow = anomaly("an-slow", "ingest", "p95_ms", 900.0, 80.0, operation="POST /v1/events")
    surge = anomaly("an-surge", "ingest", "count", 4000.0, 1500.0, operation="POST /v1/events")
    inc = incident(slow, surge, services=["ingest"])
    put(store, slow, surge)
    record_events(store, [inc])
    health = IncidentHealth(store)
    sample = health(inc, T0 + 6 * W, T0)
    assert sample is not None and not sample.healthy
    assert "ingest POST /v1/events p95_ms abnormal" in sample.detail
    put(store, cleared(slow, T0 + 6 * W))
    sample = health(inc, T0 + 7 * W, T0)
    assert sample is not None
    assert sample.healthy, sample.detail  # only the surge is left
    drop = anomaly("an-drop", "ingest", "count", 200.0, 1500.0, operation="GET /v1/status")
    put(store, drop)
    record_events(store, [dataclasses.replace(inc, anomaly_ids=[*inc.anomaly_ids, drop.id])])
    sample = health(inc, T0 + 8 * W, T0)
    assert sample is not None and not sample.healthy and "count abnormal" in sample.detail


def test_consumer_latency_is_judged_by_its_backlog_draining_to_its_level(store: Store) -> None:
    work = anomaly("an-work", "indexer", "p50_ms", 1500.0, 40.0, operation="jobs process")
    inc = incident(work, services=["indexer"])
    put(store, work, *(backlog("indexer", T0 - k * W, 2.0) for k in range(1, 30)))
    put(store, *(consumer("indexer", T0 + k * W) for k in range(12)))
    # the backlog grew to 60 and stays there: not drained, not draining
    put(store, *(backlog("indexer", T0 + k * W, 60.0) for k in range(6)))
    record_events(store, [inc])
    health = IncidentHealth(store, rate_s=40)
    stuck = health(inc, T0 + 6 * W, T0)
    assert stuck is not None and not stuck.healthy and stuck.drain_eta_s is None
    assert "indexer queue 60 (before 2" in stuck.detail
    # it drains by 10 a window (1/s) to 20: 17 over the level's noise band (3), so 17 s to go
    put(store, *(backlog("indexer", T0 + k * W, 60.0 - 10 * (k - 5)) for k in range(6, 10)))
    draining = health(inc, T0 + 10 * W, T0)
    assert draining is not None and not draining.healthy
    assert draining.drain_eta_s == pytest.approx(17.0)
    put(store, *(backlog("indexer", T0 + k * W, 2.0) for k in range(12, 18)))
    done = health(inc, T0 + 18 * W, T0)
    assert done is not None
    assert done.healthy, done.detail  # the work-time anomaly alone is left


class Verifying:
    """A responder past a merged scale-up whose health samples the test scripts."""

    def __init__(self, store: Store, tmp_path: Path) -> None:
        self.samples: list[HealthSample] = []
        self.applied: list[int] = []  # the fix's apply time each sample was asked about
        self.reverted: list[str] = []
        pr = PullRequest(
            id="inc-idx/scale_replicas", forge="local", incident_id="inc-idx",
            action="scale_replicas", service="indexer", branch="b", title="Scale indexer",
            body="", labels=[], change={"service": "indexer", "after": {"replicas": 8}},
            merge_mode="auto_merge", created_at=T0, updated_at=T0, state="merged",
            merge_sha="ab" * 20,
        )  # fmt: skip

        def revert(pr_id: str, now: int, reason: str) -> ForgeResult:
            self.reverted.append(pr_id)
            return ForgeResult(False, None, "revert recorded by the test")

        steps = ResponderSteps(
            diagnose=lambda incident: None,
            remediate=lambda incident, diagnosis, now: Remedy("merged", "auto-merged", pr),
            revert=revert,
            health=self.health,
            postmortem=lambda incident, outcome: outcome["result"],
        )
        self.responder = Responder(
            store,
            steps,
            LocalTracker(store, out_dir=tmp_path / "issues"),
            GitOpsReconciler(),
            verification=VerificationConfig(
                healthy_windows=2, deadline_minutes=10, drain_grace_max_minutes=5
            ),
        )
        self.inc = incident(services=["indexer"])
        self.responder.start(self.inc, T0)

    def health(self, incident: Incident, now: int, applied_at: int) -> HealthSample:
        self.applied.append(applied_at)
        return self.samples[-1]

    def at(self, now: int, healthy: bool, eta: float | None) -> str:
        self.samples.append(HealthSample(now, healthy, "backlog", eta))
        return self.responder.run(self.inc.id, now).step


def test_a_backlog_draining_at_the_deadline_gets_its_time_then_verifies(
    store: Store, tmp_path: Path
) -> None:
    run = Verifying(store, tmp_path)
    assert run.at(T0, False, None) == "verify"  # merged and deployed at T0
    deadline = T0 + 600 * NS_PER_S
    assert run.at(deadline, False, 120.0) == "verify"  # 2 min to drain: judged then
    grace = [r for r in store.query("actions", key="inc-idx") if r["action"] == "verify_grace"]
    assert grace and grace[0]["inputs"]["deadline"] == "2027-05-10T14:12:00.000Z"
    assert run.at(deadline + 60 * NS_PER_S, True, 0.0) == "verify"
    assert run.at(deadline + 70 * NS_PER_S, True, 0.0) == "done"
    assert run.reverted == []
    assert run.applied and set(run.applied) == {T0}  # judged against the apply, every window


def test_grace_is_bounded_and_a_backlog_that_does_not_drain_is_reverted(
    store: Store, tmp_path: Path
) -> None:
    run = Verifying(store, tmp_path)
    run.at(T0, False, None)
    deadline = T0 + 600 * NS_PER_S
    assert run.at(deadline, False, 3600.0) == "verify"  # an hour to drain: at most 5 min more
    assert run.at(deadline + 299 * NS_PER_S, False, 3000.0) == "verify"
    assert run.at(deadline + 300 * NS_PER_S, False, 2990.0) == "done"
    assert run.reverted == ["inc-idx/scale_replicas"]
    other = Verifying(Store(tmp_path / "other.db"), tmp_path / "other")
    other.at(T0, False, None)
    assert other.at(deadline, False, None) == "done"  # not draining: no grace
    assert other.reverted == ["inc-idx/scale_replicas"]


def test_a_backlog_hovering_on_a_plateau_is_not_draining() -> None:
    plateau = [36.0, 35.0, 35.0, 33.0, 34.0, 34.0, 36.0]
    assert drain_rate([(T0 + k * W, v) for k, v in enumerate(plateau)]) == 0.0
    falling = [60.0, 52.0, 41.0, 33.0, 19.0, 12.0]
    rate = drain_rate([(T0 + k * W, v) for k, v in enumerate(falling)])
    assert rate == pytest.approx(0.97, abs=0.05)


def memory(service: str, start: int, value: float) -> SignalWindow:
    return SignalWindow(
        kind="metric", window_start=start, window_end=start + W, service=service,
        metric="memory", value=value,
    )  # fmt: skip


def recovered_leak(store: Store, at: int) -> Incident:
    """An `ingest` memory leak incident (Scout's trend) that Scout saw recover at `at`."""
    trend = anomaly("an-leak", "ingest", "time_to_exhaustion", 300.0, 900.0, kind="metric")
    trend = dataclasses.replace(trend, detector="saturation_trend", metric="memory")
    inc = incident(trend, services=["ingest"])
    put(store, trend, cleared(trend, at))
    recovered = dataclasses.replace(
        inc, state="recovered", event="recovered", recovered_at=at, updated_at=at
    )
    record_events(store, [inc, recovered])
    return inc


def leak_then(store: Store, after: list[float]) -> None:
    """`ingest` memory: a leak's climb of 3 MB a window (18 MB/min) for 20 windows, then
    `after`, one value a window."""
    put(store, *(memory("ingest", T0 + i * W, 200e6 + i * 3e6) for i in range(20)))
    put(store, *(memory("ingest", T0 + (20 + i) * W, v) for i, v in enumerate(after)))


def test_a_resource_that_still_climbs_to_its_limit_holds_verification(store: Store) -> None:
    # More headroom for a leak: Scout's trend clears (exhaustion beyond its horizon) and the
    # incident recovers, but the memory still climbs, so the fix is not verified.
    inc = recovered_leak(store, T0 + 5 * W)
    leak_then(store, [])
    applied = T0 + 20 * W
    health = IncidentHealth(store)
    sample = health(inc, T0 + 20 * W, applied)
    assert sample is not None and not sample.healthy
    assert "ingest memory still climbing" in sample.detail
    # Killed at the limit and climbing again: the drop does not hide the leak.
    put(store, *(memory("ingest", T0 + i * W, 100e6 + (i - 20) * 3e6) for i in range(20, 22)))
    sample = health(inc, T0 + 22 * W, applied)
    assert sample is not None and not sample.healthy and "restarted lately" in sample.detail
    put(store, *(memory("ingest", T0 + i * W, 100e6 + (i - 20) * 3e6) for i in range(22, 26)))
    sample = health(inc, T0 + 26 * W, applied)
    assert sample is not None and "ingest memory still climbing" in sample.detail
    # Levelled off (a warm-up after a restart): the recovered incident verifies.
    put(store, *(memory("ingest", T0 + i * W, 260e6 + (i % 2) * 1e6) for i in range(26, 46)))
    sample = health(inc, T0 + 46 * W, applied)
    assert sample is not None and sample.healthy, sample.detail


# The new containers after a rollback rise 1.2 MB/min as their working set fills: a clear
# slope, but a fifteenth of the leak's pace.
WARMING = [150e6 + i * 0.2e6 + (i % 2) * 0.05e6 for i in range(25)]


def test_fresh_containers_warming_up_after_a_rollback_do_not_hold_verification(
    store: Store,
) -> None:
    inc = recovered_leak(store, T0 + 25 * W)
    leak_then(store, [])
    applied = T0 + 20 * W
    health = IncidentHealth(store)
    at_deploy = health(inc, applied, applied)
    assert at_deploy is not None and "ingest memory still climbing" in at_deploy.detail
    leak_then(store, WARMING)
    sample = health(inc, T0 + 45 * W, applied)
    assert sample is not None and sample.healthy, sample.detail
    # A responder restarted mid-verification reads the leak's pace from the store, not from
    # its first sample (the warm-up's), and judges the same.
    restarted = IncidentHealth(store)
    again = restarted(inc, T0 + 45 * W, applied)
    assert again is not None and again.healthy, again.detail


def test_a_kill_at_the_limit_just_before_the_fix_leaves_the_leaks_pace(store: Store) -> None:
    # The leak's container was killed at its limit two windows before the rollback was applied:
    # too few points since to fit, so the pace is the climb the kill ended, not none at all
    # (against none, the warm-up's rise would hold verification and revert a fix that worked).
    inc = recovered_leak(store, T0 + 25 * W)
    leak_then(store, [100e6, 103e6, *WARMING])
    applied = T0 + 21 * W
    sample = IncidentHealth(store)(inc, T0 + 47 * W, applied)
    assert sample is not None and sample.healthy, sample.detail


def test_a_slow_leak_the_fix_did_not_slow_still_holds_verification(store: Store) -> None:
    # The same gentle rise before and after the fix: the fix did not change the pace.
    inc = recovered_leak(store, T0 + 25 * W)
    put(store, *(memory("ingest", T0 + i * W, 200e6 + i * 0.2e6 + (i % 2) * 0.05e6)
                 for i in range(45)))  # fmt: skip
    sample = IncidentHealth(store)(inc, T0 + 45 * W, T0 + 20 * W)
    assert sample is not None and not sample.healthy
    assert "ingest memory still climbing" in sample.detail
