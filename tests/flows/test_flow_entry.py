"""`python -m bytewax.run flows.main` with a bad config: the keys, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sre_space.paths import STATE_ENV
from sre_space.settings import CONFIG_ENV


def test_a_bad_config_stops_the_flow_with_every_bad_key_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("signals: {window_secnds: 10}\nincidents: {max_hop: 2}\n")
    env = {**os.environ, CONFIG_ENV: str(config), STATE_ENV: str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-m", "bytewax.run", "flows.main"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"flows.main: invalid configuration in {config}:",
        "  signals.window_secnds: unknown key (did you mean `window_seconds`?)",
        "  incidents.max_hop: unknown key (did you mean `max_hops`?)",
    ]
