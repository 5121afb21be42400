"""The incident lifecycle, its one owner: states, allowed transitions, and the stored latest state.

open -> diagnosed -> mitigating -> verifying -> resolved
  \\-------------------\\--------------\\--------> escalated (a person takes over)
recovered: the signals are back within baseline (set by the correlator); a recovered or
resolved incident reopens (back to open) when its problem returns within the cool-down.

Scout (the correlator) opens, updates, recovers and reopens incidents; the responders move them
on (diagnosed, mitigating, verifying, resolved, escalated). Both kinds of event are `Incident`
records; `stored_after` says what each one leaves as the incident's stored latest state, and
`responder_event` which fields a responder's move keeps. `sinks.store.incidents` applies them.
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

# States only the responders set, and the Scout events that leave them standing: a resolved
# incident stays resolved through late updates but a reopen (the problem came back) wins; an
# escalated one belongs to a person, so nothing from Scout moves it back.
KEEPS_STATE: dict[str, frozenset[str]] = {
    "resolved": frozenset({"updated", "recovered"}),
    "escalated": frozenset({"updated", "recovered", "reopened"}),
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


def responder_event(latest: Incident, state: str, at: int) -> Incident | None:
    """A responder's move of the stored incident to `state` at event time `at` (None if it is
    already there: a retried step); every other field is Scout's, kept from `latest`.

    Not checked against ALLOWED: Scout's events set the stored state too (an update or a reopen
    sets it back to open), so the responders' next move may start from a state they never saw.
    """
    if latest.state == state:
        return None
    return replace(latest, state=state, event=state, updated_at=at)  # type: ignore[arg-type]


def stored_after(latest: Incident | None, event: Incident) -> Incident | None:
    """The incident's stored latest state after `event`: the event itself, or None when the
    stored state stands (a responder settled it and Scout's event may not move it back, see
    KEEPS_STATE). The timeline keeps every event either way."""
    if latest is not None and event.event in KEEPS_STATE.get(latest.state, frozenset()):
        return None
    return event
