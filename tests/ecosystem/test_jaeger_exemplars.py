"""The responders' Brain falls back to a real Jaeger v2 for exemplar traces the archive lacks.

A failing trace (frontend -> checkout -> payment, payment fails) goes from the OpenTelemetry SDK
straight into Jaeger's OTLP receiver; the span archive is empty, as after retention. The incident's
anomaly names the trace as its exemplar and a span signal names one more trace Jaeger never saw.
Without `SRE_JAEGER_URL` the Brain has nothing to read; with it, the Brain reads the exemplar from
Jaeger's API v3 and names payment's 'POST /charge', quoting that trace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sinks.fixer.audit import AuditLog
from sinks.outputs.store_sink import record_row, record_rows
from sinks.store import Store
from sre_space.records import Anomaly, Diagnosis, Incident, SignalWindow
from sre_space.responders.steps import BrainStep
from sre_space.settings import load_settings
from sre_space.timeutil import NS_PER_S
from tests.ecosystem.conftest import Jaeger
from tests.ecosystem.test_jaeger import _failing_checkout, _wait_for_trace

pytestmark = pytest.mark.jaeger

UNKNOWN = "0123456789abcdef0123456789abcdef"


class _NoMemory:
    def similar_for_brain(self, diagnosis: Diagnosis) -> list[dict[str, Any]]:
        return []


def _incident_in_store(store: Store, trace_id: str, trace_start_ns: int) -> Incident:
    opened = trace_start_ns + 30 * NS_PER_S
    anomaly = Anomaly(
        id="an-1",
        detector="error_rate",
        signal="error_rate",
        kind="span",
        onset=opened - 20 * NS_PER_S,
        observed=1.0,
        expected=0.0,
        score=9.0,
        service="payment",
        operation="POST /charge",
        exemplar_trace_ids=[trace_id],
    )
    window = SignalWindow(
        kind="span",
        window_start=opened - 20 * NS_PER_S,
        window_end=opened - 10 * NS_PER_S,
        service="payment",
        operation="POST /charge",
        count=1,
        errors=1,
        failing_trace_ids=[UNKNOWN],
    )
    for table, rid, payload, ts, key in [*record_rows(anomaly), record_row(window)]:
        store.upsert(table, rid, payload, ts=ts, key=key)
    return Incident(
        id="inc-jaeger",
        fingerprint="fp",
        state="open",
        opened_at=opened,
        updated_at=opened,
        services=["payment"],
        severity="major",
        anomaly_ids=[anomaly.id],
    )


def _brain(state: Path, jaeger_url: str | None, logs: list[str], now: int) -> BrainStep:
    settings = load_settings(state_dir=state, jaeger_url=jaeger_url)
    store = Store(settings.paths.db)
    return BrainStep(
        settings,
        store,
        _NoMemory(),  # type: ignore[arg-type]
        AuditLog(store, actor="test"),
        lambda: now,
        logs.append,
    )


def test_the_brain_reads_exemplar_traces_the_archive_lacks_from_jaeger(
    tmp_path: Path, jaeger: Jaeger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRE_JAEGER_TIMEOUT", "5")
    memory = InMemorySpanExporter()
    trace_id = _failing_checkout(jaeger.otlp_grpc, memory)
    finished = memory.get_finished_spans()
    _wait_for_trace(jaeger, trace_id, len(finished))
    start = min(int(s.start_time or 0) for s in finished)

    state = tmp_path / "state"
    state.mkdir()
    with Store(state / "sre.db") as store:
        incident = _incident_in_store(store, trace_id, start)
    now = incident.opened_at + 60 * NS_PER_S

    logs: list[str] = []
    assert _brain(state, None, logs, now).diagnose(incident) is None
    assert any("no archived spans" in m for m in logs), logs

    logs.clear()
    step = _brain(state, jaeger.url, logs, now)
    diagnosis = step.diagnose(incident)
    assert diagnosis is not None, logs
    top = diagnosis.candidates[0]
    assert (top.service, top.operation) == ("payment", "POST /charge")
    assert any(trace_id in ev.trace_ids for ev in top.evidence)
    assert "1 traces in the incident window" in diagnosis.summary
    assert any(trace_id in m and f"{len(finished)} spans from Jaeger" in m for m in logs), logs
    assert any(UNKNOWN in m and "nor in Jaeger" in m for m in logs), logs
    stored = step.store.get("diagnoses", incident.id)
    assert stored is not None and stored["candidates"][0]["service"] == "payment"
