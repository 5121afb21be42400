"""Deploy through Argo CD / Flux: a merge counts as deployed once Scout's signals show it running.

The services, pods and versions here are made up (no simulated shop): the watch reads the store
the dataflow writes, as `sre-space responders` does next to a GitOps controller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.otlp_encode import PointSpec, SpanSpec, metrics_request, trace_request
from operators.otlp import decode_metrics_proto, decode_trace_proto
from operators.signals import SignalSpec, finalize, metric_partials, span_partials
from sinks.fixer.factory import build_deployer
from sinks.fixer.fixer import Remedy
from sinks.fixer.forge import ForgeResult, PullRequest
from sinks.fixer.policy import VerificationConfig
from sinks.fixer.rollout import GitOpsReconciler, Rollout, TelemetryWatch, rollout_of
from sinks.fixer.tracker import LocalTracker
from sinks.outputs.store_sink import record_row
from sinks.store.sqlite import Store
from sre_space.records import Incident, SignalWindow
from sre_space.responders.machine import HealthSample, Progress, Responder, ResponderSteps
from sre_space.settings import load_pipeline_config, load_settings
from sre_space.timeutil import NS_PER_S, rfc3339_to_ns

T0 = rfc3339_to_ns("2027-03-02T08:00:00.000Z")
WINDOW = 10 * NS_PER_S
MERGE_SHA = "c0ffee" + "0" * 34
INCIDENT = Incident(
    id="inc-ledger",
    fingerprint="ledger/errors",
    state="open",
    opened_at=T0,
    updated_at=T0,
    services=["ledger"],
    severity="critical",
    summary="ledger errors",
)


def put(store: Store, *signals: SignalWindow) -> None:
    """Signals as the dataflow's store sink writes them."""
    for s in signals:
        table, rid, payload, ts, key = record_row(s)
        store.upsert(table, rid, payload, ts=ts, key=key)


def spans(service: str, start: int, versions: dict[str, int]) -> SignalWindow:
    return SignalWindow(
        kind="span",
        window_start=start,
        window_end=start + WINDOW,
        service=service,
        operation="POST /entries",
        count=sum(versions.values()),
        versions=versions,
    )


def metric(
    service: str, start: int, name: str, value: float, pod: str | None = None
) -> SignalWindow:
    return SignalWindow(
        kind="metric",
        window_start=start,
        window_end=start + WINDOW,
        service=service,
        metric=name,
        value=value,
        attributes={"k8s.pod.name": pod} if pod else None,
    )


# The dataflow's aggregation with the default pipeline config (no shop site file), 10 s windows.
SPEC = SignalSpec.from_config(load_pipeline_config(None))


def exported(service: str, start: int, resource: dict[str, Any], n: int = 20) -> list[SignalWindow]:
    """Server spans of one window as an SDK exports them (OTLP), through decode and aggregation."""
    spans = [
        SpanSpec(
            (start + i).to_bytes(16, "big"),
            (i + 1).to_bytes(8, "big"),
            "POST /entries",
            start + i * 1000,
            start + WINDOW // 2 + i * 1000,
        )
        for i in range(n)
    ]
    req = trace_request([({"service.name": service, **resource}, spans)])
    batch = decode_trace_proto(req.SerializeToString())
    return [finalize(p, SPEC.window_ns) for p in span_partials(batch, SPEC)]


def cluster_metric(deployment: str, start: int, name: str, value: float) -> list[SignalWindow]:
    """A replica count as the Kubernetes cluster receiver exports it (no service.name)."""
    point = PointSpec(name=name, value=value, ts_ns=start + WINDOW // 2)
    req = metrics_request([({"k8s.deployment.name": deployment}, [point])])
    batch = decode_metrics_proto(req.SerializeToString())
    return [finalize(p, SPEC.window_ns) for p in metric_partials(batch, SPEC)]


def pods(service: str, start: int, names: list[str]) -> list[SignalWindow]:
    return [metric(service, start, "process.cpu.utilization", 0.3, pod) for pod in names]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "sre.db")


# --- what the telemetry shows ------------------------------------------------------------------


def test_version_runs_once_the_newest_spans_carry_only_the_merged_version(store: Store) -> None:
    watch = TelemetryWatch(store, lookback_s=60)
    rollout = Rollout("ledger", merged_at=T0, version="2.3.1")
    put(store, spans("ledger", T0 - WINDOW, {"2.4.0": 40}))
    assert not watch.check(rollout, T0).running  # nothing since the merge yet
    put(store, spans("ledger", T0, {"2.4.0": 30, "2.3.1": 10}))
    half = watch.check(rollout, T0 + WINDOW)
    assert not half.running and "2.4.0 (30 spans)" in half.detail
    # another service's spans at the merged version say nothing about this one
    put(store, spans("billing-api", T0 + WINDOW, {"2.3.1": 50}))
    assert not watch.check(rollout, T0 + 2 * WINDOW).running
    put(store, spans("ledger", T0 + 2 * WINDOW, {"2.3.1": 41}))
    check = watch.check(rollout, T0 + 3 * WINDOW)
    assert check.running and "2.3.1" in check.detail


def test_replicas_from_deployment_metrics_win_over_counted_instances(store: Store) -> None:
    watch = TelemetryWatch(store, lookback_s=60)
    rollout = Rollout("billing-api", merged_at=T0, replicas=5)
    put(
        store,
        metric("billing-api", T0, "k8s.deployment.desired", 5),
        metric("billing-api", T0, "k8s.deployment.available", 3),
        *pods("billing-api", T0, [f"billing-api-5c9-{i}" for i in range(5)]),
    )
    waiting = watch.check(rollout, T0 + WINDOW)
    assert not waiting.running
    assert "k8s.deployment.available=3" in waiting.detail
    put(store, metric("billing-api", T0 + WINDOW, "k8s.deployment.available", 5))
    assert watch.check(rollout, T0 + 2 * WINDOW).running


def test_replicas_without_deployment_metrics_count_reporting_instances(store: Store) -> None:
    watch = TelemetryWatch(store, lookback_s=20)
    before = ["ledger-77f-a", "ledger-77f-b"]
    put(store, *pods("ledger", T0 - WINDOW, before), *pods("ledger", T0, before))
    rollout = Rollout("ledger", merged_at=T0, replicas=3)
    assert not watch.check(rollout, T0 + WINDOW).running
    put(store, *pods("ledger", T0 + WINDOW, [*before, "ledger-77f-c"]))
    check = watch.check(rollout, T0 + 2 * WINDOW)
    assert check.running and "3 instance(s)" in check.detail


def test_other_changes_run_once_new_instances_replace_the_old(store: Store) -> None:
    watch = TelemetryWatch(store, lookback_s=30)
    old = ["ledger-77f-a", "ledger-77f-b"]
    put(store, *pods("ledger", T0 - 2 * WINDOW, old), *pods("ledger", T0 - WINDOW, old))
    rollout = rollout_of({"service": "ledger", "after": {"env.POOL_SIZE": 40}}, T0)
    assert rollout.version is None and rollout.replicas is None
    put(store, *pods("ledger", T0, old))
    same = watch.check(rollout, T0 + WINDOW)
    assert not same.running and "same 2 instance(s)" in same.detail
    put(store, *pods("ledger", T0 + WINDOW, ["ledger-9ab-x", "ledger-77f-b"]))
    check = watch.check(rollout, T0 + 2 * WINDOW)
    assert check.running and "ledger-9ab-x" in check.detail


def test_a_flag_change_runs_once_its_evaluations_return_another_variant(store: Store) -> None:
    watch = TelemetryWatch(store, lookback_s=60)

    def flagged(start: int, variant: str) -> SignalWindow:
        return SignalWindow(
            kind="span", window_start=start, window_end=start + WINDOW, service="ledger",
            operation="POST /entries", count=30, flags={"fast_posting": variant},
        )  # fmt: skip

    put(store, flagged(T0 - WINDOW, "on"), *pods("ledger", T0 - WINDOW, ["ledger-77f-a"]))
    rollout = rollout_of({"service": "ledger", "after": {"flags.fast_posting.state": "off"}}, T0)
    assert rollout.flags == ("fast_posting",)
    put(store, flagged(T0, "on"), *pods("ledger", T0, ["ledger-77f-a"]))
    waiting = watch.check(rollout, T0 + WINDOW)
    assert not waiting.running and "fast_posting: on since the merge (before: on)" in waiting.detail
    put(store, flagged(T0 + WINDOW, "off"))
    check = watch.check(rollout, T0 + 2 * WINDOW)
    assert check.running and "fast_posting: off" in check.detail
    # a flag never evaluated before the merge is judged by the pods, which did not change
    unseen = rollout_of({"service": "ledger", "after": {"feature_flags.dark_mode": True}}, T0)
    assert not watch.check(unseen, T0 + 2 * WINDOW).running


def test_rollout_reads_the_changes_new_values() -> None:
    assert rollout_of({"service": "ledger", "after": {"version": "2.3.1"}}, T0).version == "2.3.1"
    assert rollout_of({"service": "ledger", "after": {"replicas": 4}}, T0).replicas == 4
    r = Rollout("ledger", T0, "1.0", None, ("fast_posting",))
    assert Rollout.from_dict(r.to_dict()) == r


# --- the responder with the watch ---------------------------------------------------------------


class Run:
    """A responder whose Fixer merged one change to a made-up service; the watch is real."""

    def __init__(self, store: Store, tmp_path: Path, after: dict[str, Any]) -> None:
        self.store = store
        self.reverted: list[str] = []
        pr = PullRequest(
            id=f"{INCIDENT.id}/rollback_version",
            forge="local",
            incident_id=INCIDENT.id,
            action="rollback_version",
            service="ledger",
            branch="sre/inc-ledger",
            title="Roll back ledger",
            body="",
            labels=[],
            change={"service": "ledger", "after": after},
            merge_mode="auto_merge",
            created_at=T0,
            updated_at=T0,
            state="merged",
            merge_sha=MERGE_SHA,
        )

        def revert(pr_id: str, now: int, reason: str) -> ForgeResult:
            self.reverted.append(pr_id)
            return ForgeResult(False, None, "not expected")

        steps = ResponderSteps(
            diagnose=lambda incident: None,
            remediate=lambda incident, diagnosis, now: Remedy("merged", "auto-merged", pr),
            revert=revert,
            health=lambda incident, now, applied_at: HealthSample(
                now, True, "errors back to baseline"
            ),
            postmortem=lambda incident, outcome: f"# {incident.id}: {outcome['result']}",
        )
        self.responder = Responder(
            store,
            steps,
            LocalTracker(store, out_dir=tmp_path / "incidents"),
            GitOpsReconciler(),
            verification=VerificationConfig(healthy_windows=2),
            watch=TelemetryWatch(store, lookback_s=60).check,
            rollout_deadline_s=300,
        )
        self.responder.start(INCIDENT, T0)

    def until(self, now: int) -> Progress:
        return self.responder.run(INCIDENT.id, now)

    def audit(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.store.query("actions", key=INCIDENT.id) if r["action"] == action]


def test_merged_version_never_in_spans_escalates_at_the_deadline_without_a_revert(
    store: Store, tmp_path: Path
) -> None:
    run = Run(store, tmp_path, {"version": "2.3.1"})
    minute = 60 * NS_PER_S
    merged = T0 + WINDOW  # the first tick merges; the deadline is 300 s after it
    for m in range(5):
        put(store, spans("ledger", T0 + m * minute, {"2.4.0": 40}))
        p = run.until(T0 + m * minute + WINDOW)
        assert p.step == "deploy" and p.status == "waiting", m
    assert "2.4.0 (40 spans)" in p.data["rollout_detail"]
    put(store, spans("ledger", merged + 290 * NS_PER_S, {"2.4.0": 40}))
    assert run.until(merged + 300 * NS_PER_S - 1).step == "deploy"
    p = run.until(merged + 300 * NS_PER_S)
    assert p.step == "done"
    assert p.data["outcome"]["result"] == "not_rolled_out"
    assert "did not show it running" in p.data["outcome"]["detail"]
    assert run.reverted == [] and run.audit("revert") == []
    assert [r["outcome"] for r in run.audit("escalate")] == ["done"]
    issue = LocalTracker(store, out_dir=tmp_path / "incidents").issue_doc(INCIDENT.id)
    assert issue is not None and "state:escalated" in issue["labels"]


def test_merged_version_in_spans_verifies(store: Store, tmp_path: Path) -> None:
    run = Run(store, tmp_path, {"version": "2.3.1"})
    put(store, spans("ledger", T0, {"2.4.0": 40}))
    assert run.until(T0 + WINDOW).step == "deploy"
    put(store, spans("ledger", T0 + WINDOW, {"2.3.1": 38}))
    p = run.until(T0 + 2 * WINDOW)
    assert p.step == "verify", p.data
    assert [r["reason"] for r in run.audit("rolled_out")] == ["spans of ledger carry version 2.3.1"]
    for n in (3, 4):
        p = run.until(T0 + n * WINDOW)
    assert p.step == "done" and p.data["outcome"]["result"] == "resolved"
    assert run.reverted == []


def test_replicas_seen_in_deployment_metrics_verify(store: Store, tmp_path: Path) -> None:
    run = Run(store, tmp_path, {"replicas": 6})
    put(store, metric("ledger", T0, "k8s.deployment.available", 3))
    assert run.until(T0 + WINDOW).step == "deploy"
    put(store, metric("ledger", T0 + WINDOW, "k8s.deployment.available", 6))
    assert run.until(T0 + 2 * WINDOW).step == "verify"


# --- choosing the reconciler ---------------------------------------------------------------------


def test_default_deployer_is_gitops_watched_through_telemetry(store: Store, tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    gitops = build_deployer(settings, store)
    assert gitops.mode == "gitops" and gitops.watch is not None
    assert gitops.reconciler.apply(MERGE_SHA).ok
    command = build_deployer(settings, store, command=["argocd", "app", "sync", "ledger"])
    assert command.mode == "command" and command.watch is not None
    shop = build_deployer(settings, store, mode="shop")
    assert shop.mode == "shop" and shop.watch is None
    site = tmp_path / "site.yaml"
    site.write_text("deploy:\n  reconciler: command\n  rollout_deadline: 2m\n")
    with pytest.raises(ValueError, match="no command is set"):
        build_deployer(load_settings(state_dir=tmp_path, config=site), store)
    site.write_text("deploy:\n  reconciler: shop\n  rollout_deadline: 2m\n")
    assert build_deployer(load_settings(config=site), store).mode == "shop"
    given = build_deployer(
        load_settings(config=site), store, command=["kubectl", "apply", "-k", "."]
    )
    assert given.mode == "command" and given.rollout_deadline_s == 120.0


# --- the image tag and replica counts as exported (semantic-convention resource attributes) ------

IMAGE = "registry.example.com/ledger"


def test_merged_image_tag_never_exported_escalates_at_the_deadline_without_a_revert(
    store: Store, tmp_path: Path
) -> None:
    # The SDK sets no service.version: the version is the tag of the image the pod runs.
    assert SPEC.window_ns == WINDOW
    run = Run(store, tmp_path, {"version": "2.3.1"})
    merged = T0 + WINDOW - 1  # the first tick merges; the deadline is 300 s after it
    ticks = []
    for n in range(40):
        put(store, *exported("ledger", T0 + n * WINDOW, {"container.image.tags": ["2.4.0"]}))
        ticks.append(T0 + (n + 1) * WINDOW - 1)
        p = run.until(ticks[-1])
        if p.step != "deploy":
            break
    assert p.step == "done", p.data
    assert ticks[-2] < merged + 300 * NS_PER_S <= ticks[-1]  # at the deadline, not before
    assert p.data["outcome"]["result"] == "not_rolled_out"
    assert "2.4.0 (20 spans)" in p.data["outcome"]["detail"]
    assert run.reverted == [] and run.audit("revert") == []
    assert [r["outcome"] for r in run.audit("escalate")] == ["done"]


def test_merged_image_tag_in_the_image_name_verifies(store: Store, tmp_path: Path) -> None:
    run = Run(store, tmp_path, {"version": "2.3.1"})
    put(store, *exported("ledger", T0, {"container.image.name": f"{IMAGE}:2.4.0"}))
    assert run.until(T0 + WINDOW).step == "deploy"
    put(store, *exported("ledger", T0 + WINDOW, {"container.image.name": f"{IMAGE}:2.3.1"}))
    p = run.until(T0 + 2 * WINDOW)
    assert p.step == "verify", p.data
    assert [r["reason"] for r in run.audit("rolled_out")] == ["spans of ledger carry version 2.3.1"]


def test_replicas_from_the_cluster_receiver_verify(store: Store, tmp_path: Path) -> None:
    run = Run(store, tmp_path, {"replicas": 6})
    put(store, *cluster_metric("ledger", T0, "k8s.deployment.available", 3))
    assert run.until(T0 + WINDOW).step == "deploy"
    put(store, *cluster_metric("ledger", T0 + WINDOW, "k8s.deployment.available", 6))
    put(store, *cluster_metric("ledger", T0 + WINDOW, "k8s.deployment.desired", 6))
    assert run.until(T0 + 2 * WINDOW).step == "verify"
    assert [r["reason"] for r in run.audit("rolled_out")] == [
        "k8s.deployment.available=6, k8s.deployment.desired=6 (merged 6)"
    ]
