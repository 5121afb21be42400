"""Pure queries behind the dashboard: the stores, the span archive and the state folder in, plain
data and polars frames out. No `st.*` call lives here, so every figure a page shows is unit-tested.

The dashboard only reads: a missing database, archive, index or folder is an empty result, never
something to create. (The Chaos page's one write, the control file, goes through `chaos.control`.)
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from operators.scout.detect import budget
from operators.scout.detect.budget import Slo
from sre_space.records import SignalWindow
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339, rfc3339_to_ns

# ------------------------------------------------------------------------------------- store access


class StoreReader(Protocol):
    """What the queries need of `sinks.store.sqlite.Store` (reads only)."""

    def query(
        self,
        table: str,
        *,
        key: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]: ...

    def get(self, table: str, id: str) -> dict[str, Any] | None: ...

    def count(self, table: str) -> int: ...


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


def open_store(state_dir: str | Path) -> StoreReader:
    """The state folder's SQLite store, or an `EmptyStore` when `sre.db` does not exist.

    Opening the real Store on a missing file would create it: the dashboard must not.
    """
    path = Path(state_dir) / "sre.db"
    if not path.exists():
        return EmptyStore()
    from sinks.store.sqlite import Store

    return Store(path)


# -------------------------------------------------------------------------------------------- time


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
    from html import escape

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


def latest_ts(store: StoreReader, table: str = "signals") -> str | None:
    """The newest `ts` of a table (event time), or None when it is empty."""
    rows = store.query(table, limit=1, newest_first=True)
    if not rows:
        return None
    row = rows[0]
    return str(row.get("window_end") or row.get("window_start") or row.get("at") or "") or None


# ----------------------------------------------------------------------------------------- signals

SIGNAL_COLUMNS: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "service": pl.String(),
    "name": pl.String(),
    "span_kind": pl.String(),
    "start": pl.Datetime("us", "UTC"),
    "end": pl.Datetime("us", "UTC"),
    "count": pl.Int64(),
    "errors": pl.Int64(),
    "error_rate": pl.Float64(),
    "p50_ms": pl.Float64(),
    "p95_ms": pl.Float64(),
    "p99_ms": pl.Float64(),
    "max_ms": pl.Float64(),
    "started": pl.Int64(),
    "completed": pl.Int64(),
    "conversion": pl.Float64(),
    "value": pl.Float64(),
    "utilization": pl.Float64(),
    "late": pl.Int64(),
}


def signals_frame(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Signal window dicts (the `signals` table's payloads) as one typed frame.

    `name` is the series name whatever the kind (operation, journey or metric), so one column
    identifies a series together with `kind` and `service`.
    """
    data: dict[str, list[Any]] = {c: [] for c in SIGNAL_COLUMNS}
    for r in rows:
        data["kind"].append(r.get("kind"))
        data["service"].append(r.get("service") or "")
        data["name"].append(r.get("operation") or r.get("cuj") or r.get("metric") or "")
        data["span_kind"].append(_span_kind(r.get("span_kind")))
        data["start"].append(parse_time(r.get("window_start")))
        data["end"].append(parse_time(r.get("window_end")))
        for col in SIGNAL_COLUMNS:
            if col in ("kind", "service", "name", "span_kind", "start", "end"):
                continue
            data[col].append(r.get(col))
    return pl.DataFrame(data, schema=SIGNAL_COLUMNS)


_SPAN_KINDS = {"0": "unspecified", "1": "internal", "2": "server", "3": "client"}
_SPAN_KINDS |= {"4": "producer", "5": "consumer"}


def _span_kind(kind: Any) -> str:
    if kind is None:
        return ""
    text = str(kind).strip().lower().removeprefix("span_kind_")
    return _SPAN_KINDS.get(text, text)


def load_signals(
    store: StoreReader, *, minutes: float | None = 30.0, until: str | None = None
) -> pl.DataFrame:
    """The last `minutes` of event time (ending at the newest signal, or `until`) as a frame."""
    end = until or latest_ts(store, "signals")
    if end is None:
        return signals_frame([])
    since = None
    if minutes is not None:
        since = ns_to_rfc3339(rfc3339_to_ns(end) - int(minutes * 60 * NS_PER_S))
    return signals_frame(store.query("signals", since=since))


def server_spans(df: pl.DataFrame) -> pl.DataFrame:
    """Span signals as callers see them: server spans (or spans without a kind)."""
    return df.filter((pl.col("kind") == "span") & pl.col("span_kind").is_in(["server", ""]))


def service_series(df: pl.DataFrame) -> pl.DataFrame:
    """Per service and window: requests, errors, error rate, and the slowest operation's p50/p95/p99.

    Quantiles of different operations cannot be merged from the windows; the worst operation's
    value is what an on-call engineer looks for first, so that is what the overview plots.
    """
    spans = server_spans(df)
    if spans.is_empty():
        return pl.DataFrame(
            schema={
                "service": pl.String(),
                "start": pl.Datetime("us", "UTC"),
                "requests": pl.Int64(),
                "errors": pl.Int64(),
                "error_rate": pl.Float64(),
                "p50_ms": pl.Float64(),
                "p95_ms": pl.Float64(),
                "p99_ms": pl.Float64(),
            }
        )
    return (
        spans.group_by("service", "start")
        .agg(
            pl.col("count").sum().alias("requests"),
            pl.col("errors").sum().alias("errors"),
            pl.col("p50_ms").max(),
            pl.col("p95_ms").max(),
            pl.col("p99_ms").max(),
        )
        .with_columns(
            (pl.col("errors") / pl.col("requests").clip(lower_bound=1)).alias("error_rate")
        )
        .select(
            "service", "start", "requests", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms"
        )
        .sort("service", "start")
    )


def latency_series(df: pl.DataFrame, service: str) -> pl.DataFrame:
    """One service's p50/p95/p99 per window (worst operation), long format for a line chart."""
    s = service_series(df).filter(pl.col("service") == service)
    return s.unpivot(
        index="start", on=["p50_ms", "p95_ms", "p99_ms"], variable_name="quantile"
    ).sort("quantile", "start")


def saturation_series(df: pl.DataFrame) -> pl.DataFrame:
    """Utilization per (service / resource) and window: the worst instance, 0..1."""
    m = df.filter((pl.col("kind") == "metric") & pl.col("utilization").is_not_null())
    return (
        m.with_columns((pl.col("service") + " / " + pl.col("name")).alias("series"))
        .group_by("series", "start")
        .agg(pl.col("utilization").max())
        .sort("series", "start")
    )


def conversion_series(df: pl.DataFrame) -> pl.DataFrame:
    """Journey conversion per window: journey, start, started, completed, conversion."""
    c = df.filter(pl.col("kind") == "cuj")
    return c.select(
        pl.col("name").alias("journey"), "start", "started", "completed", "conversion"
    ).sort("journey", "start")


def pipeline_health(store: StoreReader, df: pl.DataFrame) -> dict[str, Any]:
    """SRE-Space's own health: dead letters, late data, watermark delay and lag when reported."""
    pipe = df.filter(pl.col("kind") == "pipeline")
    late = int(pipe.filter(pl.col("name") == "late")["late"].fill_null(0).sum() or 0)

    def last(name: str) -> float | None:
        s = pipe.filter(pl.col("name") == name).sort("start")
        return None if s.is_empty() else s["value"][-1]

    newest_dead = store.query("deadletters", limit=5, newest_first=True)
    reasons: dict[str, int] = {}
    for d in newest_dead:
        reasons[str(d.get("reason", "?"))] = reasons.get(str(d.get("reason", "?")), 0) + 1
    return {
        "deadletters": store.count("deadletters"),
        "deadletter_reasons": reasons,
        "late": late,
        "watermark_delay_s": last("watermark_delay_s"),
        "consumer_lag": last("consumer_lag"),
        "signals": store.count("signals"),
        "newest_signal": latest_ts(store, "signals"),
    }


# -------------------------------------------------------------------------------------------- SLOs


@dataclass(frozen=True, slots=True)
class SloRow:
    """The status of one SLO on one subject (a service, or a journey)."""

    slo: str
    type: str
    subject: str
    objective: float
    events: int
    bad: float
    sli: float | None
    burn_short: float
    burn_long: float
    budget_remaining: float
    status: str
    page_burn: float


def slo_specs(extra: Mapping[str, Any] | None = None) -> tuple[list[Slo], float]:
    """The enabled SLOs of the config's `slos:` section (the defaults Scout alerts on when it has
    none or a bad one), and its time scale."""
    from operators.scout.detect.config import load_slos
    from sre_space.settings import ConfigError

    try:
        cfg = load_slos(extra or {})
    except ConfigError:
        cfg = load_slos({})
    out = [
        Slo.from_spec(name, spec, alerts=cfg.alerts)
        for name, spec in sorted(cfg.objectives.items())
        if spec.enabled
    ]
    return out, float(cfg.time_scale)


def slo_status(
    rows: Sequence[Mapping[str, Any]],
    slos: Sequence[Slo],
    *,
    short_s: float = 300.0,
    period_days: float | None = None,
) -> list[SloRow]:
    """Budget and burn per SLO and subject over the given signal windows.

    - burn rate: `burn_long` over every window given, `burn_short` over the last `short_s` of them;
    - budget remaining: 1 - the share of the SLO period's budget spent, the traffic rate being
      extrapolated from the windows (as the post-mortem counts budget spent);
    - status: `breach` when the short burn reaches the SLO's page threshold (its fast-burn rule),
      `burning` at 1 or more, `ok` below, `no data` without events.
    """
    windows = [SignalWindow.from_dict(dict(r)) for r in rows]
    if not windows:
        return []
    end_ns = max(rfc3339_to_ns(w.window_end) for w in windows)
    start_ns = min(rfc3339_to_ns(w.window_start) for w in windows)
    short_from = end_ns - int(short_s * NS_PER_S)
    span_s = max((end_ns - start_ns) / NS_PER_S, 1.0)
    acc: dict[tuple[str, str], list[float]] = {}
    for slo in slos:
        for w in windows:
            if not budget.matches(slo, w):
                continue
            a = acc.setdefault((slo.name, budget.subject(slo, w)), [0.0, 0.0, 0.0, 0.0])
            n, n_bad = budget.events_and_bad(slo, w)
            a[0] += n
            a[1] += n_bad
            if rfc3339_to_ns(w.window_end) > short_from:
                a[2] += n
                a[3] += n_bad
    by_name = {s.name: s for s in slos}
    out = []
    for (name, subject), (events, bad, s_events, s_bad) in sorted(acc.items()):
        slo = by_name[name]
        burn_long = budget.burn(events, bad, slo.objective)
        burn_short = budget.burn(s_events, s_bad, slo.objective)
        days = period_days if period_days is not None else slo.period_days
        spent = budget.budget_spent(bad, budget.budget_events(slo.objective, events, span_s, days))
        if not events:
            status = "no data"
        elif burn_short >= slo.page_burn_rate:
            status = "breach"
        elif burn_short >= 1.0:
            status = "burning"
        else:
            status = "ok"
        out.append(
            SloRow(
                slo=name,
                type=slo.type,
                subject=subject,
                objective=slo.objective,
                events=int(events),
                bad=round(bad, 2),
                sli=(1.0 - bad / events) if events else None,
                burn_short=round(burn_short, 3),
                burn_long=round(burn_long, 3),
                budget_remaining=max(0.0, 1.0 - spent),
                status=status,
                page_burn=slo.page_burn_rate,
            )
        )
    return out


def slo_rows(store: StoreReader, minutes: float = 60.0) -> list[dict[str, Any]]:
    """The raw signal rows an SLO computation needs (span and cuj kinds, last `minutes`)."""
    end = latest_ts(store, "signals")
    if end is None:
        return []
    since = ns_to_rfc3339(rfc3339_to_ns(end) - int(minutes * 60 * NS_PER_S))
    return [r for r in store.query("signals", since=since) if r.get("kind") in ("span", "cuj")]


# --------------------------------------------------------------------------------------- incidents

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
                "remediations": ", ".join(c.get("remediations") or []),
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


def change_diff(change: Mapping[str, Any]) -> str:
    """The unified diff of a planned manifest change (`old_text` -> `new_text`)."""
    old, new = str(change.get("old_text", "")), str(change.get("new_text", ""))
    if not old and not new:
        return ""
    path = str(change.get("path", "manifest.yaml"))
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    return "".join(lines)


def postmortem_markdown(store: StoreReader, state_dir: str | Path, incident_id: str) -> str | None:
    """The post-mortem Markdown: the file Memory wrote, else the store row's copy, else None."""
    row = store.get("postmortems", incident_id)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", incident_id).lstrip(".")
    path = Path(state_dir) / "postmortems" / f"{safe}.md"
    if path.exists():
        return path.read_text(encoding="utf-8")
    if row is not None and row.get("markdown"):
        return str(row["markdown"])
    return None


# ------------------------------------------------------------------------------------ exemplar trace


def exemplar_traces(
    store: StoreReader, inc: Mapping[str, Any], anomalies: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Trace ids worth opening for an incident, best first, without duplicates.

    Anomaly exemplars, then the diagnosis' evidence, then the failing and slowest traces the flow
    kept for the incident's services in the windows around the onset.
    """
    ids: list[str] = []
    for a in anomalies:
        ids += list(a.get("exemplar_trace_ids") or [])
    diag = diagnosis(store, str(inc["id"])) or {}
    for c in (diag.get("candidates") or [])[:1]:
        for ev in c.get("evidence") or []:
            ids += list(ev.get("trace_ids") or [])
    onsets = [rfc3339_to_ns(a["onset"]) for a in anomalies if a.get("onset")]
    onset = min(onsets) if onsets else rfc3339_to_ns(str(inc["opened_at"]))
    services = set(inc.get("services") or [])
    rows = store.query(
        "signals",
        since=ns_to_rfc3339(onset - 60 * NS_PER_S),
        until=ns_to_rfc3339(onset + 300 * NS_PER_S),
    )
    spans = [r for r in rows if r.get("kind") == "span" and r.get("service") in services]
    for r in spans:
        ids += list(r.get("failing_trace_ids") or [])
    for r in spans:
        ids += list(r.get("slowest_trace_ids") or [])
    seen: dict[str, None] = {}
    for t in ids:
        if t and t not in seen:
            seen[t] = None
    return list(seen)


def trace_spans(
    archive: str | Path, trace_id: str, around: str | None = None, hours: int = 2
) -> pl.DataFrame:
    """Every archived span of one trace, searched `hours` either side of `around` (else all)."""
    from sinks.archive.reader import scan_spans

    root = Path(archive)
    if around:
        center = rfc3339_to_ns(around)
        span = hours * 3600 * NS_PER_S
        lf = scan_spans(root, center - span, center + span)
    else:
        files = sorted(root.glob("dt=*/hour=*/*.parquet"))
        lf = pl.scan_parquet(files) if files else pl.LazyFrame()
    if "trace_id" not in lf.collect_schema().names():
        return pl.DataFrame()
    return lf.filter(pl.col("trace_id") == trace_id).collect()


# ------------------------------------------------------------------------------------------ memory


def postmortems(store: StoreReader) -> list[dict[str, Any]]:
    """Every stored post-mortem, newest first (the store's copy; the index is for search)."""
    rows = store.query("postmortems", newest_first=True)
    return [
        {
            "incident_id": r.get("incident_id", ""),
            "title": r.get("title", ""),
            "fault_class": r.get("fault_class", ""),
            "culprit": r.get("culprit", ""),
            "services": list(r.get("services") or []),
            "action": r.get("action", ""),
            "outcome": r.get("outcome", ""),
            "fingerprint": r.get("fingerprint", ""),
            "resolved_at": r.get("resolved_at", ""),
            "duration_s": r.get("duration_s"),
            "failed_requests": r.get("failed_requests"),
        }
        for r in rows
    ]


def fix_outcomes(store: StoreReader) -> list[dict[str, Any]]:
    """How each automated fix fared per fingerprint (Memory's own statistics)."""
    from sinks.memory.outcomes import OutcomeTracker

    fingerprints = sorted({str(r.get("fingerprint", "")) for r in store.query("postmortems")})
    tracker = OutcomeTracker(store)  # type: ignore[arg-type]
    out = []
    for fp in fingerprints:
        for o in tracker.outcomes(fp):
            out.append(
                {
                    "fingerprint": fp,
                    "action": o.action,
                    "attempts": o.attempts,
                    "worked": o.worked,
                    "failed": o.failed,
                    "escalated": o.escalated,
                    "pending": o.pending,
                    "success_rate": o.success_rate,
                    "verdict": "preferred" if o.preferred else ("avoided" if o.avoided else "—"),
                    "last_incident": o.last_incident,
                }
            )
    return out


def memory_index(state_dir: str | Path) -> Any | None:
    """The post-mortem index (`PostMortemIndex`) of the state folder, or SRE_CHROMA_URL's;
    None when there is no embedded index yet (opening one would create it)."""
    from sre_space.settings import Settings

    settings = Settings(state_dir=Path(state_dir))
    if not settings.chroma_url and not (Path(state_dir) / "chroma").exists():
        return None
    from sinks.memory.index import PostMortemIndex

    return PostMortemIndex.from_settings(settings)


def search_memory(
    state_dir: str | Path, text: str, n: int = 5, *, index: Any | None = None
) -> list[dict[str, Any]]:
    """Past incidents similar to `text`, best first (empty when there is no index)."""
    index = index if index is not None else memory_index(state_dir)
    if index is None:
        return []
    return [r.to_dict() for r in index.search(text, n)]


# ------------------------------------------------------------------------------------------- audit


def audit_frame(store: StoreReader) -> pl.DataFrame:
    """Every audited action, newest first: at, actor, action, incident, outcome, reason, inputs."""
    rows = store.query("actions", newest_first=True)
    return pl.DataFrame(
        {
            "at": [parse_time(r.get("at")) for r in rows],
            "actor": [str(r.get("actor", "")) for r in rows],
            "action": [str(r.get("action", "")) for r in rows],
            "incident": [str(r.get("incident_id") or "") for r in rows],
            "outcome": [str(r.get("outcome", "")) for r in rows],
            "reason": [str(r.get("reason", "")) for r in rows],
            "inputs": [json.dumps(r.get("inputs") or {}, sort_keys=True) for r in rows],
        },
        schema={
            "at": pl.Datetime("us", "UTC"),
            "actor": pl.String(),
            "action": pl.String(),
            "incident": pl.String(),
            "outcome": pl.String(),
            "reason": pl.String(),
            "inputs": pl.String(),
        },
    )


def filter_audit(
    df: pl.DataFrame,
    *,
    actors: Sequence[str] = (),
    actions: Sequence[str] = (),
    incident: str = "",
    outcomes: Sequence[str] = (),
    text: str = "",
) -> pl.DataFrame:
    """The audit rows matching every given filter (empty filters match all)."""
    out = df
    if actors:
        out = out.filter(pl.col("actor").is_in(list(actors)))
    if actions:
        out = out.filter(pl.col("action").is_in(list(actions)))
    if outcomes:
        out = out.filter(pl.col("outcome").is_in(list(outcomes)))
    if incident:
        out = out.filter(pl.col("incident").str.contains(incident, literal=True))
    if text:
        needle = text.lower()
        out = out.filter(
            pl.col("reason").str.to_lowercase().str.contains(needle, literal=True)
            | pl.col("inputs").str.to_lowercase().str.contains(needle, literal=True)
        )
    return out


# ------------------------------------------------------------------------------------------- chaos


def chaos_status(state_dir: str | Path) -> dict[str, Any] | None:
    """What the running shop last reported (`<state>/chaos/status.json`), or None."""
    path = Path(state_dir) / "chaos" / "status.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def chaos_commands(state_dir: str | Path) -> list[dict[str, Any]]:
    """The commands sent through the control file, newest first (no file: none)."""
    if not (Path(state_dir) / "chaos" / "control.json").exists():
        return []
    from chaos.control import read_commands

    return sorted(read_commands(state_dir), key=lambda c: -int(c["id"]))


def scenarios() -> list[dict[str, str]]:
    """The chaos scenarios: name, fault class, default target and summary."""
    from chaos.scenarios import registry

    return [
        {
            "name": name,
            "fault_class": s.fault_class,
            "target": s.default_service,
            "summary": s.summary,
        }
        for name, s in registry().items()
    ]


def manifests(state_dir: str | Path) -> dict[str, Any]:
    """The GitOps repository's current manifests on main and its recent commits.

    Returns {"exists": bool, "head": sha, "docs": {service: manifest}, "commits": [...],
    "errors": [...]}; reading only (git plumbing through `chaos.gitops`).
    """
    from chaos.gitops import GitError, GitOpsRepo
    from chaos.manifests import ManifestError

    repo = GitOpsRepo(Path(state_dir) / "gitops")
    if not (repo.path / ".git").exists():
        return {"exists": False, "head": "", "docs": {}, "commits": [], "errors": []}
    try:
        docs = repo.read_docs()
        errors: list[str] = []
    except ManifestError as exc:
        docs, errors = {}, [str(exc)]
    except GitError as exc:
        return {"exists": True, "head": "", "docs": {}, "commits": [], "errors": [str(exc)]}
    commits = [
        {
            "sha": c.sha[:12],
            "at": ns_to_rfc3339(c.time_s * NS_PER_S),
            "subject": c.subject,
            "files": ", ".join(c.files),
        }
        for c in reversed(repo.log())
    ]
    return {
        "exists": True,
        "head": repo.head(),
        "docs": docs,
        "commits": commits[:50],
        "errors": errors,
    }


# --------------------------------------------------------------------------------------- backtests


def backtests(state_dir: str | Path) -> list[dict[str, Any]]:
    """Replay reports under `<state>/backtests/*/report.json`, newest first.

    Each: name, folder, modified (UTC), report (the scored suite), labels (if the folder has
    them) and how many signals, anomalies and incidents the replay wrote.
    """
    root = Path(state_dir) / "backtests"
    out = []
    for path in root.glob("*/report.json") if root.exists() else ():
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        folder = path.parent
        labels_file = folder / "labels.json"
        try:
            labels = json.loads(labels_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            labels = None
        mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        out.append(
            {
                "name": folder.name,
                "folder": str(folder),
                "modified": mtime.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "report": report if isinstance(report, dict) else {},
                "labels": labels,
                "signals": _count_lines(folder / "signals.jsonl"),
                "anomalies": _count_schema(folder / "anomalies.jsonl", "sre.anomaly/v1"),
                "incidents": len(
                    {json.loads(x).get("id") for x in _lines(folder / "incidents.jsonl")}
                ),
            }
        )
    return sorted(out, key=lambda b: (b["modified"], b["name"]), reverse=True)


def _lines(path: Path) -> list[str]:
    try:
        return [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    except OSError:
        return []


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError:
        return 0


def _count_schema(path: Path, schema: str) -> int:
    ids = set()
    for line in _lines(path):
        data = json.loads(line)
        if data.get("schema") == schema:
            ids.add(data.get("id"))
    return len(ids)


def backtest_faults(reports: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """One row per labelled fault across reports: detected, time to detect, culprit localized."""
    rows = []
    for b in reports:
        rep = b.get("report") or {}
        recs = rep.get("recordings") or ([rep] if "faults" in rep else [])
        for rec in recs:
            for f in rec.get("faults") or []:
                rows.append(
                    {
                        "backtest": str(b.get("name", "")),
                        "recording": str(rec.get("recording", "")),
                        "scenario": str(f.get("scenario", "")),
                        "culprit": str(f.get("culprit") or ""),
                        "detected": bool(f.get("detected")),
                        "ttd_s": f.get("ttd_s"),
                        "localized": bool(f.get("culprit_in_services")),
                        "incidents": len(f.get("incidents") or []),
                        "false_incidents": len(rec.get("false_incidents") or []),
                    }
                )
    return pl.DataFrame(
        rows,
        schema={
            "backtest": pl.String(),
            "recording": pl.String(),
            "scenario": pl.String(),
            "culprit": pl.String(),
            "detected": pl.Boolean(),
            "ttd_s": pl.Float64(),
            "localized": pl.Boolean(),
            "incidents": pl.Int64(),
            "false_incidents": pl.Int64(),
        },
    )


def backtest_totals(faults: pl.DataFrame) -> dict[str, Any]:
    """Recall, median time to detect and localization accuracy over a fault table."""
    n = faults.height
    if n == 0:
        return {"faults": 0, "recall": None, "ttd_median_s": None, "localization": None}
    detected = faults.filter(pl.col("detected"))
    ttd = detected["ttd_s"].drop_nulls()
    return {
        "faults": n,
        "recall": detected.height / n,
        "ttd_median_s": float(ttd.median()) if ttd.len() else None,  # type: ignore[arg-type]
        "localization": faults.filter(pl.col("localized")).height / n,
    }
