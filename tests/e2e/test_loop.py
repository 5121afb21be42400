"""The closed loop in one process: shop -> flow -> Scout -> responders -> forge -> shop.

The demo's pieces run as `sre-space demo` runs them (the shop on a thread in accelerated simulated
time through `chaos.live.run_live`, the dataflow from `flows.demo.build_demo_flow` fed by a
`QueueSource`), plus the responder thread of `flows.responders`. An `oom` is injected through the
chaos control channel; the test then follows the incident through diagnosis, the pull request on
the local forge (real git), the shop running the merge, verification and the post-mortem.

Everything is bounded: the shop stops after a fixed simulated duration (which ends the flow), and
a wall-clock guard only stops a run that hangs; no assertion is about wall time.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bytewax.testing import run_main

from chaos import control
from chaos.live import run_live, write_status
from chaos.shop import DEFAULT_EPOCH_NS, Batch, Shop, ShopConfig
from flows.demo import build_demo_flow
from flows.queue_source import END, QueueSource
from flows.responders import start_responders_thread
from operators.otlp.messages import RawMessage
from sinks.memory.memory import Memory
from sinks.remediation.shop_reconciler import ShopReconciler, read_shop_head
from sinks.store.sqlite import Store
from sre_space.settings import Settings, load_settings
from sre_space.timeutil import NS_PER_S, rfc3339_to_ns

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WARMUP_S = 12 * 60  # clean traffic before the fault: Scout's baselines and the Brain's baseline
WALL_GUARD_S = 420.0
MAX_LEAD_NS = (
    40 * NS_PER_S
)  # how far the shop may run ahead of the flow's newest window  # only stops a hung run; the simulated duration ends a healthy one


class _StopShop(Exception):
    """Raised from the publish callback to end `run_live` early once the test has its answer."""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


@dataclass
class Demo:
    """The running pieces and what the test needs to steer them."""

    state: Path
    settings: Settings
    shop: Shop
    stop_shop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return Store(self.state / "sre.db")

    def sim_s(self) -> float:
        return (self.shop.now_ns - DEFAULT_EPOCH_NS) / NS_PER_S

    def alive(self) -> bool:
        """The flow still runs (it ends after the shop's last batch)."""
        return any(t.is_alive() for t in self.threads)


@contextmanager
def demo(
    tmp_path: Path,
    *,
    speed: float = 240.0,
    duration_s: float = 60 * 60,
    policy: dict[str, Any] | None = None,
) -> Iterator[Demo]:
    """Shop, flow and responders on threads over one state folder; stopped on exit."""
    state = tmp_path / "state"
    state.mkdir()
    # Smaller archive batches than the default: the Brain waits for the spans of the onset to be
    # on disk, and at the default 50,000 rows that is several simulated minutes.
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text("archive:\n  flush_rows: 8000\n", encoding="utf-8")
    settings = load_settings(state_dir=state, config=cfg)
    policy_path = None
    if policy is not None:
        policy_path = tmp_path / "policy.yaml"
        policy_path.write_text(json.dumps(policy), encoding="utf-8")  # JSON is YAML
    shop = Shop(seed=1, gitops_path=state / "gitops", config=ShopConfig(epoch_ns=DEFAULT_EPOCH_NS))
    d = Demo(state, settings, shop)
    q: queue.Queue[RawMessage | None] = queue.Queue(maxsize=64)
    flow_store = Store(state / "sre.db")
    seq = iter(range(1 << 62))
    head = [shop.head]

    def flow_now_ns() -> int:
        rows = flow_store.query("signals", limit=50, newest_first=True)
        return max((rfc3339_to_ns(r["window_end"]) for r in rows), default=0)

    def publish(batch: Batch) -> None:
        # Pace the shop to the flow's output, not only to the wall clock: at this speed the flow
        # falls behind and Bytewax buffers what its source read, so without this the shop would
        # run minutes of event time ahead of what Scout and the responders have seen, and a merge
        # made at the flow's "now" would be deployed minutes later in the data.
        if batch.kind == "metrics" and flow_now_ns():
            while batch.time_ns - flow_now_ns() > MAX_LEAD_NS:
                if d.stop_shop.is_set() or not d.threads[1].is_alive():
                    raise _StopShop
                time.sleep(0.02)
        if d.stop_shop.is_set():
            raise _StopShop
        data = batch.proto_bytes()
        if batch.kind == "spans":
            message = RawMessage("shop", 0, next(seq), data, "traces")
        else:
            message = RawMessage("shop", 0, next(seq), data, "metrics")
        while True:
            if d.stop_shop.is_set():
                raise _StopShop
            try:
                q.put(message, timeout=0.5)
                break
            except queue.Full:
                continue
        if shop.head != head[0]:
            # run_live rewrites status.json only on commands; the deploy check reads the head
            # from it, so keep it current here (see the report: run_live should do this itself).
            head[0] = shop.head
            write_status(shop, state)

    def shop_thread() -> None:
        try:
            run_live(shop, publish, state, speed=speed, duration_s=duration_s, log=lambda _: None)
        except _StopShop:
            pass
        except BaseException as exc:
            d.errors.append(exc)
        finally:
            q.put(END)

    def flow_thread() -> None:
        try:
            run_main(build_demo_flow(settings, QueueSource(q)))
        except BaseException as exc:
            d.errors.append(exc)

    responders, stop_responders = start_responders_thread(
        settings,
        poll_s=0.3,
        policy_path=policy_path,
        reconciler=ShopReconciler(state, timeout_s=60.0),
        log=lambda line: print(f"responders: {line}", flush=True),
    )
    d.threads = [
        threading.Thread(target=shop_thread, name="shop", daemon=True),
        threading.Thread(target=flow_thread, name="flow", daemon=True),
    ]
    for t in d.threads:
        t.start()
    try:
        yield d
    finally:
        d.stop_shop.set()
        for t in d.threads:
            t.join(timeout=120)
        stop_responders.set()
        responders.join(timeout=120)
    assert not d.errors, d.errors


def inject_after_warmup(d: Demo, scenario: str, intensity: float = 1.0) -> None:
    """Send the fault through the control channel once the shop has run its warm-up."""
    guard = time.monotonic() + WALL_GUARD_S
    while d.sim_s() < WARMUP_S:
        assert d.alive() and time.monotonic() < guard, f"shop stuck at {d.sim_s():.0f}s"
        time.sleep(0.2)
    control.send(d.state, {"cmd": "inject", "scenario": scenario, "intensity": intensity})


def wait_until_done(d: Demo, service: str) -> dict[str, Any]:
    """The first incident naming `service` once its responder run is done (or whatever it
    reached when the shop's simulated time ran out)."""
    guard = time.monotonic() + WALL_GUARD_S
    store = d.store
    progress: dict[str, Any] | None = None
    while time.monotonic() < guard:
        incidents = sorted(store.query("incidents"), key=lambda r: r["opened_at"])
        mine = [i for i in incidents if service in i["services"]]
        if mine:
            progress = store.get("progress", mine[0]["id"])
            if progress is not None and progress["step"] == "done":
                return progress
        if not d.alive():
            time.sleep(3)  # the responders' last ticks after the flow's last window
            break
        time.sleep(0.5)
    assert mine, f"no incident for {service}: {incidents}"
    progress = store.get("progress", mine[0]["id"])
    assert progress is not None, "the responders never started on the incident"
    return progress


def initial_version(repo: Path, service: str) -> str:
    first = git(repo, "rev-list", "--max-parents=0", "main").split()[0]
    text = git(repo, "show", f"{first}:services/{service}.yaml")
    return next(
        line.split(":", 1)[1].strip().strip('"')
        for line in text.splitlines()
        if line.startswith("version:")
    )


def test_oom_is_diagnosed_rolled_back_verified_and_remembered(tmp_path: Path) -> None:
    with demo(tmp_path) as d:
        good = initial_version(d.state / "gitops", "checkout")
        inject_after_warmup(d, "oom")
        progress = wait_until_done(d, "checkout")
        d.stop_shop.set()
    store = d.store
    incident = progress["incident"]
    iid = incident["id"]
    outcome = progress["data"].get("outcome") or {}
    assert progress["step"] == "done", (progress["step"], progress["data"])
    assert outcome.get("result") == "resolved", outcome
    # The responders' lifecycle came back as incident events: the store's incident is resolved.
    assert store.get("incidents", iid)["state"] == "resolved"
    timeline = [e["event"] for e in store.query("incident_events", key=iid)]
    assert {"opened", "diagnosed", "mitigating", "verifying", "resolved"} <= set(timeline), timeline

    diagnosis = store.get("diagnoses", iid)
    assert diagnosis is not None and not diagnosis["abstained"], diagnosis
    assert diagnosis["candidates"][0]["service"] == "checkout", diagnosis["summary"]

    prs = store.query("pull_requests", key=iid)
    assert len(prs) == 1, prs
    pr = prs[0]
    assert pr["change"]["action"] == "rollback_version"
    assert pr["change"]["service"] == "checkout"
    assert pr["change"]["after"] == {"version": good}, pr["change"]
    assert pr["state"] == "merged" and pr["merge_sha"]

    repo = d.state / "gitops"
    merges = git(repo, "log", "--merges", "--format=%H", "main").split()
    assert pr["merge_sha"] in merges
    assert f'version: "{good}"' in git(repo, "show", "main:services/checkout.yaml")
    # The shop runs the merge: its reported head is the merge commit (nothing committed since).
    assert read_shop_head(d.state) == pr["merge_sha"] == d.shop.head

    actions = {(a["actor"], a["action"]) for a in store.query("actions", key=iid)}
    for expected in [
        ("responder", "diagnosed"),
        ("fixer", "open_pull_request"),
        ("fixer", "merge"),
        ("responder", "deployed"),
        ("responder", "verified"),
        ("responder", "postmortem"),
    ]:
        assert expected in actions, sorted(actions)

    path = d.state / "postmortems" / f"{iid}.md"
    assert path.exists()
    assert "checkout" in path.read_text(encoding="utf-8")
    memory = Memory.from_settings(d.settings, store=store)
    found = memory.search("checkout memory leak OOMKilled rollback", n=5)
    assert iid in [s.incident_id for s in found], found


def test_a_fix_that_does_not_help_is_reverted_and_escalated(tmp_path: Path) -> None:
    # The policy lets only `raise_memory_limit` merge on its own: the Fixer skips the rollback the
    # Brain ranks first and doubles checkout's limit, which a fast leak fills again within the
    # verification deadline (the oom scenario's own note: "only delays the next OOM").
    policy = {"auto_merge": ["raise_memory_limit"], "require_approval": []}
    with demo(tmp_path, policy=policy) as d:
        inject_after_warmup(d, "oom", intensity=3.0)
        progress = wait_until_done(d, "checkout")
        d.stop_shop.set()
    store = d.store
    iid = progress["incident"]["id"]
    outcome = progress["data"].get("outcome") or {}
    assert progress["step"] == "done", (progress["step"], progress["data"])
    assert outcome.get("result") == "reverted", outcome
    assert "deadline" in outcome.get("detail", ""), outcome
    assert store.get("incidents", iid)["state"] == "escalated"

    diagnosis = store.get("diagnoses", iid)
    assert diagnosis is not None and diagnosis["candidates"][0]["service"] == "checkout"
    refused = [
        a
        for a in store.query("actions", key=iid)
        if a["action"] == "policy_refuse" and "rollback_version" in a["inputs"].get("request", "")
    ]
    assert refused, "the policy should have refused the rollback"

    prs = store.query("pull_requests", key=iid)
    assert len(prs) == 1, prs
    pr = prs[0]
    assert pr["change"]["action"] == "raise_memory_limit"
    assert pr["state"] == "reverted" and pr["merge_sha"] and pr["revert_sha"], pr

    repo = d.state / "gitops"
    log = git(repo, "log", "--format=%H %s", "main").splitlines()
    assert log[0].split()[0] == pr["revert_sha"] and 'Revert "Merge' in log[0], log[:3]
    assert pr["merge_sha"] in git(repo, "log", "--merges", "--format=%H", "main").split()
    assert "memory_limit_mib: 512" in git(repo, "show", "main:services/checkout.yaml")
    # The revert is deployed too: the shop runs it.
    assert read_shop_head(d.state) == pr["revert_sha"] == d.shop.head

    tracker = [t for t in store.query("tracker") if t.get("incident_id") == iid]
    labels = {label for t in tracker for label in t.get("labels", [])}
    assert "state:escalated" in labels and "needs-human" in labels, tracker

    assert (d.state / "postmortems" / f"{iid}.md").exists()
    memory = Memory.from_settings(d.settings, store=store)
    fingerprint = progress["incident"]["fingerprint"]
    assert "raise_memory_limit" in memory.avoided_actions(fingerprint)
