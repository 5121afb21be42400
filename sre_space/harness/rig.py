"""The closed loop on one machine: the shop, the dataflow and the responders over one state folder.

Two transports carry the shop's OTLP to the dataflow:
- `queue` (the default, no external service): the flow runs in this process, fed by a queue;
- `kafka`: the shop produces to the OTLP topics as the Collector's Kafka exporter does, and the
  production flow (`python -m bytewax.run flows.main`) runs as a child process reading them.

Either way signals, anomalies and incidents land in the state folder's store and span archive,
and the responders (Brain, Fixer, Memory) act on them on their own thread. `sre-space demo` runs
the rig in real time; `sre-space drill` runs it in accelerated simulated time. The shop is paced
to the flow's newest window so that, at high speed, a fix merged at the flow's "now" is deployed
at that moment of event time rather than minutes later in the data.

This module composes the shop with the flow, so it imports `chaos` (a separate top-level package).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bytewax.testing import run_main

from chaos.live import kafka_publisher, run_live, write_status
from chaos.shop import Batch, Shop, ShopConfig
from flows.embedded import build_embedded_flow
from flows.queue_source import END, QueueSource
from flows.sources import create_topics
from operators.otlp.messages import RawMessage
from sinks.fixer.factory import Deployer, build_deployer
from sinks.fixer.reconciler import ReconcileResult
from sinks.fixer.shop_reconciler import ShopReconciler
from sinks.store.sqlite import Store
from sre_space.paths import STATE_ENV
from sre_space.responders.lifecycle import kafka_publisher as json_publisher
from sre_space.responders.loop import ResponderLoop
from sre_space.settings import Settings
from sre_space.timeutil import NS_PER_S, rfc3339_to_ns

Log = Callable[[str], None]
REPO = Path(__file__).resolve().parents[2]
KAFKA_TOPICS = ("spans", "metrics", "signals", "anomalies", "incidents", "deadletter", "actions")


class _StopShop(Exception):
    """Raised from the publish callback to end `run_live` once the rig is stopping."""


@dataclass
class RigOptions:
    """How to run the loop. Times are simulated seconds unless named otherwise."""

    seed: int = 1
    speed: float = 1.0
    rate_rps: float = 20.0
    epoch_ns: int | None = None  # None: now, rounded to the second
    duration_s: float | None = None  # None: until stopped
    kafka: str | None = None  # bootstrap servers; None runs the flow in-process
    policy_path: Path | None = None
    # How far (event time) the shop may run ahead of the flow's newest window; None: unpaced.
    max_lead_s: float | None = 40.0
    poll_s: float = 0.3
    deploy_timeout_s: float = 60.0
    # shop: the shop says which commit it runs; gitops: as with Argo CD / Flux, nothing is told,
    # and the responders wait until the telemetry shows the merged change
    reconciler: Literal["shop", "gitops"] = "shop"
    log: Log = field(default=lambda line: print(line, flush=True))


class Rig:
    """The running loop: start with `run_rig`, read the store, stop on exit."""

    def __init__(self, settings: Settings, options: RigOptions) -> None:
        self.settings = settings
        self.options = options
        self.state = settings.state_dir
        self.state.mkdir(parents=True, exist_ok=True)
        epoch = options.epoch_ns or time.time_ns() // NS_PER_S * NS_PER_S
        # The shop creates the GitOps repository on first use (idempotent) and runs its `main`.
        self.shop = Shop(
            seed=options.seed,
            gitops_path=settings.paths.gitops,
            config=ShopConfig(rate_rps=options.rate_rps, epoch_ns=epoch),
        )
        self.epoch_ns = epoch
        self.stop_event = threading.Event()
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._flow_proc: subprocess.Popen[bytes] | None = None
        self._queue: queue.Queue[RawMessage | None] = queue.Queue(maxsize=64)
        self._flow_store = Store(settings.paths.db)
        self.responders: ResponderLoop
        self._responders_thread: threading.Thread | None = None
        self._responders_stop = threading.Event()
        self.deploying = False
        self._seq = iter(range(1 << 62))

    # --- what a caller reads ------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """A fresh handle on the state folder's store (one per caller thread)."""
        return Store(self.settings.paths.db)

    def sim_s(self) -> float:
        """Simulated seconds since the rig's epoch."""
        return (self.shop.now_ns - self.epoch_ns) / NS_PER_S

    def flow_alive(self) -> bool:
        """The dataflow still runs (in-process it ends after the shop's last batch)."""
        if self._flow_proc is not None:
            return self._flow_proc.poll() is None
        return any(t.name == "flow" and t.is_alive() for t in self._threads)

    def shop_running(self) -> bool:
        """The shop still produces (it stops at `duration_s` or when the rig stops)."""
        return any(t.name == "shop" and t.is_alive() for t in self._threads)

    def alive(self) -> bool:
        """The shop or the flow still runs."""
        return any(t.is_alive() for t in self._threads) or self.flow_alive()

    def flow_now_ns(self) -> int:
        """Event time of the flow's newest signal window in the store (0 before the first)."""
        rows = self._flow_store.query("signals", limit=50, newest_first=True)
        newest = max((rfc3339_to_ns(r["window_end"]) for r in rows), default=0)
        # Windows from before this rig's epoch are an earlier run's (a drill history).
        return newest if newest > self.epoch_ns else 0

    # --- running ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the flow, the responders and the shop."""
        opts = self.options
        self.responders = ResponderLoop(
            self.settings,
            policy_path=opts.policy_path,
            deployer=self._deployer(),
            publish=json_publisher(opts.kafka) if opts.kafka else None,
            log=lambda line: opts.log(f"responders: {line}"),
        )
        self._responders_thread = threading.Thread(
            target=self.responders.run_forever,
            args=(self._responders_stop, opts.poll_s),
            name="responders",
            daemon=True,
        )
        self._responders_thread.start()
        if opts.kafka:
            create_topics(opts.kafka, list(topics_of(self.settings).values()))
            self._flow_proc = self._start_kafka_flow(opts.kafka)
            publish, flush = kafka_publisher(
                opts.kafka, self.settings.spans_topic, self.settings.metrics_topic
            )
        else:
            self._threads.append(threading.Thread(target=self._flow_thread, name="flow"))
            publish, flush = self._queue_publish, lambda: 0
        self._threads.append(
            threading.Thread(target=self._shop_thread, args=(publish, flush), name="shop")
        )
        for t in self._threads:
            t.daemon = True
            t.start()

    def _deployer(self) -> Deployer:
        """The shop applies `main` itself; whether it says so or the telemetry shows it."""
        if self.options.reconciler == "gitops":
            return build_deployer(self.settings, self._flow_store, mode="gitops")
        shop = ShopReconciler(self.state, timeout_s=self.options.deploy_timeout_s)
        return Deployer(_Deploying(self, shop), None, 0.0, "shop")

    def stop(self, timeout_s: float = 120.0) -> None:
        """Stop the shop, let the flow drain (queue) or interrupt it (Kafka), stop the responders."""
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=timeout_s)
        if self._flow_proc is not None:
            stop_child(self._flow_proc, timeout_s=30.0)
        if self._responders_thread is not None:
            self._responders_stop.set()
            self._responders_thread.join(timeout=timeout_s)
            self.responders.close()
        self._flow_store.close()

    def paced_now_ns(self) -> int:
        """The event time the shop is paced to: the flow's newest window, or the responders' tick
        in progress when it is older (unless that tick waits for the shop to deploy a fix)."""
        now = self.flow_now_ns()
        busy = self.responders.busy_at_ns
        if now and busy is not None and not self.deploying:
            return min(now, busy)
        return now

    def _paced(self, batch: Batch) -> None:
        """Hold the shop while it runs more than `max_lead_s` of event time ahead of the loop."""
        lead = self.options.max_lead_s
        if lead is None or batch.kind != "metrics":
            return
        # Before the flow's first window (a child process still starting) the epoch is "now".
        while batch.time_ns - (self.paced_now_ns() or self.epoch_ns) > lead * NS_PER_S:
            if self.stop_event.is_set() or not self.flow_alive():
                raise _StopShop
            time.sleep(0.02)

    def _shop_thread(self, publish: Callable[[Batch], None], flush: Callable[[], int]) -> None:
        head = [self.shop.head]

        def paced_publish(batch: Batch) -> None:
            self._paced(batch)
            if self.stop_event.is_set():
                raise _StopShop
            publish(batch)
            if self.shop.head != head[0]:
                # A merge deployed mid-tick: the reconciler reads the head from status.json.
                head[0] = self.shop.head
                write_status(self.shop, self.state)

        try:
            run_live(
                self.shop,
                paced_publish,
                self.state,
                speed=self.options.speed,
                duration_s=self.options.duration_s,
                log=lambda line: self.options.log(f"shop: {line}"),
            )
        except _StopShop:
            pass
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            flush()
            self._end_queue()

    def _queue_publish(self, batch: Batch) -> None:
        data = batch.proto_bytes()
        seq = next(self._seq)
        spans = batch.kind == "spans"
        message = RawMessage("shop", 0, seq, data, "traces" if spans else "metrics")
        while True:
            if self.stop_event.is_set():
                raise _StopShop
            try:
                self._queue.put(message, timeout=0.5)
                return
            except queue.Full:
                continue

    def _end_queue(self) -> None:
        # The flow ends on END; a full queue with a dead flow must not block the shop's thread.
        with suppress(queue.Full):
            self._queue.put(END, timeout=5.0)

    def _flow_thread(self) -> None:
        try:
            wall_clock = self.options.epoch_ns is None and self.options.speed == 1.0
            flow = build_embedded_flow(
                self.settings, QueueSource(self._queue), wall_clock=wall_clock
            )
            run_main(flow)
        except BaseException as exc:
            self.errors.append(exc)

    def _start_kafka_flow(self, bootstrap: str) -> subprocess.Popen[bytes]:
        """The production flow as a child process on this rig's settings (simulated clock)."""
        return start_kafka_flow(
            self.settings, bootstrap, self.settings.paths.flow_log, deterministic_clock=True
        )


class _Deploying:
    """The shop's reconciler, flagging the rig while a deploy waits for the shop to run it."""

    def __init__(self, rig: Rig, inner: ShopReconciler) -> None:
        self.rig = rig
        self.inner = inner

    def apply(self, commit_sha: str) -> ReconcileResult:
        self.rig.deploying = True
        try:
            return self.inner.apply(commit_sha)
        finally:
            self.rig.deploying = False


def topics_of(settings: Settings) -> dict[str, str]:
    """Every Kafka topic the loop uses, by short name (spans, metrics, ..., actions)."""
    return {name: getattr(settings, f"{name}_topic") for name in KAFKA_TOPICS}


def start_kafka_flow(
    settings: Settings,
    bootstrap: str,
    log: Path,
    *,
    deterministic_clock: bool,
    args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """`python -m bytewax.run flows.main [args]` tailing Kafka on `settings` (state folder,
    topics, pipeline config), its output appended to `log`.

    `deterministic_clock`: windows close on event time only. Needed when the producer's clock
    is simulated; it also turns off the wall-clock heartbeat (watermark delay, consumer lag),
    which would compare two different clocks.
    """
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        STATE_ENV: str(settings.state_dir),
        "SRE_DETERMINISTIC_CLOCK": str(deterministic_clock).lower(),
        "SRE_KAFKA_TAIL": "true",
        **{f"SRE_{name.upper()}_TOPIC": t for name, t in topics_of(settings).items()},
    }
    if settings.config is not None:
        env["SRE_CONFIG"] = str(settings.config)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "flows.main", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_child(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Ctrl-C the child (Bytewax stops cleanly on it), then terminate, then kill."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 10.0)):
        proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.kill()
    proc.wait()


@contextmanager
def run_rig(settings: Settings, options: RigOptions) -> Iterator[Rig]:
    """Start the loop, yield it, stop it; an error on the shop's or the flow's thread is raised."""
    rig = Rig(settings, options)
    rig.start()
    try:
        yield rig
    finally:
        rig.stop()
    if rig.errors:
        raise RuntimeError(f"the loop failed: {rig.errors[0]!r}") from rig.errors[0]
