"""The SQLite store as a Bytewax sink: idempotent upserts, so at-least-once replays are harmless."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from operators.scout.detect.events import AnomalyCleared, ChangeEvent
from sinks.store import Store
from sinks.store.incidents import record_events
from sre_space.records import Anomaly, DeadLetter, Incident, Record, SignalWindow
from sre_space.timeutil import ns_to_rfc3339

Row = tuple[str, str, dict[str, Any], str, str]


def record_rows(record: Record) -> list[Row]:
    """(table, id, payload, ts, key) rows for a flow record but an incident (`sinks.store.incidents`
    writes those); ids make rewrites idempotent."""
    payload = record.to_dict()
    if isinstance(record, Anomaly):
        return [
            ("anomalies", record.id, payload, ns_to_rfc3339(record.onset), record.service or "")
        ]
    if isinstance(record, AnomalyCleared):
        # Cleared anomalies update their anomaly row rather than adding one.
        return [
            (
                "anomalies",
                f"{record.id}|cleared",
                payload,
                ns_to_rfc3339(record.at),
                record.service or "",
            )
        ]
    if isinstance(record, ChangeEvent):
        return [("changes", record.id, payload, ns_to_rfc3339(record.at), record.service)]
    return [record_row(record, payload)]


def record_row(record: Record, payload: dict[str, Any] | None = None) -> Row:
    """The single row of a signal or a dead letter (`payload`: its `to_dict()`, if made)."""
    if payload is None:
        payload = record.to_dict()
    if isinstance(record, SignalWindow):
        kind, svc, name = record.key
        key = f"{kind}|{svc}|{name}"
        start = ns_to_rfc3339(record.window_start)
        return ("signals", f"{key}|{start}", payload, start, key)
    if isinstance(record, DeadLetter):
        rid = f"{record.source}|{record.partition}|{record.offset}"
        return ("deadletters", rid, payload, "", record.source)
    raise TypeError(f"no store table for {type(record).__name__}")


class _Partition(StatelessSinkPartition[Record]):
    def __init__(self, path: Path) -> None:
        self._store = Store(path)

    def write_batch(self, items: list[Record]) -> None:
        by_table: dict[str, list[tuple[str, dict[str, Any], str, str]]] = {}
        incidents: list[Incident] = []
        for item in items:
            if isinstance(item, Incident):
                incidents.append(item)
                continue
            for table, rid, payload, ts, key in record_rows(item):
                by_table.setdefault(table, []).append((rid, payload, ts, key))
        for table, rows in by_table.items():
            self._store.upsert_many(table, rows)
        if incidents:
            record_events(self._store, incidents)

    def close(self) -> None:
        self._store.close()


class StoreSink(DynamicSink[Record]):
    """Writes the flow's records (signals, dead letters, detections, incidents) into the store."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self.path)
