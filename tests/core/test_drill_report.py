"""The drill's report: when a fix that Scout never called recovered counts as mitigated; where
the next drill in a state folder starts."""

from __future__ import annotations

import json
from pathlib import Path

from sinks.outputs.store_sink import record_rows
from sinks.store import Store
from sre_space.harness.drill import healthy_since, next_epoch_ns
from sre_space.paths import StatePaths
from sre_space.records import SignalWindow
from sre_space.timeutil import NS_PER_S, rfc3339_to_ns


def test_mitigated_where_the_final_run_of_healthy_windows_began() -> None:
    windows = {
        "2026-01-05T00:14:10.000Z": True,
        "2026-01-05T00:14:30.000Z": False,
        "2026-01-05T00:15:10.000Z": True,
        "2026-01-05T00:15:30.000Z": True,
        "2026-01-05T00:15:50.000Z": True,
    }
    assert healthy_since(windows) == rfc3339_to_ns("2026-01-05T00:15:10.000Z")


def test_no_mitigation_while_the_last_window_is_unhealthy() -> None:
    assert (
        healthy_since({"2026-01-05T00:14:10.000Z": True, "2026-01-05T00:14:30.000Z": False}) is None
    )
    assert healthy_since({}) is None


def _store_window_ending(paths: StatePaths, end: str) -> None:
    sig = SignalWindow(
        kind="span", window_start=rfc3339_to_ns(end) - 10 * NS_PER_S,
        window_end=rfc3339_to_ns(end), service="api", count=1,
    )  # fmt: skip
    with Store(paths.db) as store:
        for table, rid, payload, ts, key in record_rows(sig):
            store.upsert(table, rid, payload, ts=ts, key=key)


def test_the_next_drill_starts_an_hour_after_the_last_ones_shop_stopped(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    paths.drills.parent.mkdir(parents=True)
    # The outcome came at 00:40 and the flow had stored up to 00:52 when the rig stopped (both
    # follow the wall clock), but the shop could run until 00:56: the next drill starts an hour
    # after that, at the same moment in every run.
    ran = {"start": "2026-01-05T00:02:00.000Z", "end": "2026-01-05T00:40:10.000Z"}
    paths.drills.write_text(json.dumps({**ran, "until": "2026-01-05T00:56:00.000Z"}) + "\n")
    _store_window_ending(paths, "2026-01-05T00:52:00.000Z")
    assert next_epoch_ns(tmp_path) == rfc3339_to_ns("2026-01-05T01:57:00.000Z")
    # An index written before `until` was kept: the newest of its end and the store's windows.
    paths.drills.write_text(json.dumps(ran) + "\n")
    assert next_epoch_ns(tmp_path) == rfc3339_to_ns("2026-01-05T01:53:00.000Z")
