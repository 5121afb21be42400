"""`sre-space dashboard [--state DIR] [--port P] [--host 127.0.0.1]`: start the Streamlit app.

Streamlit runs as a child process (`python -m streamlit run dashboard/app.py`) with headless server
options; the state folder reaches the app through SRE_STATE_DIR. Ctrl-C stops both.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from sre_space.paths import STATE_ENV, state_dir

APP = Path(__file__).resolve().parent / "app.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sre-space dashboard`."""
    # dest differs from the global --state so that `sre-space --state X dashboard` keeps X.
    parser.add_argument(
        "--state",
        dest="dashboard_state",
        default=None,
        help="state folder (default: the global --state, $SRE_STATE_DIR or ./state)",
    )
    parser.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )


def streamlit_command(host: str, port: int, python: str | None = None) -> list[str]:
    """The child command line: headless, no usage statistics, no file watcher, no browser."""
    return [
        python or sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless=true",
        f"--server.address={host}",
        f"--server.port={port}",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--browser.gatherUsageStats=false",
        f"--browser.serverAddress={host}",
        f"--browser.serverPort={port}",
        "--global.developmentMode=false",
        "--client.toolbarMode=viewer",
        "--theme.base=light",
    ]


def child_env(state: str | Path) -> dict[str, str]:
    """The environment of the child: this one, with SRE_STATE_DIR set (absolute)."""
    return {**os.environ, STATE_ENV: str(Path(state).resolve())}


def resolve_state(args: argparse.Namespace) -> Path:
    """The state folder: `dashboard --state`, the global `--state`, $SRE_STATE_DIR, ./state."""
    return state_dir(getattr(args, "dashboard_state", None) or getattr(args, "state", None))


def run(args: argparse.Namespace) -> int:
    """Start Streamlit and wait for it; its exit code is ours."""
    state = resolve_state(args)
    cmd = streamlit_command(args.host, args.port)
    print(f"SRE-Space dashboard on http://{args.host}:{args.port} (state {state})", flush=True)
    proc = subprocess.Popen(cmd, env=child_env(state))

    def stop(signum: int, _frame: object) -> None:
        # A supervisor's SIGTERM must not orphan the Streamlit child: pass it on, then wait.
        del signum
        proc.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m dashboard.cli` without the `sre-space` wrapper."""
    parser = argparse.ArgumentParser(
        prog="sre-space dashboard", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
