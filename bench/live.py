"""A live flow's CPU at a steady request rate, and idle.

    python -m bench.live --kafka 127.0.0.1:9092 --rate 40 --spans-per-request 512 --seconds 40

Starts the production flow (`python -m bytewax.run flows.main`, wall clock, archive on) on fresh
topics and measures its CPU (process tree, from /proc) while idle for `--idle-s`, then while
requests of `--spans-per-request` lean spans arrive at `--rate` a second for `--seconds` (their
event time the wall clock's), and counts the spans in its signals once their windows closed. A
flow that keeps up polls what came since its last poll: the cost of small polls, which the backlog
bench (`bench.throughput`) never sees. Writes `bench/out/live.json` (or `--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.sustained import print_table, rss_cpu
from bench.throughput import _spans_in_signals, drop_topics
from bench.workload import generate
from flows.sources import create_topics
from sre_space.harness.rig import start_kafka_flow, stop_child
from sre_space.kafka import KafkaPublisher
from sre_space.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
NAMES = ("spans", "metrics", "signals", "anomalies", "incidents", "deadletter")


def run(
    bootstrap: str, rate: float, seconds: float, per_request: int, idle_s: float, settle_s: float
) -> dict[str, Any]:
    n_requests = max(1, round(rate * seconds))
    start_ns = time.time_ns() + int((settle_s + idle_s) * 1e9)
    # Event time at the rate they are sent, from when they are sent: the flow's windows close on
    # the wall clock, so none is late.
    requests, _ = generate(
        n_requests * per_request,
        spans_per_request=per_request,
        services=8,
        rate_per_s=rate * per_request,
        start_ns=start_ns,
    )
    tag = f"live-{uuid.uuid4().hex[:8]}"
    topics = {name: f"{tag}.{name}" for name in NAMES}
    create_topics(bootstrap, list(topics.values()))
    state = Path(tempfile.mkdtemp(prefix="sre-live-")) / "state"
    state.mkdir()
    settings = load_settings(
        state_dir=state, **{f"{name}_topic": topic for name, topic in topics.items()}
    )
    flow = start_kafka_flow(settings, bootstrap, settings.paths.flow_log, deterministic_clock=False)
    publisher = KafkaPublisher(bootstrap, {"linger.ms": 0, "message.max.bytes": 20_971_520})
    try:
        time.sleep(settle_s)  # the flow connects and lists its partitions
        _, cpu0 = rss_cpu(flow.pid)
        time.sleep(idle_s)
        _, cpu1 = rss_cpu(flow.pid)
        t0 = time.monotonic()
        peak = 0.0
        for i, data in enumerate(requests):
            while (wait := t0 + i / rate - time.monotonic()) > 0:
                time.sleep(min(wait, 0.01))
            publisher.send(topics["spans"], data, key=str(i).encode())
            if i % max(1, int(rate)) == 0:
                peak = max(peak, rss_cpu(flow.pid)[0])
        publisher.flush(60)
        sent_s = time.monotonic() - t0
        time.sleep(1.0)  # the last requests read
        rss, cpu2 = rss_cpu(flow.pid)
        spans = n_requests * per_request
        counted, deadline = 0, time.monotonic() + 90
        while counted < spans and time.monotonic() < deadline:
            time.sleep(5.0)  # windows close 10 s + lateness after their end, on the wall clock
            counted = _spans_in_signals(bootstrap, topics["signals"])
        if flow.poll() is not None:
            raise RuntimeError(
                f"the flow exited ({flow.returncode}); see {settings.paths.flow_log}"
            )
    finally:
        stop_child(flow)
        drop_topics(bootstrap, list(topics.values()))
    load_cpu = cpu2 - cpu1
    return {
        "rate_requests_per_s": rate,
        "spans_per_request": per_request,
        "seconds": round(sent_s, 1),
        "spans": spans,
        "spans_in_signals": counted,
        "idle_core_pct": round(100 * (cpu1 - cpu0) / idle_s, 2),
        "load_cpu_s": round(load_cpu, 2),
        "load_core_pct": round(100 * load_cpu / (sent_s + 1.0), 1),
        "cpu_s_per_1m_spans": round(load_cpu / spans * 1e6, 2),
        "peak_rss_mib": round(max(peak, rss), 1),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    ap.add_argument("--rate", type=float, default=40.0, help="export requests a second")
    ap.add_argument("--spans-per-request", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--idle-s", type=float, default=20.0)
    ap.add_argument("--settle-s", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "live.json")
    args = ap.parse_args(argv)
    result = run(
        args.kafka, args.rate, args.seconds, args.spans_per_request, args.idle_s, args.settle_s
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
