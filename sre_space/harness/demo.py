"""`sre-space demo`: the closed loop on one machine, in real time, with the dashboard.

The simulated shop, the dataflow and the responders run together over one state folder (see
`sre_space.harness.rig`): the shop reads its desired state from the GitOps repository under the state folder
and obeys `python -m chaos --state STATE NAME` from another terminal; Scout's incidents are
diagnosed, fixed by a pull request merged in the local forge (which the shop then runs), verified,
reverted if that did not help, and written up in Memory; the dashboard shows all of it.

No external service is needed. With KAFKA_BOOTSTRAP_SERVERS set, or with `--kafka` (which starts
the local broker from `scripts/kafka/kafka` when none is set), the shop produces OTLP to Kafka and
the production flow `python -m bytewax.run flows.main` reads it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sre_space.harness.rig import REPO, RigOptions, run_rig
from sre_space.harness.site import shop_config_files
from sre_space.settings import load_settings
from sre_space.timeutil import parse_duration

KAFKA_SCRIPT = REPO / "scripts" / "kafka" / "kafka"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--duration", help="stop after this much simulated time (e.g. 30m)")
    parser.add_argument("--seed", type=int, default=1, help="the shop's random seed")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="requests per second at the shop's entry"
    )
    parser.add_argument("--port", type=int, default=8501, help="dashboard port")
    parser.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    parser.add_argument(
        "--kafka",
        action="store_true",
        help="run through Kafka: KAFKA_BOOTSTRAP_SERVERS, or a local broker started for the demo",
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(config=shop_config_files())
    state, paths = settings.state_dir, settings.paths
    state.mkdir(parents=True, exist_ok=True)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or None
    started_broker = False
    if args.kafka and bootstrap is None:
        bootstrap = start_local_broker()
        started_broker = True
    options = RigOptions(
        seed=args.seed,
        speed=args.speed,
        rate_rps=args.rate,
        duration_s=parse_duration(args.duration) if args.duration else None,
        kafka=bootstrap,
        # Real time: the flow keeps up, and a paced shop would only add latency.
        max_lead_s=None if args.speed <= 1.0 else 40.0,
        poll_s=1.0,
        log=_log,
    )
    dashboard = None if args.no_dashboard else _start_dashboard(state, args.port)
    where = f"http://127.0.0.1:{args.port}" if dashboard else "not started (--no-dashboard)"
    transport = f"Kafka at {bootstrap} (flows.main)" if bootstrap else "in-process (no broker)"
    print(
        f"SRE-Space demo: state in {state.resolve()}\n"
        f"  dashboard:  {where}\n"
        f"  break it:   python -m chaos --state {state} oom   (or conversion, latency, ...)\n"
        f"  transport:  {transport}\n"
        f"  signals:    {paths.db} (SQLite), span archive in {paths.spans}\n"
        f"  fixes:      git -C {paths.gitops} log --oneline   (the local forge)\n"
        f"  memory:     {paths.postmortems}\n"
        f"  stop:       Ctrl-C",
        flush=True,
    )
    try:
        with run_rig(settings, options) as rig:
            # The in-process flow ends after the shop's last batch (--duration); the Kafka flow
            # tails its topics, so the demo ends when the shop does.
            while rig.shop_running() and rig.flow_alive():
                time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping", file=sys.stderr)
    finally:
        if dashboard is not None:
            dashboard.terminate()
        if started_broker:
            subprocess.run(["bash", str(KAFKA_SCRIPT), "down"], check=False)
    return 0


def start_local_broker() -> str:
    """`scripts/kafka/kafka up` (Apache Kafka from Maven jars); its bootstrap address."""
    up = subprocess.run(
        ["bash", str(KAFKA_SCRIPT), "up"], stdout=subprocess.PIPE, text=True, check=False
    )
    if up.returncode != 0:
        raise SystemExit(f"could not start the local Kafka broker (exit {up.returncode})")
    for line in up.stdout.splitlines():
        if line.startswith("KAFKA_BOOTSTRAP_SERVERS="):
            return line.partition("=")[2].strip()
    return f"127.0.0.1:{os.environ.get('SRE_KAFKA_PORT', '9092')}"


def _log(line: str) -> None:
    print(line, flush=True)


def _start_dashboard(state: Path, port: int) -> subprocess.Popen[bytes] | None:
    """Start the Streamlit dashboard if this install has it; the demo runs without it."""
    app = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
    exe = shutil.which("sre-space") or f"{sys.executable} -m sre_space.cli"
    if not app.exists():
        return None
    return subprocess.Popen(
        [*exe.split(), "--state", str(state), "dashboard", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
