"""The dashboard's handle on the SQLite store: the real one, or an empty stand-in before the state
folder has a database (opening the real one would create it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sinks.store.sqlite import Store
from sre_space.paths import StatePaths
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339, rfc3339_to_ns


class EmptyStore:
    """Stands in for a database that does not exist yet: every table is empty."""

    def query(self, table: str, **_kw: Any) -> list[dict[str, Any]]:
        """No rows."""
        return []

    def get(self, table: str, id: str) -> dict[str, Any] | None:
        """No row."""
        return None

    def count(self, table: str) -> int:
        """Zero."""
        return 0


# What the pages read through: `Store` and `EmptyStore` answer the same reads.
StoreReader = Store | EmptyStore


def open_store(state_dir: str | Path) -> StoreReader:
    """The state folder's SQLite store, or an `EmptyStore` when `sre.db` does not exist.

    Opening the real Store on a missing file would create it: the dashboard must not.
    """
    path = StatePaths(Path(state_dir)).db
    return Store(path) if path.exists() else EmptyStore()


def latest_ts(store: StoreReader, table: str = "signals") -> str | None:
    """The newest `ts` of a table (event time), or None when it is empty."""
    rows = store.query(table, limit=1, newest_first=True)
    if not rows:
        return None
    row = rows[0]
    return str(row.get("window_end") or row.get("window_start") or row.get("at") or "") or None


def minutes_before(ts: str, minutes: float) -> str:
    """The event time `minutes` before `ts` (RFC 3339)."""
    return ns_to_rfc3339(rfc3339_to_ns(ts) - int(minutes * 60 * NS_PER_S))
