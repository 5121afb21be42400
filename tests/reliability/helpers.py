"""Shared pieces of the reliability tests: topics and settings for the Kafka flow, good and
malformed OTLP traffic spread over partitions, and exact checks of what the flow wrote.

The good traffic is `bench.workload`'s (exact truth in `tests/flows/truth.py`); the Kafka plumbing
is the `topic_factory`, `produce` and `consume_all` fixtures of `tests/conftest.py`.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from bench.otlp_encode import PointSpec, SpanSpec, metrics_request, trace_request
from bench.workload import Truth
from chaos import SITE_CONFIG
from operators.otlp.errors import DecodeLimits
from operators.otlp.messages import RawMessage, decode_message
from sre_space.records import DeadLetter, SignalWindow
from sre_space.settings import Settings, load_pipeline_config, load_settings
from tests.conftest import ConsumeAll, Produce, TopicFactory

# Windows close at the end of the topics (or on the closing request), never because one
# partition was read ahead of another: the checks are about losing and duplicating, not lateness.
LATENESS_S = 3600
MIB = 1024 * 1024
TOPIC_FIELDS = (
    "spans_topic",
    "metrics_topic",
    "signals_topic",
    "deadletter_topic",
    "anomalies_topic",
    "incidents_topic",
)
Kind = Literal["traces", "metrics"]
# (is it malformed, value) in the order it goes to one partition
Lane = list[tuple[bool, bytes | None]]


def flow_topics(
    topic_factory: TopicFactory, *, spans_partitions: int = 1, metrics_partitions: int = 1
) -> dict[str, str]:
    """Fresh input and output topics for one run of the Kafka flow (no shared `sre.*` topic)."""
    partitions = {"spans_topic": spans_partitions, "metrics_topic": metrics_partitions}
    return {name: topic_factory(partitions.get(name, 1)) for name in TOPIC_FIELDS}


def flow_settings(
    bootstrap: str,
    topics: dict[str, str],
    folder: Path,
    *,
    tail: bool,
    deterministic_clock: bool = False,
    lateness_s: int = LATENESS_S,
) -> Settings:
    """Settings of one flow run: its own state folder and pipeline config under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "pipeline.yaml"
    config.write_text(f"signals:\n  lateness_seconds: {lateness_s}\n")
    return load_settings(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        state_dir=folder / "state",
        config=[SITE_CONFIG, config],  # the shop's recordings: its site file, then the run's
        kafka_tail=tail,
        deterministic_clock=deterministic_clock,
        **topics,
    )


def committed_epoch(recovery: Path) -> int:
    """The last epoch Bytewax committed to its recovery store (0 before the first)."""
    try:
        with sqlite3.connect(recovery / "part-0.sqlite3", timeout=1) as conn:
            row = conn.execute("SELECT MAX(commit_epoch) FROM commits").fetchone()
    except sqlite3.Error:
        return 0  # not created yet, or being created
    return int(row[0] or 0)


def metrics_traffic(truth: Truth, *, every_s: float = 1.0) -> list[bytes]:
    """Memory usage and limit of one pod per service of `truth`, every `every_s` of its event
    time, as serialized ExportMetricsServiceRequests."""
    services = sorted(set(truth.service.tolist()))
    step = int(every_s * 1e9)
    out = []
    for i, ts in enumerate(range(int(truth.end_ns[0]), int(truth.end_ns[-1]) + 1, step)):
        resources = [
            (
                {"service.name": svc, "k8s.pod.name": f"{svc}-0"},
                [
                    PointSpec("container.memory.usage", (128 + (7 * i + 13 * k) % 96) * MIB, ts),
                    PointSpec("k8s.container.memory_limit", 256 * MIB, ts),
                ],
            )
            for k, svc in enumerate(services)
        ]
        out.append(metrics_request(resources).SerializeToString())
    return out


def closing_request(truth: Truth, at_ns: int) -> bytes:
    """One span per (service, operation) of `truth`, ending at `at_ns`.

    With the deterministic clock a key's windows close only on a later event of that key (or at
    the end of the input, which a tailing flow never reaches), so this closes every window of the
    workload when `at_ns` is past its end plus the lateness. Its own windows stay open.
    """
    pairs = sorted(set(zip(truth.service.tolist(), truth.operation.tolist(), strict=True)))
    by_service: dict[str, list[SpanSpec]] = {}
    for i, (service, operation) in enumerate(pairs, start=1):
        method, route = operation.split(" ", 1)
        by_service.setdefault(service, []).append(
            SpanSpec(
                trace_id=i.to_bytes(16, "big"),
                span_id=i.to_bytes(8, "big"),
                name=operation,
                start_ns=at_ns - 1_000_000,
                end_ns=at_ns,
                attributes={"http.request.method": method, "http.route": route},
            )
        )
    resources = [({"service.name": s}, spans) for s, spans in sorted(by_service.items())]
    return trace_request(resources).SerializeToString()


MALFORMED_KINDS = (
    "random_bytes",
    "truncated_proto",
    "invalid_json",
    "json_without_service_name",
    "json_not_an_object",
    "empty",
    "tombstone",
)


def _malformed(kind: str, signal: Kind, example: bytes, rng: random.Random, i: int) -> bytes | None:
    resource_key, scope_key = (
        ("resourceSpans", "scopeSpans")
        if signal == "traces"
        else ("resourceMetrics", "scopeMetrics")
    )
    if kind == "random_bytes":
        return rng.randbytes(rng.randint(1, 512))
    if kind == "truncated_proto":
        return example[: rng.randint(1, len(example) - 1)]
    if kind == "invalid_json":
        stubs = (f'{{"{resource_key}": [ {{"broken": {i}', f'{{"{resource_key}": [}}', "{ nope")
        return stubs[i % len(stubs)].encode()
    if kind == "json_without_service_name":
        resource = {"attributes": [{"key": "host.name", "value": {"stringValue": f"host-{i}"}}]}
        return json.dumps({resource_key: [{"resource": resource, scope_key: []}]}).encode()
    if kind == "json_not_an_object":
        return f"[{i}, 2, 3]".encode()
    if kind == "empty":
        return b""
    if kind == "tombstone":
        return None
    raise ValueError(kind)


def malformed_messages(
    n: int, *, signal: Kind, example: bytes, seed: int
) -> list[tuple[str, bytes | None]]:
    """`n` (kind, value) pairs that are not export requests, the kinds in turn.

    `example` is a real serialized request of `signal`, cut short for the truncated kind. Random
    bytes or a cut can happen to be a valid (if odd) request, such as a cut between two whole
    resources; those are drawn again, so every message returned must be dead-lettered.
    """
    rng = random.Random(seed)
    signals = load_pipeline_config().signals
    limits = DecodeLimits(signals.max_message_bytes, signals.max_attribute_bytes)
    out: list[tuple[str, bytes | None]] = []
    for i in range(n):
        kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
        for _ in range(100):
            value = _malformed(kind, signal, example, rng, i)
            raw = RawMessage("check", 0, i, value or b"", signal)
            if isinstance(decode_message(raw, limits), DeadLetter):
                break
        else:
            message = f"could not make a malformed {kind} message for {signal}"
            raise AssertionError(message)
        out.append((kind, value))
    return out


def interleave(
    good: Sequence[bytes], bad: Sequence[bytes | None], partitions: int, seed: int
) -> list[Lane]:
    """Good messages round-robin over the partitions, in order; bad ones at random places."""
    rng = random.Random(seed)
    lanes: list[Lane] = [[(False, g) for g in good[p::partitions]] for p in range(partitions)]
    for j, value in enumerate(bad):
        lane = lanes[j % partitions]
        lane.insert(rng.randint(0, len(lane)), (True, value))
    return lanes


def produce_lanes(produce: Produce, topic: str, lanes: Sequence[Lane]) -> set[tuple[int, int]]:
    """Produce each lane to its partition; returns the (partition, offset) of the bad messages."""
    bad: set[tuple[int, int]] = set()
    for partition, lane in enumerate(lanes):
        placed = produce(topic, [(None, value) for _, value in lane], partition=partition)
        assert len(placed) == len(lane)
        bad.update(at for (is_bad, _), at in zip(lane, placed, strict=True) if is_bad)
    return bad


def read_signals(consume_all: ConsumeAll, topic: str) -> list[SignalWindow]:
    """Every signal the flow wrote to `topic`."""
    return [SignalWindow.from_json(r.value) for r in consume_all(topic, idle=1.0) if r.value]


def read_dead_letters(consume_all: ConsumeAll, topic: str) -> list[DeadLetter]:
    """Every dead letter the flow wrote to `topic`."""
    return [DeadLetter.from_json(r.value) for r in consume_all(topic, idle=1.0) if r.value]


def assert_written_once(signals: Sequence[SignalWindow]) -> None:
    """No signal of a span, journey or metric series and window was written twice, and none
    was counted late: `assert_matches_truth` keys by window, so it alone would not see either."""
    counts = Counter((s.kind, s.key, s.window_start) for s in signals if s.kind != "pipeline")
    twice = [key for key, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} signals were written more than once, e.g. {twice[:3]}"
    late = [s for s in signals if s.kind == "pipeline" and s.metric == "late"]
    assert not late, f"{sum(s.late or 0 for s in late)} partials arrived after their window closed"


def data_signals(signals: Sequence[SignalWindow]) -> list[str]:
    """The span, journey and metric signals as sorted JSON (the pipeline's own health, which
    counts dead letters, left out), for comparing two runs."""
    return sorted(s.to_json() for s in signals if s.kind != "pipeline")
