"""`python -m chaos`: list, run, stop, record, suite, shop, and `python -m chaos NAME` (= run NAME)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from chaos import control
from chaos.scenarios import registry
from sre_space import timeutil
from sre_space.paths import StatePaths, state_dir


def parse_duration(text: str) -> float:
    """`timeutil.parse_duration` for argparse, so that its error shows the accepted forms."""
    try:
        return timeutil.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _state(args: argparse.Namespace) -> Path:
    return state_dir(args.state)


def build_parser() -> argparse.ArgumentParser:
    """The `python -m chaos` parser."""
    p = argparse.ArgumentParser(
        prog="python -m chaos", description="The simulated shop and its fault scenarios."
    )
    p.add_argument("--state", help="state folder (default: $SRE_STATE_DIR or ./state)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the scenarios")
    run = sub.add_parser("run", help="inject a scenario into the running shop")
    run.add_argument("name")
    _inject_options(run)
    stop = sub.add_parser("stop", help="end every injection in the running shop (or one, by --tag)")
    stop.add_argument("--tag")
    rec = sub.add_parser(
        "record", help="record a scenario (or `healthy`) to OTLP/JSON lines plus labels"
    )
    rec.add_argument("name")
    rec.add_argument("--seed", type=int, required=True)
    rec.add_argument("--duration", type=parse_duration, required=True)
    rec.add_argument("--out", required=True, help="file to write (.gz for gzip)")
    rec.add_argument(
        "--onset",
        type=parse_duration,
        help="when the fault starts (default: a third in, at most 20m)",
    )
    rec.add_argument(
        "--fault-duration",
        type=parse_duration,
        help="end the fault after this long (default: never)",
    )
    rec.add_argument("--service", help="target service (default: the scenario's)")
    rec.add_argument("--intensity", type=float, default=1.0)
    rec.add_argument("--rate", type=float, default=20.0, help="mean frontend requests per second")
    rec.add_argument("--metric-interval", type=parse_duration, default=10.0)
    rec.add_argument("--no-noise", action="store_true", help="no harmless background deploy")
    su = sub.add_parser("suite", help="every scenario x 3 seeds plus fault-free hours")
    su.add_argument("--out", required=True)
    su.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    su.add_argument("--duration", type=parse_duration, default=3600.0)
    su.add_argument("--onset", type=parse_duration, default=1200.0)
    su.add_argument("--healthy-hours", type=int, default=3, help="fault-free recordings to add")
    su.add_argument("--rate", type=float, default=20.0, help="mean frontend requests per second")
    shop = sub.add_parser("shop", help="run the shop in real time and publish to Kafka")
    shop.add_argument("--seed", type=int, default=0)
    shop.add_argument("--rate", type=float, default=20.0)
    shop.add_argument("--speed", type=float, default=1.0, help="event seconds per wall second")
    shop.add_argument("--duration", type=parse_duration, help="stop after this much event time")
    shop.add_argument(
        "--bootstrap", help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS)"
    )
    for name, scenario in registry().items():
        bare = sub.add_parser(name, help=f"run {name}: {scenario.summary}")
        _inject_options(bare)
    return p


def _inject_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--service", help="target service (default: the scenario's)")
    p.add_argument("--intensity", type=float, default=1.0)
    p.add_argument(
        "--duration", type=parse_duration, help="end the fault after this long (event time)"
    )


def cmd_list() -> int:
    """Print the scenarios."""
    for name, s in registry().items():
        print(f"{name:20} {s.fault_class:20} target {s.default_service:15} {s.summary}")
    return 0


def cmd_run(args: argparse.Namespace, name: str) -> int:
    """Send an inject command to the running shop."""
    if name not in registry():
        print(f"unknown scenario {name!r}; known: {', '.join(registry())}", file=sys.stderr)
        return 2
    state = _state(args)
    cid = control.send(
        state,
        {
            "cmd": "inject",
            "scenario": name,
            "service": args.service,
            "intensity": args.intensity,
            "duration_s": args.duration,
        },
    )
    print(f"sent {name} (command {cid}) to the shop through {control.control_path(state)}")
    if not control.status_path(state).exists():
        print(
            "note: no shop has reported in this state folder yet; start one with `python -m chaos shop`"
        )
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Send a clear command."""
    cid = control.send(_state(args), {"cmd": "clear", "tag": args.tag})
    print(f"sent stop (command {cid})")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    """Record one scenario."""
    from chaos.recorder import record

    t0 = time.perf_counter()
    labels = record(
        args.name,
        args.seed,
        args.duration,
        args.out,
        onset_s=args.onset,
        intensity=args.intensity,
        service=args.service,
        fault_duration_s=args.fault_duration,
        rate_rps=args.rate,
        metric_interval_s=args.metric_interval,
        noise=not args.no_noise,
    )
    took = time.perf_counter() - t0
    print(
        f"wrote {args.out} ({labels['lines']} export requests, {args.duration:.0f}s of event time in {took:.1f}s)"
    )
    return 0


def cmd_suite(args: argparse.Namespace) -> int:
    """Record the standard suite."""
    from chaos.recorder import suite

    files = suite(
        args.out,
        tuple(args.seeds),
        args.duration,
        args.onset,
        args.healthy_hours,
        rate_rps=args.rate,
        log=print,
    )
    print(f"{len(files)} recordings in {args.out}")
    return 0


def cmd_shop(args: argparse.Namespace) -> int:
    """Run the live shop against Kafka."""
    from chaos.live import kafka_publisher, run_live
    from chaos.shop import Shop, ShopConfig
    from sre_space.settings import load_settings

    settings = load_settings()
    state = _state(args)
    bootstrap = args.bootstrap or settings.kafka_bootstrap_servers
    epoch = time.time_ns() // 1_000_000_000 * 1_000_000_000
    shop = Shop(
        seed=args.seed,
        gitops_path=StatePaths(state).gitops,
        config=ShopConfig(rate_rps=args.rate, epoch_ns=epoch),
    )
    publish, flush = kafka_publisher(
        bootstrap,
        settings.spans_topic,
        settings.metrics_topic,
        settings.spans_encoding,
        metrics_encoding=settings.metrics_encoding,
    )
    print(
        f"shop running: {args.rate} req/s to {bootstrap} ({settings.spans_topic}, {settings.metrics_topic}); Ctrl-C stops"
    )
    try:
        run_live(shop, publish, state, speed=args.speed, duration_s=args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        left = flush()
        if left:
            print(f"warning: {left} messages were not delivered", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m chaos`."""
    args = build_parser().parse_args(argv)
    if args.command == "list":
        return cmd_list()
    if args.command == "run":
        return cmd_run(args, args.name)
    if args.command == "stop":
        return cmd_stop(args)
    if args.command == "record":
        return cmd_record(args)
    if args.command == "suite":
        return cmd_suite(args)
    if args.command == "shop":
        return cmd_shop(args)
    return cmd_run(args, args.command)
