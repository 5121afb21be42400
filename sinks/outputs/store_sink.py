"""The SQLite store as a Bytewax sink: idempotent upserts, so at-least-once replays are harmless."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from sinks.store import Store
from sre_space.records import DeadLetter, Record, SignalWindow


def record_row(record: Record) -> tuple[str, str, dict[str, Any], str, str]:
    """(table, id, payload, ts, key) for a flow record; the id makes rewrites idempotent."""
    payload = record.to_dict()
    if isinstance(record, SignalWindow):
        kind, svc, name = record.key
        key = f"{kind}|{svc}|{name}"
        return ("signals", f"{key}|{record.window_start}", payload, record.window_start, key)
    if isinstance(record, DeadLetter):
        rid = f"{record.source}|{record.partition}|{record.offset}"
        return ("deadletters", rid, payload, "", record.source)
    raise TypeError(f"no store table for {type(record).__name__}")


class _Partition(StatelessSinkPartition[Record]):
    def __init__(self, path: Path) -> None:
        self._store = Store(path)

    def write_batch(self, items: list[Record]) -> None:
        by_table: dict[str, list[tuple[str, dict[str, Any], str, str]]] = {}
        for item in items:
            table, rid, payload, ts, key = record_row(item)
            by_table.setdefault(table, []).append((rid, payload, ts, key))
        for table, rows in by_table.items():
            self._store.upsert_many(table, rows)

    def close(self) -> None:
        self._store.close()


class StoreSink(DynamicSink[Record]):
    """Writes SignalWindow and DeadLetter records into `<state>/sre.db`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self.path)
