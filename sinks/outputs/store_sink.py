"""The SQLite store as a Bytewax sink: idempotent upserts, so at-least-once replays are harmless."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from operators.scout.detect.events import AnomalyCleared, ChangeEvent
from sinks.store import Store
from sre_space.records import Anomaly, DeadLetter, Incident, Record, SignalWindow
from sre_space.timeutil import ns_to_rfc3339

Row = tuple[str, str, dict[str, Any], str, str]
# States only the responders set, and the Scout events that leave them standing: a resolved
# incident stays resolved through late updates but a reopen (the problem came back) wins; an
# escalated one belongs to a person, so nothing from Scout moves it back.
KEEPS_STATE = {
    "resolved": frozenset({"updated", "recovered"}),
    "escalated": frozenset({"updated", "recovered", "reopened"}),
}


def record_rows(record: Record) -> list[Row]:
    """(table, id, payload, ts, key) rows for a flow record; ids make rewrites idempotent."""
    payload = record.to_dict()
    if isinstance(record, Incident):
        # The incident's latest state, plus its event history (the lifecycle timeline).
        event_id = f"{record.id}|{record.event}|{ns_to_rfc3339(record.updated_at)}"
        return [
            ("incidents", record.id, payload, ns_to_rfc3339(record.opened_at), record.fingerprint),
            ("incident_events", event_id, payload, ns_to_rfc3339(record.updated_at), record.id),
        ]
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
    return [record_row(record)]


def record_row(record: Record) -> Row:
    """The single row of a signal or a dead letter."""
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
        for item in items:
            for table, rid, payload, ts, key in record_rows(item):
                if table == "incidents" and self._settled(rid, payload):
                    continue
                by_table.setdefault(table, []).append((rid, payload, ts, key))
        for table, rows in by_table.items():
            self._store.upsert_many(table, rows)

    def _settled(self, incident_id: str, payload: dict[str, Any]) -> bool:
        """A responder settled this incident (resolved or escalated) and Scout's event must not
        move its state back (see KEEPS_STATE). The timeline keeps every event either way."""
        row = self._store.get("incidents", incident_id)
        if row is None:
            return False
        return payload.get("event") in KEEPS_STATE.get(str(row.get("state")), frozenset())

    def close(self) -> None:
        self._store.close()


class StoreSink(DynamicSink[Record]):
    """Writes the flow's records (signals, dead letters, detections, incidents) into the store."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self.path)
