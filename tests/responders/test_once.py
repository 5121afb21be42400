"""`sre-space responders --once`: one tick, told as a person reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.outputs.store_sink import record_rows
from sinks.store import Store
from sre_space.cli import main
from sre_space.records import SignalWindow
from sre_space.responders.loop import TickReport
from sre_space.timeutil import NS_PER_S, rfc3339_to_ns

T0 = rfc3339_to_ns("2027-05-10T14:00:00.000Z")


def test_a_tick_on_an_empty_store_and_on_a_quiet_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert main(["--state", str(state), "responders", "--once"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "no signal windows in the store yet: nothing to act on"
    )
    window = SignalWindow(
        kind="span", window_start=T0, window_end=T0 + 10 * NS_PER_S, service="api",
        operation="GET /", count=5,
    )  # fmt: skip
    with Store(state / "sre.db") as store:
        for table, rid, payload, ts, key in record_rows(window):
            store.upsert(table, rid, payload, ts=ts, key=key)
    assert main(["--state", str(state), "responders", "--once"]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "tick at 2027-05-10T14:00:10.000Z (the newest signal window's end)",
        "  no incident to act on",
    ]


def test_each_incident_gets_its_line() -> None:
    report = TickReport(
        now=T0, started=["inc-a"], advanced={"inc-a": "verify"}, deferred=["inc-b"],
        errors={"inc-c": "ForgeError: 502"},
    )  # fmt: skip
    assert report.describe().splitlines()[1:] == [
        "  inc-a: started",
        "  inc-a: now at verify",
        "  inc-b: diagnosis deferred (more data first)",
        "  inc-c: error: ForgeError: 502",
    ]
