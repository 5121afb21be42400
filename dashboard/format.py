"""How the dashboard spells times, durations and states: UTC text with the local time on hover,
short durations, coloured state badges."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any


def parse_time(ts: str | None) -> datetime | None:
    """RFC 3339 to an aware UTC datetime (None for empty or unparsable input)."""
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def fmt_utc(ts: str | None) -> str:
    """`2026-01-05 00:03:50 UTC`, or an em dash."""
    dt = parse_time(ts)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else "—"


def fmt_local(ts: str | None, tz: Any = None) -> str:
    """The same instant in the local time zone (the machine the dashboard runs on, or `tz`)."""
    dt = parse_time(ts)
    if dt is None:
        return ""
    local = dt.astimezone(tz) if tz is not None else dt.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)")


def time_html(ts: str | None, tz: Any = None) -> str:
    """UTC text with the local time in the hover title (`<span title=...>`)."""
    if not parse_time(ts):
        return "—"
    return (
        f'<span class="sre-time" title="local: {escape(fmt_local(ts, tz))}">'
        f"{escape(fmt_utc(ts))}</span>"
    )


def fmt_duration(seconds: float | None) -> str:
    """`45s`, `12m 5s`, `3h 20m`."""
    if seconds is None:
        return "—"
    s = round(max(seconds, 0.0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {(s % 3600) // 60}m"


STATE_COLOURS = {
    "open": "red",
    "diagnosed": "orange",
    "mitigating": "orange",
    "verifying": "blue",
    "escalated": "violet",
    "resolved": "green",
    "recovered": "green",
    "merged": "green",
    "reverted": "red",
    "closed": "gray",
}


def state_badge(state: str) -> str:
    """Markdown for a coloured incident state."""
    return f":{STATE_COLOURS.get(state, 'gray')}-badge[{state}]"
