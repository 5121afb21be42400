"""Helpers around the real parts: the Collector's own metrics, and `python -m bytewax.run flows.main`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FLOW_TIMEOUT_S = 600.0
_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def collector_metric(url: str, name: str, **labels: str) -> float:
    """The sum of the Collector's own metric `name` (with or without `_total`) over matching series."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if not found or found.group(1) not in (name, name + "_total"):
            continue
        have = dict(_LABEL.findall(found.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(found.group(3))
    return total


def wait_for_metric(
    url: str, name: str, want: float, timeout: float = 120.0, **labels: str
) -> float:
    """Poll until the Collector's metric reaches `want`; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    value = 0.0
    while time.monotonic() < deadline:
        value = collector_metric(url, name, **labels)
        if value >= want:
            return value
        time.sleep(0.2)
    message = f"{name}{labels} reached {value}, not {want}, within {timeout:.0f} s"
    raise AssertionError(message)


def run_flow(bootstrap: str, topics: dict[str, str], state: Path, lateness_s: int = 3600) -> None:
    """`python -m bytewax.run flows.main` over the topics to their end (SRE_KAFKA_TAIL=false).

    Lateness covers the run: spans carry the SDK's chosen times and metrics the wall clock, and
    the two topics are read in no fixed order.
    """
    state.mkdir(parents=True, exist_ok=True)
    config = state / "pipeline.yaml"
    config.write_text(f"signals:\n  lateness_seconds: {lateness_s}\n")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SRE_STATE_DIR": str(state),
        "SRE_CONFIG": str(config),
        "SRE_KAFKA_TAIL": "false",
        **{f"SRE_{k.upper()}": v for k, v in topics.items()},
    }
    log = state / "flow.log"
    with log.open("wb") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "bytewax.run", "flows.main"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=FLOW_TIMEOUT_S,
            check=False,
        )
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise AssertionError(f"the flow exited with {proc.returncode}:\n{tail}")
