"""SQLite document store: one table per record family, a JSON payload plus indexed key columns.

Writes are idempotent upserts by (table, id), so the flow's at-least-once delivery and a responder's
retries never duplicate a row. WAL mode lets the dashboard read while the flow writes; a
`transaction` makes a read-modify-write atomic across the processes sharing the file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

TABLES = (
    "signals",
    "anomalies",
    "changes",
    "incidents",
    "incident_events",
    "diagnoses",
    "actions",
    "deadletters",
    "progress",
    "tracker",
    "pull_requests",
    "postmortems",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    id TEXT PRIMARY KEY,
    ts TEXT NOT NULL DEFAULT '',
    key TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {table}_ts ON {table}(ts);
CREATE INDEX IF NOT EXISTS {table}_key ON {table}(key);
"""


OPEN_TIMEOUT_S = 30.0


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL, waiting for the other openers as the busy timeout would: SQLite
    refuses the switch at once while another connection holds a lock, without the busy wait."""
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class Store:
    """A thread-safe handle on the SQLite file; one per process is enough."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Re-entrant: the calls inside a `transaction` take it again on the same thread.
        self._lock = threading.RLock()
        self._in_transaction = False
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=OPEN_TIMEOUT_S)
        _use_wal(self._conn)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        # A cluster's processes open one file at once. A deferred transaction that has read the
        # schema cannot take the write lock another opener took meanwhile, and SQLite fails it at
        # once, without the busy wait: `transaction` takes the write lock first (BEGIN IMMEDIATE).
        with self.transaction():
            for table in TABLES:
                for statement in _SCHEMA.format(table=table).split(";"):
                    if statement.strip():
                        self._conn.execute(statement)

    def upsert(
        self, table: str, id: str, payload: dict[str, Any], *, ts: str = "", key: str = ""
    ) -> None:
        """Insert or replace one document."""
        self.upsert_many(table, [(id, payload, ts, key)])

    def upsert_many(self, table: str, rows: Iterable[tuple[str, dict[str, Any], str, str]]) -> None:
        """Insert or replace documents given as (id, payload, ts, key) in one transaction."""
        self._check(table)
        data = [(i, ts, key, json.dumps(p, sort_keys=True)) for i, p, ts, key in rows]
        with self._lock, self._commit():
            self._conn.executemany(
                f"INSERT OR REPLACE INTO {table}(id, ts, key, payload) VALUES (?, ?, ?, ?)", data
            )

    def get(self, table: str, id: str) -> dict[str, Any] | None:
        """One document by id, or None."""
        self._check(table)
        with self._lock:
            row = self._conn.execute(f"SELECT payload FROM {table} WHERE id = ?", (id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def query(
        self,
        table: str,
        *,
        key: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Documents filtered by key and ts range [since, until), ordered by ts then id."""
        return list(self._iter(table, key, since, until, limit, newest_first))

    def count(self, table: str) -> int:
        """How many documents a table holds."""
        self._check(table)
        with self._lock:
            return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Reads and writes inside commit together, under the file's write lock taken before the
        first read (BEGIN IMMEDIATE): another process's write lands wholly before or after."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._in_transaction = True
            try:
                yield self
            except BaseException:
                self._conn.rollback()
                raise
            else:
                self._conn.commit()
            finally:
                self._in_transaction = False

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _commit(self) -> AbstractContextManager[object]:
        """Commit each write on its own, unless a `transaction` commits it later."""
        return nullcontext() if self._in_transaction else self._conn

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _iter(
        self,
        table: str,
        key: str | None,
        since: str | None,
        until: str | None,
        limit: int | None,
        newest_first: bool,
    ) -> Iterator[dict[str, Any]]:
        self._check(table)
        where, params = [], []
        if key is not None:
            where.append("key = ?")
            params.append(key)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if until is not None:
            where.append("ts < ?")
            params.append(until)
        sql = f"SELECT payload FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = "DESC" if newest_first else "ASC"
        sql += f" ORDER BY ts {order}, id {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        for (payload,) in rows:
            yield json.loads(payload)

    @staticmethod
    def _check(table: str) -> None:
        if table not in TABLES:
            raise ValueError(f"unknown store table {table!r}; known: {', '.join(TABLES)}")
