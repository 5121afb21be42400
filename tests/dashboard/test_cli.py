"""`sre-space dashboard`: options, the Streamlit command line and where the state folder comes from."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from dashboard import cli

pytestmark = pytest.mark.dashboard


def parse(*argv: str, state: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", default=None)  # the global option of `sre-space`
    sub = parser.add_subparsers(dest="command")
    cli.add_arguments(sub.add_parser("dashboard"))
    args = (["--state", state] if state else []) + ["dashboard", *argv]
    return parser.parse_args(args)


def test_defaults_and_options() -> None:
    args = parse()
    assert (args.host, args.port, args.dashboard_state) == ("127.0.0.1", 8501, None)
    args = parse("--state", "/x/state", "--port", "9000", "--host", "0.0.0.0")
    assert (args.host, args.port, args.dashboard_state) == ("0.0.0.0", 9000, "/x/state")


def test_state_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRE_STATE_DIR", "/env/state")
    assert cli.resolve_state(parse()) == Path("/env/state")
    # `sre-space --state G dashboard` keeps G: the subcommand's own option has its own dest
    assert cli.resolve_state(parse(state="/global")) == Path("/global")
    assert cli.resolve_state(parse("--state", "/mine", state="/global")) == Path("/mine")
    monkeypatch.delenv("SRE_STATE_DIR")
    assert cli.resolve_state(parse()) == Path("state")


def test_streamlit_command_is_headless_on_the_given_address(tmp_path: Path) -> None:
    cmd = cli.streamlit_command("127.0.0.1", 8599, python="/venv/bin/python")
    assert cmd[:4] == ["/venv/bin/python", "-m", "streamlit", "run"]
    assert cmd[4] == str(cli.APP) and cli.APP.name == "app.py" and cli.APP.exists()
    for flag in (
        "--server.headless=true",
        "--server.address=127.0.0.1",
        "--server.port=8599",
        "--browser.gatherUsageStats=false",
    ):
        assert flag in cmd
    env = cli.child_env(tmp_path / "state")
    assert env["SRE_STATE_DIR"] == str((tmp_path / "state").resolve())
