"""The Incidents page's reads: incidents folded from their events, timelines, anomalies and their
series, the diagnosis, pull requests, and the exemplar traces worth opening."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.format import parse_time
from dashboard.queries.signals import SIGNAL_COLUMNS, signals_frame
from dashboard.queries.store import StoreReader, latest_ts
from sinks.memory.gather import change_diff
from sre_space.records import action_names
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339, rfc3339_to_ns

OPEN_STATES = ("open", "diagnosed", "mitigating", "verifying", "escalated")
SEVERITY_ORDER = {"critical": 0, "major": 1, "minor": 2}


def _events_by_incident(store: StoreReader) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for ev in store.query("incident_events"):
        iid = str(ev.get("id") or "")
        if iid:
            out.setdefault(iid, []).append(ev)
    return out


def incidents(store: StoreReader, now: str | None = None) -> list[dict[str, Any]]:
    """Every incident, newest first: id, state, severity, services, opened, duration, summary.

    The `incidents` table holds each incident's latest event; incidents that only have events
    (`incident_events`) are folded from those. Duration runs to the recovery or resolution, or to
    `now` (the newest signal) while the incident is still open.
    """
    latest: dict[str, dict[str, Any]] = {str(r["id"]): r for r in store.query("incidents")}
    for iid, evs in _events_by_incident(store).items():
        if iid not in latest:
            evs = sorted(evs, key=lambda e: rfc3339_to_ns(e.get("updated_at") or e["opened_at"]))
            latest[iid] = {**evs[-1], "opened_at": evs[0]["opened_at"]}
    now = now or latest_ts(store, "signals")
    out = []
    for iid, inc in latest.items():
        state = str(inc.get("state", "open"))
        end = inc.get("recovered_at") if state == "recovered" else None
        if state in ("resolved", "recovered") and not end:
            end = inc.get("updated_at")
        if end is None:
            end = now or inc.get("updated_at")
        opened = str(inc.get("opened_at", ""))
        duration = (rfc3339_to_ns(str(end)) - rfc3339_to_ns(opened)) / NS_PER_S if end else None
        out.append(
            {
                "id": iid,
                "state": state,
                "severity": str(inc.get("severity", "")),
                "services": list(inc.get("services") or []),
                "opened_at": opened,
                "updated_at": str(inc.get("updated_at", "")),
                "duration_s": duration,
                "anomalies": len(inc.get("anomaly_ids") or []),
                "anomaly_ids": list(inc.get("anomaly_ids") or []),
                "fingerprint": str(inc.get("fingerprint", "")),
                "summary": str(inc.get("summary", "")),
                "open": state in OPEN_STATES,
            }
        )
    return sorted(
        out, key=lambda r: rfc3339_to_ns(r["opened_at"]) if r["opened_at"] else 0, reverse=True
    )


def open_incidents(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The incidents still needing attention, most severe first."""
    still = [r for r in rows if r.get("open")]
    return sorted(still, key=lambda r: (SEVERITY_ORDER.get(str(r["severity"]), 9), r["opened_at"]))


def incident(store: StoreReader, incident_id: str) -> dict[str, Any] | None:
    """One incident as `incidents` shows it, or None."""
    return next((r for r in incidents(store) if r["id"] == incident_id), None)


_ACTION_WORDS = {
    "diagnose": "diagnosed",
    "open_pull_request": "pull request opened",
    "policy_approval": "waiting for approval",
    "approved": "approved",
    "merge": "merged",
    "deployed": "deployed",
    "verified": "verified",
    "revert": "reverted",
    "escalate": "escalated",
}


def timeline(store: StoreReader, incident_id: str) -> list[dict[str, Any]]:
    """What happened to an incident, in event-time order: lifecycle events, audited actions and
    the pull request's milestones, each as {at, source, what, detail, outcome}."""
    items: list[dict[str, Any]] = []
    for ev in _events_by_incident(store).get(incident_id, []):
        what = str(ev.get("event") or ev.get("state"))
        detail = f"state {ev.get('state')}, severity {ev.get('severity')}"
        items.append(
            {
                "at": str(ev.get("updated_at") or ev.get("opened_at")),
                "source": "scout"
                if what in ("opened", "updated", "recovered", "reopened")
                else "lifecycle",
                "what": what,
                "detail": detail,
                "outcome": "",
            }
        )
    for a in store.query("actions", key=incident_id):
        items.append(
            {
                "at": str(a.get("at", "")),
                "source": str(a.get("actor", "")),
                "what": _ACTION_WORDS.get(str(a.get("action")), str(a.get("action"))),
                "detail": str(a.get("reason", "")),
                "outcome": str(a.get("outcome", "")),
            }
        )
    items = [i for i in items if parse_time(i["at"])]
    return sorted(items, key=lambda i: (rfc3339_to_ns(i["at"]), i["source"]))


def incident_anomalies(store: StoreReader, anomaly_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The incident's anomalies in onset order (missing rows skipped)."""
    found = [a for a in (store.get("anomalies", i) for i in anomaly_ids) if a is not None]
    return sorted(found, key=lambda a: rfc3339_to_ns(a["onset"]) if a.get("onset") else 0)


# Which signal field an anomaly's `signal` name is plotted from.
_FIELD_OF = {
    "time_to_exhaustion": "utilization",
    "restarts": "value",
    "rate": "value",
    "slo_burn": "error_rate",
}


def anomaly_field(anomaly: Mapping[str, Any]) -> str:
    """The SignalWindow field to plot for an anomaly."""
    signal = str(anomaly.get("signal", ""))
    if signal in SIGNAL_COLUMNS and signal not in ("kind", "service", "name", "start", "end"):
        return signal
    if signal in _FIELD_OF:
        return _FIELD_OF[signal]
    kind = anomaly.get("kind")
    return {"cuj": "conversion", "metric": "utilization", "pipeline": "value"}.get(
        str(kind), "error_rate"
    )


def anomaly_key(anomaly: Mapping[str, Any]) -> str:
    """The `signals` table key of the anomaly's series (`kind|service|name`)."""
    name = anomaly.get("operation") or anomaly.get("cuj") or anomaly.get("metric") or ""
    return f"{anomaly.get('kind')}|{anomaly.get('service') or ''}|{name}"


def anomaly_series(
    store: StoreReader, anomaly: Mapping[str, Any], before_s: float = 300, after_s: float = 300
) -> pl.DataFrame:
    """The anomaly's own series around its onset: start, value, phase (`before` / `after`)."""
    onset = rfc3339_to_ns(str(anomaly["onset"]))
    rows = store.query(
        "signals",
        key=anomaly_key(anomaly),
        since=ns_to_rfc3339(onset - int(before_s * NS_PER_S)),
        until=ns_to_rfc3339(onset + int(after_s * NS_PER_S)),
    )
    field = anomaly_field(anomaly)
    df = signals_frame(rows)
    if df.is_empty() or field not in df.columns:
        return pl.DataFrame(
            schema={"start": pl.Datetime("us", "UTC"), "value": pl.Float64(), "phase": pl.String()}
        )
    onset_dt = parse_time(str(anomaly["onset"]))
    return df.select(
        "start",
        pl.col(field).cast(pl.Float64).alias("value"),
        pl.when(pl.col("start") < onset_dt)
        .then(pl.lit("before onset"))
        .otherwise(pl.lit("after onset"))
        .alias("phase"),
    ).drop_nulls("value")


def diagnosis(store: StoreReader, incident_id: str) -> dict[str, Any] | None:
    """The Brain's diagnosis of an incident, or None."""
    return store.get("diagnoses", incident_id)


def candidates_frame(diag: Mapping[str, Any] | None) -> pl.DataFrame:
    """The ranked candidates: rank, service, operation, fault class, score, confidence, fixes."""
    rows = []
    for i, c in enumerate((diag or {}).get("candidates") or [], start=1):
        rows.append(
            {
                "rank": i,
                "service": c.get("service", ""),
                "operation": c.get("operation") or "",
                "fault_class": c.get("fault_class", ""),
                "score": float(c.get("score", 0.0)),
                "confidence": float(c.get("confidence", 0.0)),
                "evidence": len(c.get("evidence") or []),
                "remediations": ", ".join(action_names(c)),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "rank": pl.Int64(),
            "service": pl.String(),
            "operation": pl.String(),
            "fault_class": pl.String(),
            "score": pl.Float64(),
            "confidence": pl.Float64(),
            "evidence": pl.Int64(),
            "remediations": pl.String(),
        },
    )


def pull_requests(store: StoreReader, incident_id: str) -> list[dict[str, Any]]:
    """The incident's pull requests (any forge), oldest first, each with its unified `diff`."""
    out = []
    for pr in store.query("pull_requests", key=incident_id):
        out.append({**pr, "diff": change_diff(pr.get("change") or {})})
    return out


def exemplar_sources(
    store: StoreReader, inc: Mapping[str, Any], anomalies: Sequence[Mapping[str, Any]]
) -> list[dict[str, str]]:
    """Trace ids worth opening for an incident, best first, each once: `{trace_id, source}`.

    Anomaly exemplars, then the diagnosis' evidence, then the failing and slowest traces the flow
    kept for the incident's services in the windows around the onset (`source` says which).
    """
    ids: list[tuple[str, str]] = []
    for a in anomalies:
        ids += [(t, "anomaly exemplar") for t in a.get("exemplar_trace_ids") or []]
    diag = diagnosis(store, str(inc["id"])) or {}
    for c in (diag.get("candidates") or [])[:1]:
        for ev in c.get("evidence") or []:
            ids += [(t, "diagnosis evidence") for t in ev.get("trace_ids") or []]
    onsets = [rfc3339_to_ns(a["onset"]) for a in anomalies if a.get("onset")]
    onset = min(onsets) if onsets else rfc3339_to_ns(str(inc["opened_at"]))
    services = set(inc.get("services") or [])
    rows = store.query(
        "signals",
        since=ns_to_rfc3339(onset - 60 * NS_PER_S),
        until=ns_to_rfc3339(onset + 300 * NS_PER_S),
    )
    spans = [r for r in rows if r.get("kind") == "span" and r.get("service") in services]
    for field, source in (("failing_trace_ids", "failing"), ("slowest_trace_ids", "slowest")):
        for r in spans:
            ids += [(t, f"{source} · {r.get('service')}") for t in r.get(field) or []]
    seen: dict[str, str] = {}
    for t, source in ids:
        if t and t not in seen:
            seen[t] = source
    return [{"trace_id": t, "source": source} for t, source in seen.items()]


def exemplar_traces(
    store: StoreReader, inc: Mapping[str, Any], anomalies: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The trace ids of `exemplar_sources`, in its order."""
    return [r["trace_id"] for r in exemplar_sources(store, inc, anomalies)]


def trace_spans(
    archive: str | Path, trace_id: str, around: str | None = None, hours: int = 2
) -> pl.DataFrame:
    """Every archived span of one trace, searched `hours` either side of `around` (else all)."""
    from sinks.archive.reader import scan_files, scan_spans

    root = Path(archive)
    if around:
        center = rfc3339_to_ns(around)
        span = hours * 3600 * NS_PER_S
        lf = scan_spans(root, center - span, center + span)
    else:
        lf = scan_files(sorted(root.glob("dt=*/hour=*/*.parquet")))
    if "trace_id" not in lf.collect_schema().names():
        return pl.DataFrame()
    return lf.filter(pl.col("trace_id") == trace_id).collect()
