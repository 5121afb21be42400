"""Signal windows as polars frames, and the per-service, journey and saturation series the
Overview and Backtests pages plot."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from dashboard.format import parse_time
from dashboard.queries.store import StoreReader, latest_ts, minutes_before
from operators.otlp.span_kind import normalize_span_kind
from sre_space.records import series_name
from sre_space.timeutil import rfc3339_to_ns

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
        name = r.get("operation") or r.get("cuj") or r.get("metric") or ""
        if r.get("cuj") and r.get("attributes"):
            name = series_name(name, r["attributes"])  # a journey's slice is a journey of its own
        data["name"].append(name)
        kind = r.get("span_kind")
        data["span_kind"].append("" if kind is None else normalize_span_kind(kind))
        data["start"].append(parse_time(r.get("window_start")))
        data["end"].append(parse_time(r.get("window_end")))
        for col in SIGNAL_COLUMNS:
            if col in ("kind", "service", "name", "span_kind", "start", "end"):
                continue
            data[col].append(r.get(col))
    return pl.DataFrame(data, schema=SIGNAL_COLUMNS)


def load_signals(
    store: StoreReader, *, minutes: float | None = 30.0, until: str | None = None
) -> pl.DataFrame:
    """The last `minutes` of event time (ending at the newest signal, or `until`) as a frame."""
    end = until or latest_ts(store, "signals")
    if end is None:
        return signals_frame([])
    since = None if minutes is None else minutes_before(end, minutes)
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


def signal_traces(
    store: StoreReader, service: str, *, minutes: float = 30.0, limit: int = 20
) -> list[dict[str, Any]]:
    """The failing and slowest trace ids the flow kept for one service's span signals in the last
    `minutes`, newest window first: `{start, operation, trace_kind, trace_id}`, each id once."""
    end = latest_ts(store, "signals")
    if end is None:
        return []
    rows = [
        r
        for r in store.query("signals", since=minutes_before(end, minutes))
        if r.get("kind") == "span" and r.get("service") == service
    ]
    rows.sort(key=lambda r: rfc3339_to_ns(str(r["window_start"])), reverse=True)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in rows:
        for field, what in (("failing_trace_ids", "failing"), ("slowest_trace_ids", "slowest")):
            for tid in r.get(field) or []:
                if tid and tid not in seen:
                    seen.add(tid)
                    out.append(
                        {
                            "start": parse_time(r.get("window_start")),
                            "operation": str(r.get("operation") or ""),
                            "trace_kind": what,
                            "trace_id": str(tid),
                        }
                    )
    return out[:limit]
