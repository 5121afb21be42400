"""Run the test suite against a real Kafka broker (what `make test` runs).

If KAFKA_BOOTSTRAP_SERVERS is set, the tests use that broker and nothing is started. Otherwise
this starts a private broker with ``scripts/kafka/kafka up``, exports KAFKA_BOOTSTRAP_SERVERS,
runs ``python -m pytest`` with the arguments given (``-q`` when none are), and always stops the
broker it started, even when pytest fails or the run is interrupted.

The broker gets port 9092 (or SRE_KAFKA_PORT) when that port and the next one are free, and
another free pair otherwise, so a developer's own broker or a second test run on the same
machine is never reused or stopped by this one.

Before that it builds the real OpenTelemetry Collector and Jaeger v2 that the ecosystem tests run
(``scripts/otel/otel build all``: a no-op when cached in ~/.cache/sre-space/otel, a Go build on a
fresh machine) and passes their paths on as SRE_OTELCOL_BIN and SRE_JAEGER_BIN. Set
SRE_OTEL_BUILD=0 to skip that (those tests then fail, saying how to build). Likewise it builds
kustomize and helm for the Fixer's Kubernetes tests (``scripts/gitops/tools build all``, cached in
~/.cache/sre-space/gitops) and passes them on as SRE_KUSTOMIZE_BIN and SRE_HELM_BIN.

Exit code: pytest's, except that "no tests collected" (pytest's 5) is reported as a failure:
a run that tested nothing must not look green.

Standard library only: it runs before anything is known about the environment.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = REPO / "scripts" / "kafka" / "kafka"
OTEL_SCRIPT = REPO / "scripts" / "otel" / "otel"
GITOPS_SCRIPT = REPO / "scripts" / "gitops" / "tools"
DEFAULT_PORT = 9092
PYTEST_NO_TESTS = 5


def _say(message: str) -> None:
    print(f"run_tests: {message}", file=sys.stderr, flush=True)


def _port_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pair_free(port: int) -> bool:
    # The broker takes the port, its controller the next one.
    return 0 < port < 65535 and _port_free(port) and _port_free(port + 1)


def choose_port(requested: str | None) -> int:
    """SRE_KAFKA_PORT if given; else 9092 if free; else any free port whose successor is free."""
    if requested:
        return int(requested)
    if _pair_free(DEFAULT_PORT):
        return DEFAULT_PORT
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if _pair_free(port):
            _say(f"port {DEFAULT_PORT} is taken; this run's broker uses port {port}")
            return port
    message = "found no two free consecutive ports on 127.0.0.1 for the test broker"
    raise RuntimeError(message)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM (a CI timeout, `kill`) must unwind through `finally` so the broker gets stopped.
    raise KeyboardInterrupt(f"signal {signum}")


def _python() -> str:
    venv_python = REPO / ".venv" / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def _build_tools(
    env: dict[str, str], script: Path, shown: str, tools: tuple[tuple[str, str], ...]
) -> int:
    """Build (or find cached) what `script` builds; export each tool's path into `env`."""
    built = subprocess.run(["bash", str(script), "build", "all"], cwd=REPO, env=env, check=False)
    if built.returncode != 0:
        _say(f"`{shown} build all` failed with exit code {built.returncode}")
        return built.returncode
    for name, var in tools:
        path = subprocess.run(
            ["bash", str(script), "path", name],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        if path.returncode == 0:
            env[var] = path.stdout.strip()
    return 0


def build_otel(env: dict[str, str]) -> int:
    """Build (or find cached) the Collector and Jaeger; export their paths into `env`."""
    if env.get("SRE_OTEL_BUILD", "1") == "0":
        _say("SRE_OTEL_BUILD=0: not building the Collector and Jaeger")
        return 0
    began = time.monotonic()
    tools = (("collector", "SRE_OTELCOL_BIN"), ("jaeger", "SRE_JAEGER_BIN"))
    code = _build_tools(env, OTEL_SCRIPT, "scripts/otel/otel", tools)
    if code == 0:
        _say(f"Collector and Jaeger ready in {time.monotonic() - began:.1f} s")
    return code


def build_gitops_tools(env: dict[str, str]) -> int:
    """Build (or find cached) kustomize and helm; export their paths into `env`."""
    if env.get("SRE_OTEL_BUILD", "1") == "0":
        _say("SRE_OTEL_BUILD=0: not building kustomize and helm either")
        return 0
    tools = (("kustomize", "SRE_KUSTOMIZE_BIN"), ("helm", "SRE_HELM_BIN"))
    return _build_tools(env, GITOPS_SCRIPT, "scripts/gitops/tools", tools)


def run(pytest_args: list[str]) -> int:
    env = dict(os.environ)
    started_port: int | None = None
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        built = build_otel(env) or build_gitops_tools(env)
        if built != 0:
            return built
        if env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip():
            _say(f"using the broker at KAFKA_BOOTSTRAP_SERVERS={env['KAFKA_BOOTSTRAP_SERVERS']}")
        else:
            port = choose_port(env.get("SRE_KAFKA_PORT"))
            env["SRE_KAFKA_PORT"] = str(port)
            # Set before `up` so that a broker which starts but never gets ready is stopped too.
            started_port = port
            began = time.monotonic()
            up = subprocess.run(
                ["bash", str(KAFKA_SCRIPT), "up"],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
                check=False,
            )
            if up.returncode != 0:
                _say(f"`scripts/kafka/kafka up` failed with exit code {up.returncode}")
                return up.returncode
            bootstrap = f"127.0.0.1:{port}"
            for line in up.stdout.splitlines():
                if line.startswith("KAFKA_BOOTSTRAP_SERVERS="):
                    bootstrap = line.partition("=")[2].strip()
            env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
            _say(f"broker up at {bootstrap} in {time.monotonic() - began:.1f} s")

        began = time.monotonic()
        command = [_python(), "-m", "pytest", *pytest_args]
        _say("running " + " ".join(command[1:]))
        code = subprocess.call(command, cwd=REPO, env=env)
        _say(f"pytest exited with {code} after {time.monotonic() - began:.1f} s")
        if code == PYTEST_NO_TESTS:
            _say("pytest collected no tests: that is a failure here (a run that tests nothing)")
            return 1
        return code
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    finally:
        if started_port is not None:
            began = time.monotonic()
            down = subprocess.run(
                ["bash", str(KAFKA_SCRIPT), "down"],
                cwd=REPO,
                env={**env, "SRE_KAFKA_PORT": str(started_port)},
                check=False,
            )
            if down.returncode != 0:
                _say(f"stopping the broker failed (exit code {down.returncode})")
            else:
                _say(f"broker stopped in {time.monotonic() - began:.1f} s")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return run(args or ["-q"])


if __name__ == "__main__":
    sys.exit(main())
