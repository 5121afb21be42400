"""The drill's report: when a fix that Scout never called recovered counts as mitigated."""

from __future__ import annotations

from sre_space.harness.drill import healthy_since
from sre_space.timeutil import rfc3339_to_ns


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
