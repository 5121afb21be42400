"""Kill -9 the flow mid-replay, resume from Bytewax's recovery store: same incidents, no duplicates."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos import SITE_CONFIG
from chaos.recorder import record
from tests.reliability.helpers import committed_epoch

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def _replay(recording: Path, out: Path, recovery: Path | None = None) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "sre_space.cli",
        "replay",
        str(recording),
        "--out",
        str(out),
        "--no-progress",
        "--config",
        str(SITE_CONFIG),  # a recording of the shop replays with its site file
    ]
    if recovery is not None:
        cmd += ["--recovery", str(recovery), "--epoch", "0.2"]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_killed_replay_resumes_to_the_same_output(tmp_path: Path) -> None:
    recording = tmp_path / "oom.pb"
    record("oom", 1, 20 * 60, recording, onset_s=5 * 60, bundle=False)

    clean = _replay(recording, tmp_path / "clean")
    assert clean.wait(timeout=300) == 0, clean.stderr.read() if clean.stderr else ""
    want_incidents = _lines(tmp_path / "clean" / "incidents.jsonl")
    want_signals = _lines(tmp_path / "clean" / "signals.jsonl")
    assert want_incidents, "the oom recording must raise an incident"

    out, recovery = tmp_path / "killed", tmp_path / "recovery"
    first = _replay(recording, out, recovery)
    # Let it commit a few snapshots (every 0.2 s), then kill it without warning.
    deadline = time.monotonic() + 120
    while committed_epoch(recovery) < 5:
        assert first.poll() is None, "the replay finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert not (out / "incidents.jsonl").exists()  # it really died before finishing

    resumed = _replay(recording, out, recovery)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    # It resumed from a snapshot partway through, not from the start of the recording.
    resumed_at = re.search(r"resuming .* at record (\d+)", err.decode())
    assert resumed_at and int(resumed_at.group(1)) > 0, err.decode()
    assert _lines(out / "incidents.jsonl") == want_incidents
    assert _lines(out / "signals.jsonl") == want_signals
