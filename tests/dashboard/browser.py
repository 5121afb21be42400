"""Headless Debian Chromium driven over the DevTools protocol: open a page, wait until Streamlit has
rendered it, read the DOM, save a screenshot.

`--screenshot --virtual-time-budget` alone fires before Streamlit's websocket has delivered the
page (virtual time does not wait for the server), so the browser is driven directly. The websocket
client is `websockets` (a Streamlit dependency), so nothing is added for the test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from websockets.sync.client import ClientConnection, connect

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)

# What a page looks like to the test: its title, whether Streamlit is still running it, error boxes.
_PROBE = """
(() => {
  const h1 = document.querySelector('[data-testid="stMain"] h1');
  // The app root says whether a script run is in progress (`notRunning` when done).
  const app = document.querySelector('[data-testid="stApp"]');
  const script = app ? app.getAttribute('data-test-script-state') : null;
  const stale = document.querySelectorAll('[data-stale="true"]').length;
  const skeletons = document.querySelectorAll('[data-testid="stSkeleton"]').length;
  return JSON.stringify({
    title: h1 ? h1.innerText.trim() : null,
    running: script !== 'notRunning',
    stale: stale,
    skeletons: skeletons,
    exceptions: document.querySelectorAll('[data-testid="stException"]').length,
    errors: document.querySelectorAll('[data-testid="stAlertContentError"]').length,
    text: document.body ? document.body.innerText : '',
  });
})()
"""


# Streamlit scrolls inside its main container: its scroll height is the page's real height.
_HEIGHT = """
Math.max(document.body.scrollHeight,
  ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]')]
    .map(e => e.scrollHeight))
"""


def find_chromium() -> str | None:
    """The Debian chromium binary, if installed."""
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium with one tab; use as a context manager."""

    def __init__(self, binary: str, width: int = 1280, height: int = 900) -> None:
        self.binary = binary
        self.width, self.height = width, height
        self._profile = tempfile.mkdtemp(prefix="sre-chromium-")
        self._proc: subprocess.Popen[bytes] | None = None
        self._ws: ClientConnection | None = None
        self._stack = contextlib.ExitStack()
        self._id = 0

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen(
            [
                self.binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self._profile}",
                f"--window-size={self.width},{self.height}",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError(f"chromium did not start ({self.binary})")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.load(resp)
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = self._stack.enter_context(
            connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        )
        self.call("Page.enable")
        self.call("Runtime.enable")
        self._viewport(self.height)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()  # the websocket
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        """One DevTools command; events received meanwhile are skipped."""
        assert self._ws is not None
        self._id += 1
        mid = self._id
        self._ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to {method} within {timeout} s")
            msg = json.loads(self._ws.recv(timeout=left))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def probe(self) -> dict[str, Any]:
        """The page's current state (see `_PROBE`)."""
        res = self.call("Runtime.evaluate", {"expression": _PROBE, "returnByValue": True})
        value = res.get("result", {}).get("value")
        return json.loads(value) if isinstance(value, str) else {}

    def open(
        self, url: str, title: str, timeout: float = 30.0, settle: float = 0.8
    ) -> dict[str, Any]:
        """Navigate and wait until the page shows `title` and Streamlit has stopped running it.

        Returns the last probe. Charts draw after the script finished, so a short settle time
        follows before a screenshot.
        """
        self.call("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        steady_since: float | None = None
        while time.monotonic() < deadline:
            state = self.probe()
            done = (
                state.get("title") == title
                and not state.get("running")
                and not state.get("stale")
                and not state.get("skeletons")
            )
            if done:
                steady_since = steady_since or time.monotonic()
                if time.monotonic() - steady_since >= settle:
                    return self.probe()
            else:
                steady_since = None
            time.sleep(0.2)
        return state

    def evaluate(self, expression: str) -> Any:
        """A JavaScript expression's value."""
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return res.get("result", {}).get("value")

    def click_tab(self, label: str) -> bool:
        """Click the Streamlit tab whose text is `label`; False when there is none."""
        return bool(
            self.evaluate(
                "(() => { const t = [...document.querySelectorAll('[role=\"tab\"]')]"
                f".find(b => b.innerText.trim() === {json.dumps(label)});"
                " if (t) { t.click(); return true; } return false; })()"
            )
        )

    def wait_for_text(self, text: str, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until the page's text contains `text` (returns the last probe either way)."""
        deadline = time.monotonic() + timeout
        state = self.probe()
        while text not in state.get("text", "") and time.monotonic() < deadline:
            time.sleep(0.2)
            state = self.probe()
        time.sleep(0.6)  # let charts draw
        return self.probe()

    def count(self, selector: str) -> int:
        """How many elements match a CSS selector."""
        return int(self.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length") or 0)

    def screenshot(self, path: Path, full_page: bool = True, max_height: int = 5000) -> None:
        """Save a PNG of the page; `full_page` grows the viewport to the app's scroll height.

        Streamlit scrolls inside its main container, not the document, so the page's own size is
        always the window's: the viewport is resized instead, then put back.
        """
        height = self.height
        if full_page:
            res = self.call(
                "Runtime.evaluate",
                {
                    "expression": _HEIGHT,
                    "returnByValue": True,
                },
            )
            height = max(self.height, min(int(res.get("result", {}).get("value") or 0), max_height))
            self._viewport(height)
            time.sleep(0.6)  # charts re-lay out for the new size
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        if height != self.height:
            self._viewport(self.height)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def _viewport(self, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
