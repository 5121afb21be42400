"""The dashboard in a real browser: `sre-space dashboard` (as `python -m dashboard.cli`) serves the
seeded state folder on a free 127.0.0.1 port, headless Debian Chromium opens every page, the page
must render its title with no exception box, and a screenshot goes to `screenshots/`.

Chromium comes from Debian (`apt-get install -y chromium`; `.ci/run` installs it). Without it the
test fails with that hint rather than skipping: a skipped browser test proves nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard.browser import Browser, find_chromium
from tests.dashboard.seed import Seeded, store_actions

pytestmark = [pytest.mark.dashboard, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "screenshots"


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait for Streamlit's health endpoint; fail with the server's output if it dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"the dashboard exited with {proc.returncode}:\n{out}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the dashboard did not answer {base}/_stcore/health within {timeout:.0f} s")


@pytest.fixture(scope="module")
def server(seeded: Seeded) -> Iterator[str]:
    """The dashboard on a free port, started the way `sre-space dashboard` starts it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SRE_STATE_DIR"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dashboard.cli",
            "--state",
            str(seeded.state),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # Its own process group: the teardown can stop the CLI and its Streamlit child together.
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)  # the CLI forwards it to Streamlit
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    binary = find_chromium()
    if binary is None:
        pytest.fail(
            "Chromium is not installed: `apt-get install -y chromium` (Debian's package; "
            ".ci/run installs it)",
            pytrace=False,
        )
    with Browser(binary, width=1280, height=900) as b:
        yield b


PAGES = [
    # (url path, title, text the page must show, screenshot name)
    ("", "Overview", "SLOs and error budget", "overview"),
    ("incidents?incident={resolved}", "Incidents", "{resolved}", "incidents"),
    ("memory", "Memory", "Outcome of each fix", "memory"),
    ("chaos", "Chaos", "Current manifests", "chaos"),
    ("audit", "Audit log", "{actions} of {actions} actions", "audit"),
    ("backtests", "Backtests", "Localization accuracy", "backtests"),
]


@pytest.mark.parametrize(("path", "title", "needle", "shot"), PAGES, ids=[p[3] for p in PAGES])
def test_page_renders_in_chromium(
    server: str, browser: Browser, seeded: Seeded, path: str, title: str, needle: str, shot: str
) -> None:
    values = {"resolved": seeded.resolved_id, "actions": len(store_actions(seeded.state))}
    url = f"{server}/{path.format(**values)}"
    state = browser.open(url, title)
    assert state.get("title") == title, f"{url}: page showed {state.get('title')!r}"
    assert state.get("exceptions") == 0, f"{url}: exception box shown:\n{state.get('text')}"
    assert state.get("errors") == 0, f"{url}: error box shown:\n{state.get('text')}"
    # Tables are drawn on a canvas, so the needle is text outside them.
    assert needle.format(**values) in state.get("text", "")
    browser.screenshot(SCREENSHOTS / f"{shot}.png")
    assert (SCREENSHOTS / f"{shot}.png").stat().st_size > 10_000


def test_incident_trace_waterfall_in_chromium(
    server: str, browser: Browser, seeded: Seeded
) -> None:
    """The Trace tab of the resolved incident: the waterfall chart is drawn."""
    url = f"{server}/incidents?incident={seeded.resolved_id}"
    browser.open(url, "Incidents")
    clicked = browser.click_tab("Trace")
    assert clicked, "no Trace tab"
    state = browser.wait_for_text("Critical path", timeout=15)
    assert state.get("exceptions") == 0
    assert (
        browser.count('[data-testid="stVegaLiteChart"] canvas, .vega-embed canvas, .vega-embed svg')
        > 0
    )
    browser.screenshot(SCREENSHOTS / "incident-trace.png")


def test_empty_state_folder_in_chromium(browser: Browser, tmp_path: Path) -> None:
    """A fresh install: no state folder yet; the overview explains what to run."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SRE_STATE_DIR"}
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", "--state", str(state), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        shown = browser.open(base + "/", "Overview")
        assert shown.get("exceptions") == 0
        assert "No signals yet" in shown.get("text", "")
        assert "python -m chaos oom" in shown.get("text", "")
        browser.screenshot(SCREENSHOTS / "overview-empty.png", full_page=False)
        assert not state.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
