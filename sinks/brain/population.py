"""The incident window against its baseline, over many traces, vectorised.

Per (service, operation): where failures originate and how much more often than in the baseline;
how the time along the critical path shifted and which shift explains most of the end-to-end change;
call counts and rates (retry storms, a surge from one caller); N+1 patterns. Which attribute value
concentrates the failures or the slowness is `pinpoint`'s, on the frames this returns.
Every step is a polars group_by or join; no Python loop walks spans.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sinks.brain.config import DiagnosisConfig
from sinks.brain.hops import HopReport, hop_shift, mark_remote_calls
from sinks.brain.shape import ShapeReport, shape_shift
from sinks.brain.structure import (
    TRACE,
    add_critical_path,
    add_self_time,
    call_groups,
    callee_map,
    error_origins,
    prepare,
    with_parent,
)

Window = tuple[int, int]

_DB_OPERATION = r"(?i)^(select|insert|update|delete|upsert|merge|call|query|execute|db[ .:_])"
_DB_SERVICE = r"(?i)(^db$|database|postgres|mysql|mariadb|mongo|sql|cassandra|dynamo)"
_CACHE_SERVICE = r"(?i)(cache|redis|memcache|valkey)"


@dataclass(frozen=True, slots=True)
class PopulationReport:
    """What the incident window says against its baseline. Frames are small (one row per key)."""

    window: Window
    baseline: Window
    incident_traces: int
    baseline_traces: int
    e2e_baseline_ms: float
    e2e_incident_ms: float
    failing_trace_rate_baseline: float
    failing_trace_rate_incident: float
    origins: pl.DataFrame
    latency: pl.DataFrame
    calls: pl.DataFrame
    patterns: pl.DataFrame
    services: list[str]
    entries: pl.DataFrame
    hops: HopReport
    shape: ShapeReport
    baseline_used: str = "the given baseline"

    @property
    def shifted_entries(self) -> pl.DataFrame:
        """Entry points whose end-to-end time rose beyond the noise threshold."""
        return self.entries.filter(pl.col("shifted"))

    @property
    def e2e_delta_ms(self) -> float:
        """Mean end-to-end (root) duration change per trace."""
        return self.e2e_incident_ms - self.e2e_baseline_ms


def trace_windows(df: pl.DataFrame) -> pl.DataFrame:
    """Each trace's start (its earliest span start): `trace_id`, `trace_start_ns`."""
    return df.group_by(TRACE).agg(pl.col("start_ns").min().alias("trace_start_ns"))


def split(df: pl.DataFrame, window: Window, baseline: Window) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(incident, baseline) spans: a trace belongs to the window in which it started."""
    starts = trace_windows(df)
    with_start = df.join(starts, on=TRACE, how="left")
    inc = with_start.filter(
        pl.col("trace_start_ns").is_between(window[0], window[1], closed="left")
    )
    base = with_start.filter(
        pl.col("trace_start_ns").is_between(baseline[0], baseline[1], closed="left")
    )
    return inc, base


def flag_evaluations(df: pl.DataFrame) -> pl.DataFrame:
    """One row per feature-flag evaluation: `trace_id`, `service` (whose span evaluated it), `flag`
    (`key=variant`).

    Flags arrive as `feature_flag` span events (OpenTelemetry semantic conventions:
    `feature_flag.key` plus `feature_flag.variant` or `feature_flag.result.variant` / `.value`), or as
    a `feature_flag.key` span attribute.
    """
    attrs = pl.Struct(
        {
            "feature_flag.key": pl.String,
            "feature_flag.variant": pl.String,
            "feature_flag.result.variant": pl.String,
            "feature_flag.result.value": pl.String,
            "feature_flag.value": pl.String,
        }
    )
    dtype = pl.List(pl.Struct({"name": pl.String, "attributes": attrs}))
    flagged = df.filter(pl.col("events").str.contains("feature_flag")).select(
        TRACE, "service", pl.col("events").str.json_decode(dtype).alias("_ev")
    )
    flags = (
        flagged.explode("_ev")
        .unnest("_ev")
        .filter(pl.col("name") == "feature_flag")
        .unnest("attributes")
        .filter(pl.col("feature_flag.key").is_not_null())
        .select(
            TRACE,
            "service",
            pl.concat_str(
                pl.col("feature_flag.key"),
                pl.lit("="),
                pl.coalesce(
                    "feature_flag.variant",
                    "feature_flag.result.variant",
                    "feature_flag.result.value",
                    "feature_flag.value",
                    pl.lit("on"),
                ),
            ).alias("flag"),
        )
    )
    if "feature_flag.key" in df.columns:
        flags = pl.concat(
            [
                flags,
                df.filter(pl.col("feature_flag.key") != "").select(
                    TRACE, "service", pl.col("feature_flag.key").alias("flag")
                ),
            ]
        )
    return flags


def add_flags(df: pl.DataFrame) -> pl.DataFrame:
    """Add `feature_flag`: the `key=variant` flag evaluations seen anywhere in the span's trace.

    A flag changes the behaviour of the whole request, so every span of the trace carries the trace's
    flags (see `flag_evaluations` for where they come from).
    """
    per_trace = (
        flag_evaluations(df)
        .select(TRACE, "flag")
        .unique()
        .group_by(TRACE)
        .agg(pl.col("flag").sort().alias("feature_flag"))
    )
    return df.join(per_trace, on=TRACE, how="left").with_columns(
        pl.col("feature_flag").fill_null(pl.lit([], dtype=pl.List(pl.String)))
    )


def _fill_trace_level(df: pl.DataFrame, cfg: DiagnosisConfig) -> pl.DataFrame:
    # `feature_flag` is already per trace (`add_flags`).
    exprs = []
    for c in cfg.pinpoint_attributes:
        if c in df.columns and c.startswith(cfg.trace_level_prefixes) and c != "feature_flag":
            inherited = pl.col(c).filter(pl.col(c) != "").first().over(TRACE)
            exprs.append(
                pl.when(pl.col(c) != "").then(pl.col(c)).otherwise(inherited).fill_null("").alias(c)
            )
    return df.with_columns(exprs) if exprs else df


def _examples(col: str, n: int) -> pl.Expr:
    return pl.col(col).unique().sort().head(n).alias("trace_ids")


def origin_shift(
    inc: pl.DataFrame, base: pl.DataFrame, n_inc: int, n_base: int, cfg: DiagnosisConfig
) -> pl.DataFrame:
    """Failure origins per (blame service and operation, locus service and operation), incident vs
    baseline.

    Counts are traces (retries of one failure count once; failures that only followed another one in
    the same trace are not origins). Columns: `inc_traces`, `base_traces`, `inc_rate`, `base_rate`,
    `excess_rate`, `timeout_share`, `business_share`, `attempts` (mean per failing trace),
    `trace_ids`.
    """
    callees = callee_map(pl.concat([inc, base], how="diagonal_relaxed"))
    keys = ["blame_service", "blame_operation", "locus_service", "locus_operation"]

    def agg(frame: pl.DataFrame) -> pl.DataFrame:
        o = error_origins(frame, cfg, callees).filter(pl.col("primary"))
        return o.group_by(keys).agg(
            pl.col(TRACE).n_unique().alias("traces"),
            pl.col("via_timeout").mean().alias("timeout_share"),
            pl.col("business_failure").mean().alias("business_share"),
            pl.col("attempts").mean().alias("attempts"),
            _examples(TRACE, cfg.example_traces),
        )

    i = agg(inc)
    b = agg(base).select(
        *keys,
        pl.col("traces").alias("base_traces"),
        pl.col("attempts").alias("base_attempts"),
    )
    out = (
        i.rename({"traces": "inc_traces"})
        .join(b, on=keys, how="full", coalesce=True)
        .with_columns(
            pl.col("inc_traces").fill_null(0),
            pl.col("base_traces").fill_null(0),
            pl.col("timeout_share").fill_null(0.0),
            pl.col("business_share").fill_null(0.0),
            pl.col("trace_ids").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        )
        .with_columns(
            (pl.col("inc_traces") / max(n_inc, 1)).alias("inc_rate"),
            (pl.col("base_traces") / max(n_base, 1)).alias("base_rate"),
        )
        .with_columns((pl.col("inc_rate") - pl.col("base_rate")).alias("excess_rate"))
        .sort(["excess_rate", "blame_service", "locus_operation"], descending=[True, False, False])
    )
    return out


def entry_points(frame: pl.DataFrame) -> pl.DataFrame:
    """Per entry point (root service + operation): traces and mean end-to-end duration (ms)."""
    roots = (
        frame.filter(pl.col("is_root"))
        .group_by([TRACE, "entry"])
        .agg(pl.col("duration_ns").max().alias("_d"))
    )
    return roots.group_by("entry").agg(
        pl.len().alias("traces"), (pl.col("_d").mean() / 1e6).alias("e2e_ms")
    )


def latency_shift(
    inc: pl.DataFrame, base: pl.DataFrame, cfg: DiagnosisConfig
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Critical-path time per (service, operation), incident vs baseline, per entry point.

    Traffic mixes requests of very different lengths (a page view and a purchase), so the shift is
    measured per entry point (the root span's service and operation): an entry point shifted when its
    mean end-to-end time rose by more than `min_latency_shift_ratio`. For each (service, operation),
    over the shifted entry points weighted by their incident traffic: `base_ms` / `inc_ms` (mean time
    per trace it holds the critical path), `delta_ms`, and `share` of the total end-to-end increase it
    explains. Also `self_p95_*`, `is_db`, `parent_service` (the usual caller) and `trace_ids` (the
    slowest incident traces for the key). Returns (per-key table, entry-point table with `shifted`).
    """
    keys = ["service", "operation"]
    ei = entry_points(inc).rename({"traces": "inc_traces", "e2e_ms": "e2e_inc"})
    eb = entry_points(base).rename({"traces": "base_traces", "e2e_ms": "e2e_base"})
    entries = (
        ei.join(eb, on="entry", how="full", coalesce=True)
        .with_columns(
            pl.col("inc_traces").fill_null(0),
            pl.col("base_traces").fill_null(0),
        )
        .with_columns(
            (
                (pl.col("inc_traces") >= 10)
                & (pl.col("base_traces") >= 10)
                & (
                    pl.col("e2e_inc")
                    > pl.col("e2e_base") * (1.0 + cfg.min_latency_shift_ratio) + 0.5
                )
            )
            .fill_null(False)
            .alias("shifted")
        )
        .sort("entry")
    )

    def agg(frame: pl.DataFrame, counts: pl.DataFrame, name: str) -> pl.DataFrame:
        if "remote_call" in frame.columns:
            # Hop time of client spans is `hops`' to judge, with both ends of the call in view.
            frame = frame.filter(~pl.col("remote_call"))
        return (
            frame.group_by(["entry", *keys])
            .agg(
                pl.col("critical_ns").sum().alias("_crit"),
                (pl.col("self_ns").quantile(0.95) / 1e6).alias(f"self_p95_{name}"),
            )
            .join(counts, on="entry", how="left")
            .with_columns((pl.col("_crit") / pl.col("_n") / 1e6).alias(f"{name}_ms"))
            .drop("_crit", "_n")
        )

    per = agg(inc, ei.select("entry", pl.col("inc_traces").alias("_n")), "inc").join(
        agg(base, eb.select("entry", pl.col("base_traces").alias("_n")), "base"),
        on=["entry", *keys],
        how="full",
        coalesce=True,
    )
    shifted = entries.filter(pl.col("shifted"))
    use_entries = shifted if shifted.height else entries.filter(pl.col("inc_traces") > 0)
    weights = use_entries.select(
        "entry",
        pl.col("inc_traces").cast(pl.Float64).alias("_w"),
        (pl.col("e2e_inc") - pl.col("e2e_base").fill_null(0.0)).alias("_e2e_delta"),
    )
    total = float(weights.select((pl.col("_w") * pl.col("_e2e_delta")).sum()).item() or 0.0)
    wsum = float(weights.get_column("_w").sum() or 0.0) or 1.0
    table = (
        per.join(weights, on="entry", how="inner")
        .with_columns(pl.col("inc_ms").fill_null(0.0), pl.col("base_ms").fill_null(0.0))
        .group_by(keys)
        .agg(
            ((pl.col("inc_ms") * pl.col("_w")).sum() / wsum).alias("inc_ms"),
            ((pl.col("base_ms") * pl.col("_w")).sum() / wsum).alias("base_ms"),
            ((pl.col("inc_ms") - pl.col("base_ms")) * pl.col("_w")).sum().alias("_wdelta"),
            pl.col("self_p95_inc").max(),
            pl.col("self_p95_base").max(),
        )
        .with_columns(
            (pl.col("inc_ms") - pl.col("base_ms")).alias("delta_ms"),
            (pl.col("_wdelta") / total if shifted.height and total > 0 else pl.lit(0.0)).alias(
                "share"
            ),
        )
        .drop("_wdelta")
    )
    info = inc.group_by(keys).agg(
        pl.len().alias("spans"),
        pl.col("kind").mode().first().alias("kind"),
        pl.col("parent_service").drop_nulls().mode().first().alias("parent_service"),
    )
    slow = (
        inc.filter(pl.col("critical_ns") > 0)
        .sort(["critical_ns", TRACE], descending=[True, False])
        .group_by(keys, maintain_order=True)
        .agg(pl.col(TRACE).unique(maintain_order=True).head(3).alias("trace_ids"))
    )
    table = (
        table.join(info, on=keys, how="left")
        .join(slow, on=keys, how="left")
        .with_columns(
            pl.col("trace_ids").fill_null(pl.lit([], dtype=pl.List(pl.String))),
            pl.col("spans").fill_null(0),
            (
                pl.col("operation").str.contains(_DB_OPERATION)
                | pl.col("service").str.contains(_DB_SERVICE)
            ).alias("is_db"),
            pl.col("service").str.contains(_CACHE_SERVICE).alias("is_cache"),
        )
        .sort(["delta_ms", "service", "operation"], descending=[True, False, False])
    )
    return table, entries


def traffic_shift(
    inc: pl.DataFrame, base: pl.DataFrame, n_inc: int, n_base: int, window: Window, baseline: Window
) -> pl.DataFrame:
    """Calls per (caller service, service, operation): per trace and per second, incident vs baseline.

    A retry storm raises calls per trace; a surge from one caller raises the rate from that caller.
    """
    keys = ["parent_service", "service", "operation", "kind"]
    inc_s = max((window[1] - window[0]) / 1e9, 1e-9)
    base_s = max((baseline[1] - baseline[0]) / 1e9, 1e-9)

    def agg(frame: pl.DataFrame) -> pl.DataFrame:
        return (
            frame.with_columns(pl.col("parent_service").fill_null(""))
            .group_by(keys)
            .agg(pl.len().alias("calls"))
        )

    i = agg(inc)
    b = agg(base).rename({"calls": "base_calls"})
    return (
        i.rename({"calls": "inc_calls"})
        .join(b, on=keys, how="full", coalesce=True)
        .with_columns(pl.col("inc_calls").fill_null(0), pl.col("base_calls").fill_null(0))
        .with_columns(
            (pl.col("inc_calls") / max(n_inc, 1)).alias("inc_per_trace"),
            (pl.col("base_calls") / max(n_base, 1)).alias("base_per_trace"),
            (pl.col("inc_calls") / inc_s).alias("inc_rate_s"),
            (pl.col("base_calls") / base_s).alias("base_rate_s"),
        )
        .with_columns(
            ((pl.col("inc_per_trace") + 0.01) / (pl.col("base_per_trace") + 0.01)).alias(
                "per_trace_ratio"
            ),
            ((pl.col("inc_rate_s") + 0.01) / (pl.col("base_rate_s") + 0.01)).alias("rate_ratio"),
        )
        .sort(keys)
    )


def pattern_shift(inc: pl.DataFrame, base: pl.DataFrame, cfg: DiagnosisConfig) -> pl.DataFrame:
    """N+1 and fan-out groups per (service, operation, kind): traces showing them, incident vs baseline."""
    keys = ["service", "operation", "kind"]

    def agg(frame: pl.DataFrame) -> pl.DataFrame:
        return (
            call_groups(frame, cfg)
            .group_by(keys)
            .agg(
                pl.col(TRACE).n_unique().alias("traces"),
                pl.col("count").mean().alias("mean_count"),
                _examples(TRACE, cfg.example_traces),
            )
        )

    i = agg(inc).rename({"traces": "inc_traces", "mean_count": "inc_mean_count"})
    b = agg(base).select(*keys, pl.col("traces").alias("base_traces"))
    return (
        i.join(b, on=keys, how="full", coalesce=True)
        .with_columns(pl.col("inc_traces").fill_null(0), pl.col("base_traces").fill_null(0))
        .sort(keys)
    )


def enrich(df: pl.DataFrame, cfg: DiagnosisConfig) -> pl.DataFrame:
    """Prepare a frame for the population analysis: failure flags, parents, self and critical time,
    feature flags, trace-level business attributes."""
    df = prepare(df, cfg)
    entry = (
        df.filter(pl.col("is_root"))
        .sort([TRACE, "start_ns", "span_id"])
        .group_by(TRACE, maintain_order=True)
        .first()
        .select(TRACE, pl.concat_str("service", pl.lit(" "), "operation").alias("entry"))
    )
    df = df.join(entry, on=TRACE, how="left")
    df = add_critical_path(add_self_time(df))
    df = mark_remote_calls(with_parent(df))
    df = add_flags(df)
    return _fill_trace_level(df, cfg)


def analyze_population(
    spans: pl.DataFrame, window: Window, baseline: Window, cfg: DiagnosisConfig | None = None
) -> tuple[PopulationReport, pl.DataFrame, pl.DataFrame]:
    """Compare the incident window with its baseline.

    Returns the report plus the enriched (incident, baseline) frames, which `pinpoint` uses to find the
    attribute values behind a candidate.
    """
    cfg = cfg or DiagnosisConfig()
    all_starts = trace_windows(spans)
    baseline, window, used = choose_baseline(all_starts, window, baseline, cfg)
    # Only traces that started in one of the two windows matter; drop the rest before the joins.
    starts = all_starts.filter(
        pl.col("trace_start_ns").is_between(window[0], window[1], closed="left")
        | pl.col("trace_start_ns").is_between(baseline[0], baseline[1], closed="left")
    )
    spans = spans.join(starts.select(TRACE), on=TRACE, how="semi")
    # Delivery is at least once (an exporter's retry sends a whole request again): a span id seen
    # twice in a trace is one span, and kept twice it multiplies every parent-child join.
    spans = spans.unique(subset=[TRACE, "span_id"], keep="first", maintain_order=True)
    enriched = enrich(spans, cfg)
    inc, base = split(enriched, window, baseline)
    n_inc = inc.get_column(TRACE).n_unique() if inc.height else 0
    n_base = base.get_column(TRACE).n_unique() if base.height else 0
    # Hops and shapes have their own references when the baseline is missing (the window's other
    # hops, its fuller shapes); a slice of the faulty window would only hide the fault from them.
    own = base if used != _FIRST_PART else base.clear()
    n_own = n_base if used != _FIRST_PART else 0

    def e2e(frame: pl.DataFrame, n: int) -> float:
        if n == 0:
            return 0.0
        roots = frame.filter(pl.col("is_root"))
        per_trace = roots.group_by(TRACE).agg(pl.col("duration_ns").max())
        mean = per_trace.select(pl.col("duration_ns").mean().fill_null(0.0)).item()
        return float(mean) / 1e6

    def failing_rate(frame: pl.DataFrame, n: int) -> float:
        if n == 0:
            return 0.0
        return frame.filter(pl.col("is_failure")).get_column(TRACE).n_unique() / n

    e2e_base, e2e_inc = e2e(base, n_base), e2e(inc, n_inc)
    latency, entries = latency_shift(inc, base, cfg)
    services = sorted(set(enriched.get_column("service").unique().to_list()))
    report = PopulationReport(
        window=window,
        baseline=baseline,
        incident_traces=n_inc,
        baseline_traces=n_base,
        e2e_baseline_ms=e2e_base,
        e2e_incident_ms=e2e_inc,
        failing_trace_rate_baseline=failing_rate(base, n_base),
        failing_trace_rate_incident=failing_rate(inc, n_inc),
        origins=origin_shift(inc, base, n_inc, n_base, cfg),
        latency=latency,
        calls=traffic_shift(inc, base, n_inc, n_base, window, baseline),
        patterns=pattern_shift(inc, base, cfg),
        services=services,
        entries=entries,
        hops=hop_shift(inc, own, n_inc),
        shape=shape_shift(inc, own, n_inc, n_own),
        baseline_used=used,
    )
    return report, inc, base


_FIRST_PART = "the first quarter of the incident window (no baseline traces before it)"


def choose_baseline(
    starts: pl.DataFrame, window: Window, baseline: Window, cfg: DiagnosisConfig
) -> tuple[Window, Window, str]:
    """(baseline, window, what the baseline is): the given baseline when it holds at least
    `min_baseline_traces` traces; else the history before the window (whatever the archive or the
    files hold before it, same keys); else the window's own first quarter, the rest being the
    incident (an incident window opens before the onset, so its start is the closest healthy
    reference left)."""

    def count(w: Window) -> int:
        return starts.filter(pl.col("trace_start_ns").is_between(w[0], w[1], closed="left")).height

    if count(baseline) >= cfg.min_baseline_traces:
        return baseline, window, "the given baseline"
    earlier = starts.filter(pl.col("trace_start_ns") < window[0])
    if earlier.height >= cfg.min_baseline_traces:
        first = min(int(t) for t in earlier.get_column("trace_start_ns").to_list())
        return (first, window[0]), window, "the history before the window"
    # The first quarter of the traces the window holds (data may start late in the window).
    inside = sorted(
        int(t)
        for t in starts.filter(
            pl.col("trace_start_ns").is_between(window[0], window[1], closed="left")
        )
        .get_column("trace_start_ns")
        .to_list()
    )
    cut = inside[len(inside) // 4] if inside else window[0]
    if count((window[0], cut)) >= cfg.min_baseline_traces:
        return (window[0], cut), (cut, window[1]), _FIRST_PART
    return baseline, window, "none (too few traces before or early in the window)"
