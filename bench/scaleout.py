"""The Kafka flow (archive on) as one Bytewax process, then as a cluster of several, on one topic.

    python -m bench.scaleout --kafka 127.0.0.1:9092 [--spans 400000] [--procs 1 2] [--partitions 4]
                             [--independent] [--rounds 1]

Each run gets fresh topics (the spans topic with `--partitions` partitions) and state folder; the
processes are started with `bytewax.testing.cluster_main` (one worker each) and report their own
CPU seconds and peak RSS. Total throughput is spans in `sre.signals` over the slowest process's
wall time (spans that arrive after their window closed count too, and are reported as late).
`--independent` adds, for each count above one, that many separate one-process flows, each on
its own topic with its share of the spans and partitions: what this machine gives with no
exchange between processes at all, the ceiling for the cluster's figure. Each run also reports
the cores the whole machine kept busy (Linux's /proc/stat: the flows, their threads and the
broker) and the ratio it would reach if none were idle at the CPU it spent (`x_one_full`): one
process that keeps more than one core busy leaves less than a second core to a second process.
`--rounds N` runs the whole sequence N times in turn: each ratio is to the same round's
one-process run (a 2-core machine's speed moves by a third within minutes), reported as the
median and range over rounds.
Results go to bench/out/scaleout.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.throughput import (
    OUT,
    _spans_in_signals,
    drop_topics,
    median_figures,
    publish_in_child,
)

TOPICS = ("spans", "metrics", "signals", "dead")


def _settings(bootstrap: str, suffix: str, state: Path) -> Any:
    from sre_space.settings import Settings

    config = state / "pipeline.yaml"
    if not config.exists():
        config.write_text("archive:\n  enabled: true\n")
    names = {name: f"scale-{name}-{suffix}" for name in TOPICS}
    return Settings(
        config=config,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        state_dir=state,
        kafka_tail=False,
        spans_topic=names["spans"],
        metrics_topic=names["metrics"],
        signals_topic=names["signals"],
        deadletter_topic=names["dead"],
    )


def member(bootstrap: str, suffix: str, state: Path, addresses: list[str], proc: int) -> None:
    """One process of the cluster: run the flow to the end of the topic and report."""
    from bytewax.testing import cluster_main

    from flows.main import build_kafka_flow

    flow = build_kafka_flow(_settings(bootstrap, suffix, state))
    print("ready", flush=True)
    sys.stdin.readline()  # the parent starts process 0 first: see `_start_in_order`
    busy0, m0 = _machine_busy(), time.monotonic()
    t0, c0 = time.perf_counter(), time.process_time()
    cluster_main(flow, addresses, proc)
    report = {
        "proc": proc,
        # the machine's busy CPU seconds and the (system-wide) monotonic clock at start and end
        "machine_busy": [busy0, _machine_busy()],
        "monotonic": [m0, time.monotonic()],
        "seconds": round(time.perf_counter() - t0, 3),
        "cpu_seconds": round(time.process_time() - c0, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(report))


def _start_in_order(children: list[subprocess.Popen[str]], addresses: list[list[str]]) -> None:
    """Let the built flows run, process 0 of a cluster first: Timely's process 1 connects to
    process 0 and, refused because 0 is not listening yet, sleeps a whole second before it tries
    again (the first runs of this bench measured that second as the cluster's)."""
    for child in children:
        assert child.stdin is not None and child.stdout is not None
        # Lines before it (a library's) are passed on; no line at all: the process ended.
        while (line := child.stdout.readline()) and line.strip() != "ready":
            print(line, end="", file=sys.stderr)
        if not line:
            raise SystemExit("a flow process failed before it started")
    for k, child in enumerate(children):
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        if k == 0 and len(addresses[0]) > 1:
            _await_listening(int(addresses[0][0].rpartition(":")[2]))


def _await_listening(port: int, timeout_s: float = 5.0) -> None:
    """Until something listens on `port` here (Linux: /proc/net/tcp), or `timeout_s` passed."""
    hex_port = f":{port:04X} "
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as f:
                # columns: sl, local_address, rem_address, st (0A: listening)
                if any(hex_port in line and line.split()[3] == "0A" for line in f):
                    return
        time.sleep(0.005)


def busy_seconds(stat: str) -> float:
    """CPU seconds the machine spent on anything but idling, from /proc/stat's text (its first
    line: jiffies in user, nice, system, idle, iowait, irq, softirq, steal)."""
    fields = [int(v) for v in stat.split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float | None:
    try:
        with open("/proc/stat") as f:
            return busy_seconds(f.read())
    except OSError:  # not Linux: the run reports no machine figures
        return None


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in socks]
    for s in socks:
        s.close()
    return ports


def run(
    bootstrap: str,
    spans: int,
    per_request: int,
    procs: int,
    partitions: int,
    independent: bool = False,
) -> dict[str, Any]:
    """Publish the lean workload over `partitions` partitions, run the flow on `procs` processes
    (`independent`: `procs` one-process flows, each on its own topic with a share of both)."""

    from flows.sources import create_topics

    flows = procs if independent else 1
    runs = []
    for _ in range(flows):
        suffix = uuid.uuid4().hex[:8]
        state = Path(tempfile.mkdtemp(prefix="sre-scale-"))
        settings = _settings(bootstrap, suffix, state)
        create_topics(bootstrap, [settings.spans_topic], partitions=partitions // flows)
        create_topics(
            bootstrap, [settings.metrics_topic, settings.signals_topic, settings.deadletter_topic]
        )
        publish_in_child(bootstrap, settings.spans_topic, spans // flows, per_request, "lean")
        runs.append((suffix, state, settings))
    cmd = [sys.executable, "-m", "bench.scaleout", "--kafka", bootstrap, "--member"]
    if independent:
        members = [(run, 0, [f"127.0.0.1:{_free_ports(1)[0]}"]) for run in runs]
    else:
        addresses = [f"127.0.0.1:{p}" for p in _free_ports(procs)]
        members = [(runs[0], proc, addresses) for proc in range(procs)]
    children = [
        subprocess.Popen(
            [*cmd, suffix, str(state), str(proc), *addresses],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for (suffix, state, _), proc, addresses in members
    ]
    _start_in_order(children, [addresses for _, _, addresses in members])
    reports = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode != 0:
            raise SystemExit(f"flow process failed with exit code {child.returncode}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    counted = late = 0
    for _, state, settings in runs:
        # Spans that reached a window after it closed (partitions more than
        # `signals.partition_skew_seconds` apart) still count, from the late-data signal, and
        # are reported apart (the workload has no journeys, whose late data would count too).
        total = _spans_in_signals(bootstrap, settings.signals_topic, late=True)
        counted += total
        late += total - _spans_in_signals(bootstrap, settings.signals_topic)
        topics = [settings.spans_topic, settings.metrics_topic, settings.signals_topic]
        drop_topics(bootstrap, [*topics, settings.deadletter_topic])
        shutil.rmtree(state, ignore_errors=True)
    wall = max(r["seconds"] for r in reports)
    cpu = sum(r["cpu_seconds"] for r in reports)
    return {
        "procs": procs,
        "independent": independent,
        "partitions": partitions,
        "spans": counted,
        "late_spans": late,
        "seconds": wall,
        "spans_per_s": round(counted / wall),
        "cpu_seconds": round(cpu, 3),
        "spans_per_cpu_s": round(counted / cpu),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in reports),
        "machine": _machine(reports, counted),
        "members": reports,
    }


def _machine(reports: list[dict[str, Any]], spans: int) -> dict[str, Any]:
    """The cores the machine kept busy from the first member's start to the last one's end, and
    the throughput had that CPU kept every core busy; empty where /proc/stat was not read."""
    first = min(reports, key=lambda r: r["monotonic"][0])
    last = max(reports, key=lambda r: r["monotonic"][1])
    busy0, busy1 = first["machine_busy"][0], last["machine_busy"][1]
    elapsed = last["monotonic"][1] - first["monotonic"][0]
    if busy0 is None or busy1 is None or busy1 <= busy0 or elapsed <= 0:
        return {}
    cores = len(os.sched_getaffinity(0))
    return {
        "cores": cores,
        "cores_busy": round((busy1 - busy0) / elapsed, 2),
        "spans_per_s_full": round(spans / ((busy1 - busy0) / cores)),
    }


def summary(rounds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per configuration (processes, separate or not), `median_figures` over the rounds with
    the ratio to one process, the fewest spans counted and the most late, and every run."""
    out = []
    for key in dict.fromkeys((r["procs"], r["independent"]) for one in rounds for r in one):
        runs = [r for one in rounds for r in one if (r["procs"], r["independent"]) == key]
        head = {
            "procs": key[0],
            "independent": key[1],
            "partitions": runs[0]["partitions"],
            "spans": min(r["spans"] for r in runs),
            "late_spans": max(r["late_spans"] for r in runs),
        }
        full = median_figures(runs, "x_one_full")
        ceiling = {k: full[k] for k in ("x_one_full", "x_one_full_range") if k in full}
        out.append(head | median_figures(runs, "x_one") | ceiling | {"runs": runs})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", required=True)
    parser.add_argument("--spans", type=int, default=400_000)
    parser.add_argument("--spans-per-request", type=int, default=8192)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--independent",
        action="store_true",
        help="also run each count above one as that many separate flows (the no-exchange ceiling)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="run the sequence this many times in turn"
    )
    parser.add_argument("--member", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.member:
        suffix, state, proc, *addresses = args.member
        member(args.kafka, suffix, Path(state), addresses, int(proc))
        return 0
    runs = [(procs, False) for procs in args.procs]
    if args.independent:
        runs += [(procs, True) for procs in args.procs if procs > 1]
    for procs, independent in runs:
        if independent and args.partitions % procs:
            raise SystemExit(f"--independent needs --partitions divisible by {procs}")
    rounds = []
    for _ in range(max(1, args.rounds)):
        results = []
        for procs, independent in runs:
            r = run(
                args.kafka, args.spans, args.spans_per_request, procs, args.partitions, independent
            )
            results.append(r)
            what = "separate flows" if independent else "process(es)"
            busy = (
                f", {r['machine']['cores_busy']:.2f} of {r['machine']['cores']} cores busy"
                if r["machine"]
                else ""
            )
            print(
                f"{procs} {what}: {r['spans_per_s']:>10,} spans/s wall  "
                f"{r['spans_per_cpu_s']:>10,} spans/CPU-s  {r['seconds']:>7.2f} s  "
                f"peak RSS {r['peak_rss_mib']:>7.1f} MiB per process, {r['late_spans']:,} late"
                + busy
            )
        if results[0]["procs"] == 1:
            for r in results:
                r["x_one"] = round(r["spans_per_s"] / results[0]["spans_per_s"], 2)
                if r["machine"]:
                    full = r["machine"]["spans_per_s_full"] / results[0]["spans_per_s"]
                    r["x_one_full"] = round(full, 2)
        rounds.append(results)
    rows = summary(rounds)
    if all("x_one" in row for row in rows):
        print(
            f"wall throughput over one process (median and range of {len(rounds)} round(s)): "
            + ", ".join(
                f"{row['procs']}{' separate' if row['independent'] else ''}: {row['x_one']}x "
                f"({row['x_one_range'][0]}x to {row['x_one_range'][1]}x)"
                for row in rows
            )
        )
    if all("x_one_full" in row for row in rows):
        print(
            "the same, had the machine kept every core busy at the CPU each run spent: "
            + ", ".join(
                f"{row['procs']}{' separate' if row['independent'] else ''}: "
                f"{row['x_one_full']}x ({row['x_one_full_range'][0]}x to "
                f"{row['x_one_full_range'][1]}x)"
                for row in rows
            )
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scaleout.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
