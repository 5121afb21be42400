"""Throughput and peak memory of the signal path, side by side with a naive per-span baseline.

    python -m bench.throughput [--spans 1000000] [--kafka 127.0.0.1:9092] [--modes ...] [--rounds 5]

Each mode runs in its own process (so peak RSS is its own) on the same generated workload:
- `naive`: protobuf parse, one dict per span, lists of durations per key and window, sort per
  window for percentiles (what a first attempt looks like);
- `columnar`: the project's decoder and batch aggregation, no dataflow;
- `replay_proto` / `replay_json`: `sre-space replay` over a recording file, through Bytewax;
- `kafka`: the Kafka dataflow from a topic to `sre.signals` (needs --kafka or
  KAFKA_BOOTSTRAP_SERVERS).
`--rounds N` runs the modes N times in turn and reports each ratio to naive as the median and
range over the rounds, each against its own round's naive run. Results are printed and written
to bench/out/throughput-WORKLOAD-SPANS_PER_REQUEST.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.workload import generate, iter_json_lines, shop_requests

# SRE_BENCH_OUT moves the results and the cached workloads (the tests use a temporary folder).
OUT = Path(os.environ.get("SRE_BENCH_OUT") or Path(__file__).parent / "out")
ALL_MODES = ("naive", "columnar", "replay_proto", "replay_json", "kafka", "kafka_no_archive")


WORKLOADS = ("lean", "rich", "shop")


def _workload(n: int, per_request: int = 512, workload: str = "lean") -> list[bytes]:
    name = f"{n}-{per_request}" if workload == "lean" else f"{workload}-{n}-{per_request}"
    cache = OUT / f"workload-{name}.bin"
    if cache.exists():
        out = []
        with cache.open("rb") as fh:  # request by request: the file's copy never sits in memory
            while head := fh.read(4):
                (size,) = struct.unpack(">I", head)
                out.append(fh.read(size))
        return out
    if workload == "shop":
        requests = shop_requests(n, seed=1, spans_per_request=per_request)
    else:
        requests, _ = generate(
            n, seed=1, spans_per_request=per_request, services=8, rich=workload == "rich"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(b"".join(struct.pack(">I", len(r)) + r for r in requests))
    return requests


def run_naive(requests: list[bytes], window_ns: int) -> int:
    """The baseline: a dict per span, lists per key, sort per window."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    lists: dict[tuple[str, str, int], list[float]] = {}
    errors: dict[tuple[str, str, int], int] = {}
    n = 0
    for data in requests:
        req = ExportTraceServiceRequest()
        req.ParseFromString(data)
        for rs in req.resource_spans:
            svc = next(
                kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"
            )
            for ss in rs.scope_spans:
                for s in ss.spans:
                    span = {
                        "service": svc,
                        "name": s.name,
                        "end": s.end_time_unix_nano,
                        "duration_ms": (s.end_time_unix_nano - s.start_time_unix_nano) / 1e6,
                        "status": s.status.code,
                        "attributes": {kv.key: kv.value for kv in s.attributes},
                    }
                    key = (span["service"], span["name"], span["end"] // window_ns)
                    lists.setdefault(key, []).append(span["duration_ms"])
                    errors[key] = errors.get(key, 0) + (span["status"] == 2)
                    n += 1
    for values in lists.values():
        values.sort()
        for q in (0.5, 0.95, 0.99):
            _ = values[min(len(values) - 1, int(q * len(values)))]
    return n


def run_columnar(requests: list[bytes], window_ns: int) -> int:
    """The project's decoder + batch aggregation, without a dataflow around it."""
    from operators.otlp import DecodeLimits, RawMessage, decode_message
    from operators.otlp.messages import Decoded
    from operators.signals import SignalSpec, span_partials
    from sre_space.settings import load_pipeline_config

    spec = SignalSpec.from_config(load_pipeline_config())
    limits = DecodeLimits()
    n = 0
    for i, data in enumerate(requests):
        out = decode_message(RawMessage("bench", 0, i, data, "traces"), limits)
        assert isinstance(out, Decoded) and out.spans is not None
        span_partials(out.spans, spec)
        n += len(out.spans)
    return n


def run_replay(requests: list[bytes], fmt: str) -> int:

    with tempfile.TemporaryDirectory(prefix="sre-bench-") as folder:
        return _replay_in(Path(folder), requests, fmt)


def _replay_in(tmp: Path, requests: list[bytes], fmt: str) -> int:
    from flows.replay import replay
    from sre_space.records import SignalWindow, read_jsonl

    path = tmp / f"rec.{fmt}"
    if fmt == "proto":
        path.write_bytes(b"".join(struct.pack(">I", len(r)) + r for r in requests))
    else:
        with path.open("w") as fh:
            fh.writelines(line + "\n" for line in iter_json_lines(requests))
    t0, c0 = time.perf_counter(), time.process_time()
    files = replay([path], tmp / "out")
    _timing["elapsed"] = time.perf_counter() - t0
    _timing["cpu"] = time.process_time() - c0
    return sum(s.count for s in read_jsonl(str(files["signals"]), SignalWindow) if s.kind == "span")


def publish(bootstrap: str, topic: str, requests: list[bytes]) -> None:
    """Produce the requests to `topic` and wait until the broker has them."""
    from sre_space.kafka import KafkaPublisher

    producer = KafkaPublisher(bootstrap, {"message.max.bytes": 20_971_520})
    for i, data in enumerate(requests):
        producer.send(topic, data, key=str(i).encode())
    producer.flush(60)


def publish_in_child(bootstrap: str, topic: str, n: int, per_request: int, workload: str) -> None:
    """`publish` from another process, so that the workload is not in the measured peak RSS."""
    cmd = [sys.executable, "-m", "bench.throughput", "--child", "publish", "--topic", topic]
    cmd += ["--kafka", bootstrap, "--spans", str(n), "--spans-per-request", str(per_request)]
    subprocess.run([*cmd, "--workload", workload], check=True, capture_output=True)


def run_kafka(publish_to: Callable[[str], None], bootstrap: str, archive: bool = True) -> int:
    from bytewax.testing import run_main

    from flows.main import build_kafka_flow
    from flows.sources import create_topics
    from sre_space.settings import Settings

    suffix = uuid.uuid4().hex[:8]
    topics = {name: f"bench-{name}-{suffix}" for name in ("spans", "metrics", "signals", "dead")}
    create_topics(bootstrap, list(topics.values()))
    publish_to(topics["spans"])
    tmp = Path(tempfile.mkdtemp(prefix="sre-bench-state-"))
    config = tmp / "pipeline.yaml"
    config.write_text(f"archive:\n  enabled: {str(archive).lower()}\n")
    settings = Settings(
        config=config,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        state_dir=tmp,
        kafka_tail=False,
        spans_topic=topics["spans"],
        metrics_topic=topics["metrics"],
        signals_topic=topics["signals"],
        deadletter_topic=topics["dead"],
    )
    flow = build_kafka_flow(settings)
    t0, c0 = time.perf_counter(), time.process_time()
    run_main(flow)
    _timing["elapsed"] = time.perf_counter() - t0
    _timing["cpu"] = time.process_time() - c0
    spans = _spans_in_signals(bootstrap, topics["signals"])
    drop_topics(bootstrap, list(topics.values()))
    shutil.rmtree(tmp, ignore_errors=True)
    return spans


def drop_topics(bootstrap: str, topics: list[str]) -> None:
    """Delete a run's topics and wait for the broker to take it: unawaited, the request died
    with the process and every run's spans stayed on disk (it filled this machine's, twice)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(topics, operation_timeout=30).values():
        future.result(timeout=60)


def _spans_in_signals(bootstrap: str, topic: str, late: bool = False) -> int:
    # Read the flow's output back, so the figure counts spans that really became signals.
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    total, idle_since = 0, time.monotonic()
    while time.monotonic() - idle_since < 2.0:
        msgs = consumer.consume(1000, timeout=0.2)
        if msgs:
            idle_since = time.monotonic()
        for m in msgs:
            value = m.value()
            if m.error() is None and value is not None:
                sig = json.loads(value)
                if sig.get("kind") == "span" or (late and sig.get("metric") == "late"):
                    total += int(sig["count"])
    consumer.close()
    return total


_timing: dict[str, float] = {}


def child(
    mode: str, n: int, kafka: str | None, per_request: int, workload: str = "lean"
) -> dict[str, object]:
    """Run one mode in this process and report spans, seconds and peak RSS."""
    kafka_mode = mode in ("kafka", "kafka_no_archive")
    requests = [] if kafka_mode else _workload(n, per_request, workload)
    window_ns = 10 * 10**9
    t0 = time.perf_counter()
    c0 = time.process_time()
    if mode == "naive":
        spans = run_naive(requests, window_ns)
    elif mode == "columnar":
        spans = run_columnar(requests, window_ns)
    elif mode in ("replay_proto", "replay_json"):
        spans = run_replay(requests, mode.split("_")[1])
    elif mode in ("kafka", "kafka_no_archive"):
        if not kafka:
            raise SystemExit("kafka mode needs --kafka or KAFKA_BOOTSTRAP_SERVERS")
        bootstrap = kafka

        def publish_to(topic: str) -> None:
            publish_in_child(bootstrap, topic, n, per_request, workload)

        spans = run_kafka(publish_to, kafka, archive=mode == "kafka")
    else:
        raise SystemExit(f"unknown mode {mode!r}; known: {', '.join(ALL_MODES)}")
    elapsed = _timing.get("elapsed", time.perf_counter() - t0)
    # CPU seconds of the whole process (all threads): spans per CPU-second is "per core", and it
    # moves far less than wall time when the machine is shared.
    cpu = _timing.get("cpu", time.process_time() - c0)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": mode,
        "spans": spans,
        "cpu_seconds": round(cpu, 3),
        "spans_per_cpu_s": round(spans / cpu),
        "seconds": round(elapsed, 3),
        "spans_per_s": round(spans / elapsed),
        "peak_rss_mib": round(rss_mib, 1),
    }


def _span_count(data: bytes) -> int:
    from operators.otlp import decode_trace_proto

    return len(decode_trace_proto(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--modes", nargs="+", default=list(ALL_MODES))
    parser.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument(
        "--spans-per-request",
        type=int,
        default=512,
        help="spans per export request (the Collector's batch processor sends up to 8192)",
    )
    parser.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="lean",
        help="lean spans (3 attributes), rich (20 semantic-convention attributes) or the shop's",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the modes this many times in turn; each ratio is to the same round's naive run "
        "(this machine's speed drifts), reported as the median and range over the rounds",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    run = (args.spans, args.kafka, args.spans_per_request, args.workload)
    if args.child == "generate":
        requests = _workload(args.spans, args.spans_per_request, args.workload)
        spans = sum(_span_count(r) for r in requests)
        size = sum(len(r) for r in requests)
        print(json.dumps({"requests": len(requests), "bytes": size, "spans": spans}))
        return 0
    if args.child == "publish":
        publish(
            args.kafka, args.topic, _workload(args.spans, args.spans_per_request, args.workload)
        )
        return 0
    if args.child:
        print(json.dumps(child(args.child, *run)))
        return 0
    # Generate (and cache) in a child too: Linux carries a process's peak RSS across exec, so the
    # parent must stay small for the children's figures to be their own.
    info = _run_child("generate", *run)
    size, total = info["bytes"], info["spans"]
    print(
        f"workload {args.workload}: {total} spans in {info['requests']} requests, "
        f"{size / total:.0f} B/span"
    )
    rounds = [_round(args.modes, run) for _ in range(max(1, args.rounds))]
    results = _summary(rounds)
    if any("x_naive" in r for r in results):
        print(
            f"speed-up over naive (per CPU-second, median and range of {len(rounds)} round(s)): "
            + ", ".join(
                f"{r['mode']} {r['x_naive']}x ({r['x_naive_range'][0]}x to "
                f"{r['x_naive_range'][1]}x)"
                for r in results
            )
        )
    OUT.mkdir(parents=True, exist_ok=True)
    summary = {
        "workload": args.workload,
        "spans": total,
        "spans_per_request": args.spans_per_request,
        "bytes_per_span": round(size / total, 1),
        "cores": os.cpu_count(),
        "numpy": np.__version__,
        "results": results,
        "rounds": rounds,
    }
    out = OUT / f"throughput-{args.workload}-{args.spans_per_request}.json"
    out.write_text(json.dumps(summary, indent=2))
    return 0


def _round(modes: list[str], run: tuple[int, str | None, int, str]) -> list[dict[str, Any]]:
    """Each mode once, in order, each in its own process; x_naive against this round's naive."""
    results = []
    for mode in modes:
        if mode.startswith("kafka") and not run[1]:
            print(f"{mode}: skipped (no --kafka / KAFKA_BOOTSTRAP_SERVERS)")
            continue
        r = _run_child(mode, *run)
        results.append(r)
        print(
            f"{r['mode']:>16}: {r['spans_per_s']:>10,} spans/s wall  "
            f"{r['spans_per_cpu_s']:>10,} spans/CPU-s  {r['seconds']:>7.2f} s  "
            f"peak RSS {r['peak_rss_mib']:>7.1f} MiB"
        )
    naive = next((r for r in results if r["mode"] == "naive"), None)
    if naive:
        for r in results:
            r["x_naive"] = round(r["spans_per_cpu_s"] / naive["spans_per_cpu_s"], 2)
    return results


def _summary(rounds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per mode, `median_figures` over the rounds, with the ratio to naive."""
    out = []
    for mode in dict.fromkeys(r["mode"] for one in rounds for r in one):
        runs = [r for one in rounds for r in one if r["mode"] == mode]
        head = {"mode": mode, "runs": len(runs), "spans": runs[0]["spans"]}
        out.append(head | median_figures(runs, "x_naive"))
    return out


def median_figures(runs: list[dict[str, Any]], ratio: str) -> dict[str, Any]:
    """The median of each speed figure over `runs`, their largest peak RSS, and the median and
    range of the field `ratio` where the runs have it (each is to its own round's reference)."""
    out: dict[str, Any] = {
        key: statistics.median(r[key] for r in runs)
        for key in ("cpu_seconds", "spans_per_cpu_s", "seconds", "spans_per_s")
    }
    out["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
    ratios = [r[ratio] for r in runs if ratio in r]
    if ratios:
        out[ratio] = round(statistics.median(ratios), 2)
        out[f"{ratio}_range"] = [min(ratios), max(ratios)]
    return out


def _run_child(
    mode: str, spans: int, kafka: str | None, per_request: int, workload: str
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "bench.throughput",
        "--child",
        mode,
        "--spans",
        str(spans),
        "--spans-per-request",
        str(per_request),
        "--workload",
        workload,
    ]
    if kafka:
        cmd += ["--kafka", kafka]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    sys.exit(main())
