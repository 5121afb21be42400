"""`sre-space demo`: the simulated shop, the dataflow and Scout on one machine, no external service.

The shop runs on a thread in (scaled) real time, reading its desired state from the GitOps
repository under the state folder and obeying `python -m chaos --state STATE NAME` from another
terminal; its OTLP goes through a queue into the same dataflow that reads Kafka in production, and
signals, anomalies and incidents land in the SQLite store and the span archive under the state
folder, where the dashboard reads them. The responders (Brain, Fixer, Memory) run on a third
thread: they diagnose each incident, open and merge the fix in the local GitOps repository (which
the shop then runs), verify, revert if it did not help, and write the post-mortem. The demo is the one place that composes the shop with the
flow, so it imports `chaos` inside its run function only.
"""

from __future__ import annotations

import argparse
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main

from flows.build import build_signals
from flows.queue_source import END, QueueSource
from flows.responders import start_responders_thread
from flows.scout import build_scout
from flows.state_outputs import attach_state_outputs
from operators.otlp.messages import RawMessage
from sre_space.settings import Settings, load_settings

DEMO_DURATIONS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str | None) -> float | None:
    """'90s', '10m', '2h' or plain seconds; None for no limit."""
    if not text:
        return None
    unit = DEMO_DURATIONS.get(text[-1])
    try:
        return float(text[:-1]) * unit if unit else float(text)
    except ValueError:
        raise ValueError(f"--duration {text!r}: use seconds or a number with s, m or h") from None


def build_demo_flow(settings: Settings, source: QueueSource) -> Dataflow:
    """The embedded flow: queue in, store and archive out (event-time windows, Scout)."""
    flow = Dataflow("sre_space_demo")
    raw = op.input("shop", flow, source)
    # Event time only: the shop's clock may run faster than the wall clock (--speed).
    streams = build_signals(flow, raw, settings.pipeline, deterministic_clock=True, live=True)
    scout = build_scout(streams.signals, streams.edges, settings.pipeline, live=False)
    attach_state_outputs(streams, scout, streams.deadletters, settings)
    return flow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--duration", help="stop after this much simulated time (e.g. 30m)")
    parser.add_argument("--seed", type=int, default=1, help="the shop's random seed")
    parser.add_argument("--rate", type=float, default=20.0, help="frontend requests per second")
    parser.add_argument("--port", type=int, default=8501, help="dashboard port")
    parser.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")


def run(args: argparse.Namespace) -> int:
    from chaos.live import run_live
    from chaos.shop import Shop, ShopConfig

    settings = load_settings()
    state = settings.state_dir
    state.mkdir(parents=True, exist_ok=True)
    duration_s = parse_duration(args.duration)
    now_ns = time.time_ns() // 1_000_000_000 * 1_000_000_000
    # The shop creates the GitOps repository on first use (idempotent) and reads `main` from it.
    shop = Shop(
        seed=args.seed,
        gitops_path=state / "gitops",
        config=ShopConfig(rate_rps=args.rate, epoch_ns=now_ns),
    )
    q: queue.Queue[RawMessage | None] = queue.Queue(maxsize=20_000)
    seq = iter(range(1 << 62))

    def publish(batch: object) -> None:
        kind = getattr(batch, "kind", "spans")
        data: bytes = batch.proto_bytes()  # type: ignore[attr-defined]
        q.put(RawMessage("shop", 0, next(seq), data, "traces" if kind == "spans" else "metrics"))

    def shop_thread() -> None:
        try:
            run_live(shop, publish, state, speed=args.speed, duration_s=duration_s, log=_log)
        finally:
            q.put(END)

    dashboard = None if args.no_dashboard else _start_dashboard(state, args.port)
    where = f"http://127.0.0.1:{args.port}" if dashboard else "not started (--no-dashboard)"
    print(
        f"SRE-Space demo: state in {state.resolve()}\n"
        f"  dashboard:  {where}\n"
        f"  break it:   python -m chaos --state {state} oom   (or conversion, latency, ...)\n"
        f"  signals:    {state / 'sre.db'} (SQLite), span archive in {state / 'spans'}\n"
        f"  stop:       Ctrl-C",
        flush=True,
    )
    threading.Thread(target=shop_thread, name="shop", daemon=True).start()
    # Brain, Fixer and Memory act on the store's incidents on their own thread, never the flow's.
    responders, stop_responders = start_responders_thread(settings)
    try:
        run_main(build_demo_flow(settings, QueueSource(q)))
    except KeyboardInterrupt:
        print("\nstopping", file=sys.stderr)
    finally:
        stop_responders.set()
        responders.join(timeout=30)
        if dashboard is not None:
            dashboard.terminate()
    return 0


def _log(line: str) -> None:
    print(f"shop: {line}", flush=True)


def _start_dashboard(state: Path, port: int) -> subprocess.Popen[bytes] | None:
    """Start the Streamlit dashboard if this install has it; the demo runs without it."""
    app = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
    exe = shutil.which("sre-space") or f"{sys.executable} -m sre_space.cli"
    if not app.exists():
        return None
    return subprocess.Popen(
        [*exe.split(), "--state", str(state), "dashboard", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
