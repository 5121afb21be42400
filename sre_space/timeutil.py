"""Event-time helpers: nanosecond epochs, timezone-aware UTC datetimes and RFC 3339 strings."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


def ns_to_datetime(ns: int) -> datetime:
    """Nanoseconds since the epoch to an aware UTC datetime (microsecond precision)."""
    return datetime.fromtimestamp(ns // 1000 / 1_000_000, tz=UTC)


def datetime_to_ns(dt: datetime) -> int:
    """Aware datetime to nanoseconds since the epoch; naive datetimes are refused."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: event time must be timezone-aware UTC")
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


# Records of one window share their few times (window bounds, onsets): writing a signal formatted
# the same two times over and over, and strftime is the dearest step of it.
@lru_cache(maxsize=1024, typed=True)
def ns_to_rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch to RFC 3339 UTC with a `Z` suffix (millisecond precision)."""
    dt = ns_to_datetime(ns)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def rfc3339_to_ns(text: str) -> int:
    """RFC 3339 string (`Z` or an offset) to nanoseconds since the epoch."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return datetime_to_ns(dt)


_DURATION_TERM = r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?"
_DURATION_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: str | float) -> float:
    """Seconds from a number or from text: `90`, `500ms`, `30s`, `15m`, `1h30m`, `3d`."""
    import re

    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = value.strip().lower() if isinstance(value, str) else ""
    pos, total = 0, 0.0
    for m in re.finditer(_DURATION_TERM, text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNIT_S[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"bad duration {value!r}: use seconds or e.g. 500ms, 30s, 15m, 1h30m, 3d")
    return total
