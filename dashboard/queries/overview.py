"""The Overview page's reads: SLO burn and budget per service and journey, and SRE-Space's own
pipeline health."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from dashboard.queries.store import StoreReader, latest_ts, minutes_before
from operators.scout.detect import budget
from operators.scout.detect.budget import Slo
from sre_space.records import SignalWindow
from sre_space.timeutil import NS_PER_S


def pipeline_health(store: StoreReader, df: pl.DataFrame) -> dict[str, Any]:
    """SRE-Space's own health: dead letters, late data, watermark delay and lag when reported,
    and the Collector's own metrics (`collector_health`)."""
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
        "collector": collector_health(pipe),
        "deadletters": store.count("deadletters"),
        "deadletter_reasons": reasons,
        "late": late,
        "watermark_delay_s": last("watermark_delay_s"),
        "consumer_lag": last("consumer_lag"),
        "signals": store.count("signals"),
        "newest_signal": latest_ts(store, "signals"),
    }


# The Collector's counters of telemetry it accepted but could not pass on (OpenTelemetry's
# `otelcol_` names; a `_total` suffix where Prometheus naming was kept).
COLLECTOR_FAILURES = (
    "otelcol_exporter_send_failed_spans",
    "otelcol_exporter_send_failed_metric_points",
    "otelcol_exporter_send_failed_log_records",
    "otelcol_exporter_enqueue_failed_spans",
    "otelcol_exporter_enqueue_failed_metric_points",
    "otelcol_receiver_refused_spans",
    "otelcol_receiver_refused_metric_points",
)


def collector_health(pipe: pl.DataFrame) -> pl.DataFrame:
    """The Collector's own metrics (kind `pipeline`, `otelcol_*`): per Collector and metric, the
    last value in the range and how much it moved (counters are cumulative), failures first."""
    schema: dict[str, pl.DataType] = {
        "collector": pl.String(),
        "metric": pl.String(),
        "last": pl.Float64(),
        "change": pl.Float64(),
        "failure": pl.Boolean(),
    }
    own = pipe.filter(pl.col("name").str.starts_with("otelcol_") & pl.col("value").is_not_null())
    if own.is_empty():
        return pl.DataFrame(schema=schema)
    failures = [*COLLECTOR_FAILURES, *(f"{m}_total" for m in COLLECTOR_FAILURES)]
    return (
        own.sort("start")
        .group_by(pl.col("service").alias("collector"), pl.col("name").alias("metric"))
        .agg(
            pl.col("value").last().alias("last"),
            (pl.col("value").last() - pl.col("value").first()).alias("change"),
        )
        .with_columns(pl.col("metric").is_in(failures).alias("failure"))
        .sort(["failure", "collector", "metric"], descending=[True, False, False])
        .select(list(schema))
        .cast(pl.Schema(schema))
    )


def collector_failures(health: pl.DataFrame) -> float | None:
    """Telemetry the Collectors could not pass on (the failure counters' last values summed),
    or None when no Collector reports its metrics."""
    if health.is_empty():
        return None
    return float(health.filter(pl.col("failure"))["last"].sum())


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
    end_ns = max(w.window_end for w in windows)
    start_ns = min(w.window_start for w in windows)
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
            if w.window_end > short_from:
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
    since = minutes_before(end, minutes)
    return [r for r in store.query("signals", since=since) if r.get("kind") in ("span", "cuj")]
