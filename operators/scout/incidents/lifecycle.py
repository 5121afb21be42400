"""Incident lifecycle: the states later stages set, and which transitions are allowed.

open -> diagnosed -> mitigating -> verifying -> resolved
  \\-------------------\\--------------\\--------> escalated (a person takes over)
recovered: the signals are back within baseline (set by the correlator); a recovered or
resolved incident reopens (back to open) when its problem returns within the cool-down.
"""

from __future__ import annotations

from dataclasses import replace
from typing import get_args

from sre_space.records import Incident, IncidentState

STATES: tuple[str, ...] = get_args(IncidentState)

ALLOWED: dict[str, frozenset[str]] = {
    "open": frozenset({"diagnosed", "mitigating", "escalated", "resolved", "recovered"}),
    "diagnosed": frozenset({"mitigating", "escalated", "resolved", "recovered", "diagnosed"}),
    "mitigating": frozenset({"verifying", "escalated", "resolved", "recovered"}),
    "verifying": frozenset({"resolved", "escalated", "mitigating", "recovered"}),
    "escalated": frozenset({"diagnosed", "mitigating", "resolved", "recovered"}),
    "recovered": frozenset(
        {"open", "diagnosed", "mitigating", "verifying", "resolved", "escalated"}
    ),
    "resolved": frozenset({"open"}),
}


class InvalidTransition(ValueError):
    """A state change that the lifecycle does not allow; the message names both states."""


def check_transition(current: str, new: str) -> None:
    """Raise InvalidTransition unless `current -> new` is allowed."""
    if new not in STATES:
        raise InvalidTransition(f"unknown incident state {new!r}; known: {', '.join(STATES)}")
    if new not in ALLOWED.get(current, frozenset()):
        allowed = ", ".join(sorted(ALLOWED.get(current, frozenset()))) or "none"
        raise InvalidTransition(
            f"incident cannot go from {current!r} to {new!r}; allowed: {allowed}"
        )


def apply_state(incident: Incident, state: str, at: int, note: str = "") -> Incident:
    """The incident event for moving `incident` to `state` at event time `at`.

    The event is named after the state; `note` (say, the diagnosis or the reason to escalate)
    goes into the summary.
    """
    check_transition(incident.state, state)
    summary = f"{incident.summary} | {state}: {note}" if note else incident.summary
    return replace(
        incident,
        state=state,  # type: ignore[arg-type]
        updated_at=at,
        event=state,
        summary=summary,
    )
