"""The real OpenTelemetry Collector and Jaeger v2 as test fixtures, built by scripts/otel/otel.

The Collector runs `deploy/otel-collector.yaml`, the file docker-compose.yml mounts, with its
`${env:...}` settings pointed at this test's broker, topics and free ports. Jaeger runs
`tests/ecosystem/jaeger.yaml` (in-memory storage). A missing binary fails the test with the
command that builds it; these tests never skip (`make test-unit` leaves them out by marker).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OTEL_SCRIPT = REPO / "scripts" / "otel" / "otel"
COLLECTOR_CONFIG = REPO / "deploy" / "otel-collector.yaml"
JAEGER_CONFIG = Path(__file__).with_name("jaeger.yaml")
# A cold start takes about a second; a loaded 2-core CI machine gets generous room.
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binary(name: str) -> Path:
    """The built binary (`collector` or `jaeger`); SRE_OTELCOL_BIN / SRE_JAEGER_BIN override."""
    override = os.environ.get("SRE_OTELCOL_BIN" if name == "collector" else "SRE_JAEGER_BIN")
    if override:
        return Path(override)
    found = subprocess.run(
        ["bash", str(OTEL_SCRIPT), "path", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if found.returncode != 0:
        pytest.fail(
            f"the {name} binary is not built ({found.stderr.strip()}). Build it with "
            f"`scripts/otel/otel build {name}` (or run `make test-ecosystem`, which builds it).",
            pytrace=False,
        )
    return Path(found.stdout.strip())


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Service:
    """One child process with a readiness URL; its output goes to `log`."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready_url: str
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        with self.log.open("ab") as out:
            out.write(f"\n--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} while starting:\n{self.tail()}"
                )
            if http_ok(self.ready_url):
                return
            time.sleep(0.1)
        self.stop()
        message = (
            f"{self.name} was not ready at {self.ready_url} within {timeout:.0f} s:\n{self.tail()}"
        )
        raise AssertionError(message)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (a graceful shutdown that drains queues), KILL after `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Collector(Service):
    """The real Collector; `grpc` / `http` are its OTLP endpoints, `metrics_url` its own metrics."""

    grpc: str = ""
    http: str = ""
    metrics_url: str = ""


@dataclass
class Jaeger(Service):
    """Jaeger v2 with in-memory storage; `otlp_grpc` takes traces, `url` serves the API v3 and UI."""

    otlp_grpc: str = ""
    url: str = ""


CollectorFactory = Callable[..., Collector]


@pytest.fixture
def collector_factory(tmp_path: Path) -> Iterator[CollectorFactory]:
    """Start Collectors running deploy/otel-collector.yaml; all are stopped at teardown.

    ``collector_factory(brokers, spans_topic, metrics_topic, *, encoding="otlp_proto",
    jaeger_otlp=None, start=True)``. Without ``jaeger_otlp`` the traces' Jaeger exporter points at
    a closed port and only retries in the background, as when Jaeger is down.
    """
    path = binary("collector")
    started: list[Collector] = []

    def factory(
        brokers: str,
        spans_topic: str,
        metrics_topic: str,
        *,
        encoding: str = "otlp_proto",
        jaeger_otlp: str | None = None,
        start: bool = True,
    ) -> Collector:
        grpc, http, health, metrics = (f"127.0.0.1:{free_port()}" for _ in range(4))
        env = {
            **os.environ,
            "OTELCOL_OTLP_GRPC": grpc,
            "OTELCOL_OTLP_HTTP": http,
            "OTELCOL_HEALTH": health,
            "OTELCOL_METRICS_HOST": "127.0.0.1",
            "OTELCOL_METRICS_PORT": metrics.rpartition(":")[2],
            "OTELCOL_KAFKA_BROKERS": brokers,
            "OTELCOL_SPANS_TOPIC": spans_topic,
            "OTELCOL_METRICS_TOPIC": metrics_topic,
            "OTELCOL_SPANS_ENCODING": encoding,
            # zipkin_* and jaeger_* exist for traces only.
            "OTELCOL_METRICS_ENCODING": encoding if encoding.startswith("otlp") else "otlp_proto",
            "OTELCOL_JAEGER_OTLP": jaeger_otlp or f"127.0.0.1:{free_port()}",
            # Its own metrics into its own receiver each second (10 s in compose).
            "OTELCOL_SELF_OTLP": f"http://{grpc}",
            "OTELCOL_SELF_INTERVAL_MS": "1000",
        }
        collector = Collector(
            name="otelcol",
            argv=[str(path), f"--config={COLLECTOR_CONFIG}"],
            env=env,
            ready_url=f"http://{health}/",
            log=tmp_path / f"otelcol-{len(started)}.log",
            grpc=grpc,
            http=http,
            metrics_url=f"http://{metrics}/metrics",
        )
        started.append(collector)
        if start:
            collector.start()
        return collector

    yield factory
    for collector in started:
        collector.stop()


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[Jaeger]:
    """A running Jaeger v2 (in-memory storage) on free ports."""
    path = binary("jaeger")
    otlp_grpc, otlp_http, query_http, query_grpc = (f"127.0.0.1:{free_port()}" for _ in range(4))
    env = {
        **os.environ,
        "JAEGER_OTLP_GRPC": otlp_grpc,
        "JAEGER_OTLP_HTTP": otlp_http,
        "JAEGER_QUERY_HTTP": query_http,
        "JAEGER_QUERY_GRPC": query_grpc,
    }
    service = Jaeger(
        name="jaeger",
        argv=[str(path), f"--config={JAEGER_CONFIG}"],
        env=env,
        ready_url=f"http://{query_http}/api/v3/services",
        log=tmp_path / "jaeger.log",
        otlp_grpc=otlp_grpc,
        url=f"http://{query_http}",
    )
    service.start()
    yield service
    service.stop()
