"""The Kafka broker restarts under a running flow: the flow rides it out, nothing lost or doubled.

The test starts a broker of its own (`scripts/kafka/kafka up` on a free port pair, with its own
data folder), never the suite's, since it restarts it. The flow runs as in production: `python -m
bytewax.run flows.main`, tailing its topics. The first half of the workload is produced, the
broker is restarted (`scripts/kafka/kafka restart`: same port, same data) as soon as the flow
writes signals, so while it is reading and writing, then the second half is produced: its
signals can only come from the same flow process reading on after the restart.

Two choices make the result exact rather than timing-dependent. The deterministic clock: with the
wall clock in the watermark, the outage itself would make the next spans late. One input
partition, read in event-time order: watermarks are per key across partitions and each partition
has its own consumer, which reconnects on its own schedule after an outage, so with several
partitions one could run ahead of another and make its spans late; that is lateness, a separate
matter from losing or doubling data. A last request, past the end of every window, closes the
final windows, since a tailing flow never reaches the end of its input.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.workload import expected_signals, generate
from sre_space.harness.rig import start_kafka_flow
from sre_space.records import SignalWindow
from tests.conftest import ConsumeAll, Produce, TopicFactory
from tests.flows.truth import assert_matches_truth
from tests.reliability.helpers import (
    assert_written_once,
    closing_request,
    flow_settings,
    flow_topics,
    read_dead_letters,
    read_signals,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO / "scripts" / "kafka" / "kafka"
LATENESS_S = 5
# Generous: a restart is a few seconds, but this machine's two cores are shared.
CATCH_UP_TIMEOUT_S = 240.0
# librdkafka logs each refused connection of the outage: through logging (captured per test).
KAFKA_LOG = logging.getLogger("tests.kafka")


@dataclass(frozen=True)
class Broker:
    """A broker this module started: its address and the environment its script needs."""

    bootstrap: str
    env: dict[str, str]

    def script(self, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        """Run `scripts/kafka/kafka <args>` for this broker; fail with its output if it fails."""
        done = subprocess.run(
            ["bash", str(KAFKA_SCRIPT), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"kafka {' '.join(args)} failed:\n{done.stderr}"
        return done


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_pair() -> int:
    """A free port whose successor is free too (the broker's controller takes port + 1)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 65535 and _port_free(port + 1):
            return port
    raise RuntimeError("found no two free consecutive ports on 127.0.0.1")


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker for this module alone; always stopped (and its data dropped) at the end."""
    port = _free_port_pair()
    env = {
        **os.environ,
        "SRE_KAFKA_PORT": str(port),
        "SRE_KAFKA_DATA": str(tmp_path_factory.mktemp("kafka") / "data"),
    }
    broker = Broker(f"127.0.0.1:{port}", env)
    try:
        broker.script("up")
        yield broker
    finally:
        subprocess.run(["bash", str(KAFKA_SCRIPT), "down"], cwd=REPO, env=env, check=False)


# The conftest fixtures (topic_factory, produce, consume_all) talk to this module's broker.
@pytest.fixture(scope="module")
def kafka_bootstrap(own_broker: Broker) -> str:
    return own_broker.bootstrap


@pytest.fixture(scope="module")
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    config: dict[str, Any] = {"bootstrap.servers": kafka_bootstrap, "logger": KAFKA_LOG}
    return AdminClient(config)


class SignalReader:
    """Reads a one-partition signals topic as the flow writes it, from the beginning."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "logger": KAFKA_LOG,
            "group.id": "reliability-signal-reader",
            "enable.auto.commit": False,
        }
        self._consumer = Consumer(config)
        self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.signals: list[SignalWindow] = []

    def poll(self, timeout: float = 0.5) -> list[SignalWindow]:
        for msg in self._consumer.consume(num_messages=1000, timeout=timeout):
            err, value = msg.error(), msg.value()
            if err is None and value:
                self.signals.append(SignalWindow.from_json(value))
            elif err is not None and err.code() != KafkaError._PARTITION_EOF and err.fatal():
                raise AssertionError(f"reading signals failed: {err}")
        return self.signals

    def span_signals(self) -> int:
        return sum(1 for s in self.signals if s.kind == "span")

    def close(self) -> None:
        self._consumer.close()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# A controlled shutdown (TERM), and a crash (KILL: unflushed logs, requests cut mid-flight).
@pytest.mark.parametrize("restart", [("restart",), ("restart", "--kill")], ids=["term", "kill"])
def test_flow_rides_out_a_broker_restart_without_losing_or_doubling_a_signal(
    restart: tuple[str, ...],
    tmp_path: Path,
    own_broker: Broker,
    topic_factory: TopicFactory,
    produce: Produce,
    consume_all: ConsumeAll,
) -> None:
    requests, truth = generate(400_000, seed=17, spans_per_request=200, services=4)
    half = len(requests) // 2
    window_ns = 10 * 10**9
    want = expected_signals(truth, window_ns)
    # Past the last window's end plus the lateness: closes every window of the workload.
    closing = closing_request(truth, int(truth.end_ns[-1]) + window_ns + (LATENESS_S + 1) * 10**9)

    topics = flow_topics(topic_factory)
    settings = flow_settings(
        own_broker.bootstrap,
        topics,
        tmp_path,
        tail=True,
        deterministic_clock=True,
        lateness_s=LATENESS_S,
    )
    assert settings.pipeline.signals.window_seconds * 10**9 == window_ns
    spans_topic = topics["spans_topic"]
    produce(spans_topic, [(None, r) for r in requests[:half]])

    log_path = tmp_path / "flow.log"
    reader = SignalReader(own_broker.bootstrap, topics["signals_topic"])
    flow = start_kafka_flow(settings, own_broker.bootstrap, log_path, deterministic_clock=True)
    try:
        started = time.monotonic()
        # Restart as soon as the flow writes span signals: it is then reading and writing.
        while not reader.poll() or not reader.span_signals():
            assert flow.poll() is None, f"the flow exited early:\n{_tail(log_path)}"
            assert time.monotonic() - started < CATCH_UP_TIMEOUT_S, "the flow wrote no signal"
        before = reader.span_signals()
        restart_began = time.monotonic()
        restarted = own_broker.script(*restart)
        restart_s = time.monotonic() - restart_began
        assert "keeping" in restarted.stderr  # the data was kept, not formatted again
        assert flow.poll() is None, f"the flow died with the broker:\n{_tail(log_path)}"

        produced = time.monotonic()
        produce(spans_topic, [(None, r) for r in [*requests[half:], closing]])
        while reader.span_signals() < len(want):
            reader.poll()
            assert flow.poll() is None, f"the flow exited:\n{_tail(log_path)}"
            assert time.monotonic() - produced < CATCH_UP_TIMEOUT_S, (
                f"{reader.span_signals()} of {len(want)} span signals after "
                f"{CATCH_UP_TIMEOUT_S:.0f} s:\n{_tail(log_path)}"
            )
        caught_up_s = time.monotonic() - produced
        # A late duplicate (a producer retry after the restart) would arrive now, if at all.
        time.sleep(2.0)
        reader.poll()
        assert flow.poll() is None, f"the flow exited:\n{_tail(log_path)}"
        total_s = time.monotonic() - started
    finally:
        reader.close()
        flow.terminate()  # a tailing flow never ends by itself; nothing is left to write
        flow.wait(timeout=60)

    print(
        f"\nbroker {' '.join(restart)}: {len(requests)} requests ({len(truth.end_ns)} spans); "
        f"{before} of {len(want)} span signals were written when the "
        f"restart began; `kafka restart` took {restart_s:.1f} s; the second half was through "
        f"{caught_up_s:.1f} s after it was produced; {len(truth.end_ns) / total_s:.0f} spans/s "
        f"end to end, restart included"
    )
    log_text = log_path.read_text(errors="replace")
    assert "Traceback" not in log_text, _tail(log_path)

    # A fresh read of the whole topic: every window of the workload exactly once, exact figures.
    signals = read_signals(consume_all, topics["signals_topic"])
    assert_written_once(signals)
    assert_matches_truth(signals, truth, window_ns)
    # Broker outages are not bad input: no dead letter for a disconnect or a retry.
    assert read_dead_letters(consume_all, topics["deadletter_topic"]) == []
