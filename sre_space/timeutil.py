"""Event-time helpers: nanosecond epochs, timezone-aware UTC datetimes and RFC 3339 strings."""

from __future__ import annotations

from datetime import UTC, datetime

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


def ns_to_rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch to RFC 3339 UTC with a `Z` suffix (millisecond precision)."""
    dt = ns_to_datetime(ns)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def rfc3339_to_ns(text: str) -> int:
    """RFC 3339 string (`Z` or an offset) to nanoseconds since the epoch."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return datetime_to_ns(dt)
