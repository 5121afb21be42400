"""Sustained load: the simulated shop at a high request rate through Kafka for N minutes.

    python -m bench.sustained --kafka 127.0.0.1:9092 --minutes 10 --rate 400 \
        --out bench/out/sustained.json

Creates fresh topics, starts the production flow (`python -m bytewax.run flows.main`, wall
clock) as a child process, runs the shop in real time (speed 1, epoch = now) on a thread
publishing to Kafka, and every `--sample-s` seconds records:
- the event-time lag: the shop's now minus the newest span window's end in the flow's store
  (a window closes once the watermark passes its end: a sawtooth of one window's length, which
  samples every window length see at one phase; a lag that grows is a flow falling behind);
- how far the shop itself is behind the wall clock (the generator's own limit);
- the Kafka end offsets of the spans and metrics topics and what the publisher produced;
- the flow's RSS and CPU seconds (process and its descendants, from /proc).
At the end it stops the flow (SIGINT), writes the samples and a summary as JSON, prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chaos.live import kafka_publisher, run_live
from chaos.shop import Batch, Shop, ShopConfig
from flows.sources import create_topics
from sinks.store.sqlite import Store
from sre_space.harness.rig import start_kafka_flow, stop_child
from sre_space.settings import load_settings
from sre_space.timeutil import NS_PER_S, rfc3339_to_ns

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1024 * 1024


@dataclass
class Sample:
    t_s: float  # wall seconds since the shop started
    shop_behind_wall_s: float  # wall now minus the shop's event time (generator lag)
    event_lag_s: float | None  # shop now minus newest signal window_end (None before the first)
    wall_lag_s: float | None  # wall now minus newest signal window_end
    spans_produced: int
    messages_produced: int
    end_offsets: dict[str, int]
    rss_mib: float
    cpu_s: float
    signals: int


class Counter:
    """Wraps the publisher, counting records and spans (read from the sampler thread).

    A tick's spans go out in records of at most `max_spans` spans, as a Collector's batch
    processor (`send_batch_max_size`) would: one record per second at a high rate is over the
    broker's 1 MB message limit.
    """

    def __init__(
        self, bootstrap: str, spans_topic: str, metrics_topic: str, max_spans: int = 1000
    ) -> None:
        self._publish, self.flush = kafka_publisher(bootstrap, spans_topic, metrics_topic)
        self.max_spans = max_spans
        self.messages = 0
        self.spans = 0
        self.error: BaseException | None = None

    def __call__(self, batch: Batch) -> None:
        if batch.kind != "spans" or len(batch.spans) <= self.max_spans:
            parts = [batch]
        else:
            parts = [
                Batch(
                    kind="spans", time_ns=batch.time_ns, spans=batch.spans[i : i + self.max_spans]
                )
                for i in range(0, len(batch.spans), self.max_spans)
            ]
        for part in parts:
            self._publish(part)
            self.messages += 1
            self.spans += len(part.spans)

    def run_shop(self, shop: Shop, state_dir: Path, duration_s: float) -> None:
        """`run_live` at speed 1, keeping its exception for the main thread."""
        try:
            run_live(shop, self, state_dir, 1.0, duration_s, log=lambda x: print("shop:", x))
        except BaseException as exc:
            self.error = exc
            raise


def _tree(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_cpu(pid: int) -> tuple[float, float]:
    """RSS (MiB) and CPU seconds (user + system, reaped children included) of a process tree."""
    rss_kib, ticks = 0, 0
    for p in _tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss_kib += int(line.split()[1])
        # after ")": state=0 ... utime=11 stime=12 cutime=13 cstime=14
        ticks += sum(int(x) for x in fields[11:15])
    return rss_kib / 1024, ticks / CLK_TCK


def end_offsets(bootstrap: str, topics: list[str]) -> dict[str, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        out: dict[str, int] = {}
        meta = consumer.list_topics(timeout=10)
        for topic in topics:
            for p in meta.topics[topic].partitions:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                out[f"{topic}:{p}"] = int(high)
        return out
    finally:
        consumer.close()


def newest_window_end_ns(store: Store) -> int:
    # Span windows only: the pipeline's heartbeat ends at the wall clock's now, and read as the
    # newest it made the lag a constant under 3 s whatever the flow did.
    rows = store.query("signals", limit=1000, newest_first=True)
    ends = [r["window_end"] for r in rows if r.get("kind") == "span" and r.get("window_end")]
    return max(map(rfc3339_to_ns, ends), default=0)


def scale_shop(shop: Shop, rate: float, rps_per_factor: float = 300.0) -> int:
    """Scale the shop's replicated services for `rate` (commits on its GitOps main).

    At the default replicas the shop holds about 400 requests/s; above that its frontend pods
    fall over and it stops producing spans, which would measure the shop, not the flow.
    """
    factor = math.ceil(rate / rps_per_factor)
    if factor <= 1:
        return 1
    for svc, doc in shop.repo.read_docs().items():
        if int(doc["replicas"]) >= 2:
            shop.repo.commit(svc, _set_replicas(int(doc["replicas"]) * factor), f"scale {svc}")
    shop.reload()
    return factor


def _set_replicas(n: int) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["replicas"] = n

    return edit


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarize(
    samples: list[Sample], rate: float, duration_s: float, counter: Counter
) -> dict[str, Any]:
    last = samples[-1]
    # lag over the last 8 minutes (after a 20 s warm-up for short runs)
    tail_from = max(20.0, last.t_s - 480.0)
    lags = [s.event_lag_s for s in samples if s.t_s >= tail_from and s.event_lag_s is not None]
    behind = [s.shop_behind_wall_s for s in samples if s.t_s >= tail_from]
    # RSS at minute 2 (the first sample after it; the first past warm-up on short runs)
    ref_t = 120.0 if duration_s >= 240 else 20.0
    ref = next((s for s in samples if s.t_s >= ref_t), samples[0])
    half = len(lags) // 2
    return {
        "rate_rps": rate,
        "duration_s": round(last.t_s, 1),
        "spans": counter.spans,
        "messages": counter.messages,
        "spans_per_s": round(counter.spans / max(last.t_s, 1e-9), 1),
        "event_lag_window_from_s": tail_from,
        "event_lag_p50_s": _pct(lags, 0.5),
        "event_lag_max_s": max(lags) if lags else None,
        # bounded: the second half of the window lags no more than the first (plus one window)
        "event_lag_mean_first_half_s": statistics.fmean(lags[:half]) if half else None,
        "event_lag_mean_second_half_s": statistics.fmean(lags[half:]) if half else None,
        "shop_behind_wall_max_s": max(behind) if behind else None,
        "rss_ref_t_s": ref.t_s,
        "rss_ref_mib": round(ref.rss_mib, 1),
        "rss_end_mib": round(last.rss_mib, 1),
        "rss_max_mib": round(max(s.rss_mib for s in samples), 1),
        "rss_growth_mib": round(last.rss_mib - ref.rss_mib, 1),
        "rss_growth_pct": round(100 * (last.rss_mib - ref.rss_mib) / ref.rss_mib, 1),
        "flow_cpu_s": round(last.cpu_s, 1),
        "flow_cpu_s_per_1m_spans": round(last.cpu_s / max(counter.spans, 1) * 1e6, 1),
        "signals": last.signals,
    }


def run(bootstrap: str, minutes: float, rate: float, seed: int, sample_s: float) -> dict[str, Any]:
    tag = f"sustained-{uuid.uuid4().hex[:8]}"
    names = ("spans", "metrics", "signals", "anomalies", "incidents", "deadletter")
    topics = {name: f"{tag}.{name}" for name in names}
    create_topics(bootstrap, list(topics.values()))
    tmp = Path(tempfile.mkdtemp(prefix="sre-sustained-"))
    state = tmp / "state"
    state.mkdir()
    print(f"state {state}, topics {tag}.*", flush=True)
    settings = load_settings(
        state_dir=state, **{f"{name}_topic": topic for name, topic in topics.items()}
    )
    # The wall clock: the shop runs in real time, so the health heartbeat means something.
    flow_log = settings.paths.flow_log
    flow = start_kafka_flow(settings, bootstrap, flow_log, deterministic_clock=False)
    samples: list[Sample] = []
    counter = Counter(bootstrap, topics["spans"], topics["metrics"])
    duration_s = minutes * 60
    try:
        time.sleep(5.0)  # let the flow list its partitions (it starts from the beginning anyway)
        if flow.poll() is not None:
            raise RuntimeError(f"flow exited early ({flow.returncode}), see {flow_log}")
        shop = Shop(
            seed=seed,
            gitops_path=tmp / "gitops",
            config=ShopConfig(rate_rps=rate, epoch_ns=time.time_ns()),
        )
        print(f"shop scaled x{scale_shop(shop, rate)}", flush=True)
        shop_dir = tmp / "shop"
        shop_dir.mkdir()
        thread = threading.Thread(
            target=counter.run_shop,
            args=(shop, shop_dir, duration_s),
            name="shop",
            daemon=True,
        )
        wall0 = time.monotonic()
        thread.start()
        store = Store(settings.paths.db)
        data_topics = [topics["spans"], topics["metrics"]]
        while thread.is_alive():
            thread.join(timeout=max(0.0, wall0 + (len(samples) + 1) * sample_s - time.monotonic()))
            if flow.poll() is not None:
                raise RuntimeError(f"flow exited ({flow.returncode}), see {flow_log}")
            now_wall, shop_now = time.time_ns(), shop.now_ns
            newest = newest_window_end_ns(store)
            rss, cpu = rss_cpu(flow.pid)
            s = Sample(
                t_s=round(time.monotonic() - wall0, 2),
                shop_behind_wall_s=round((now_wall - shop_now) / NS_PER_S, 2),
                event_lag_s=round((shop_now - newest) / NS_PER_S, 2) if newest else None,
                wall_lag_s=round((now_wall - newest) / NS_PER_S, 2) if newest else None,
                spans_produced=counter.spans,
                messages_produced=counter.messages,
                end_offsets=end_offsets(bootstrap, data_topics),
                rss_mib=round(rss, 1),
                cpu_s=round(cpu, 2),
                signals=store.count("signals"),
            )
            samples.append(s)
            print(
                f"t={s.t_s:6.0f}s spans={s.spans_produced:>9} lag={s.event_lag_s}s "
                f"shop_behind={s.shop_behind_wall_s}s rss={s.rss_mib}MiB cpu={s.cpu_s}s",
                flush=True,
            )
        if counter.error is not None:
            raise RuntimeError("the shop failed") from counter.error
        counter.flush()
        store.close()
    finally:
        stop_child(flow)
    summary = summarize(samples, rate, duration_s, counter)
    return {"summary": summary, "samples": [asdict(s) for s in samples], "state": str(state)}


def print_table(summary: dict[str, Any]) -> None:
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=400.0, help="frontend requests/s")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "sustained.json")
    args = ap.parse_args(argv)
    result = run(args.kafka, args.minutes, args.rate, args.seed, args.sample_s)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result["summary"])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
