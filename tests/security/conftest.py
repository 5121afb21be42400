"""Prints the prompt-injection suite's result line: "prompt injection: N cases, N held"."""

from __future__ import annotations

from typing import Any

import pytest

_CASE_TEST = "test_prompt_injection.py::test_hostile_text_changes_nothing["
_outcomes: dict[str, bool] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _CASE_TEST not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _outcomes[report.nodeid] = report.passed


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _outcomes:
        held = sum(_outcomes.values())
        terminalreporter.write_line(f"prompt injection: {len(_outcomes)} cases, {held} held")
