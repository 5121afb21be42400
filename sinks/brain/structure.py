"""Span-tree facts computed for many traces at once, as polars expressions and joins.

Every function takes a span frame (docs/contracts.md columns, any number of traces) and returns a frame;
none loops over spans in Python. The per-trace view (`traces.py`) and the population view
(`population.py`) both use these, so one trace and a million traces are judged by the same rules.
"""

from __future__ import annotations

import polars as pl

from sinks.brain.config import DiagnosisConfig

TRACE = "trace_id"
_TIMEOUT_WORDS = r"(?i)(timeout|timed out|deadline exceeded|deadline_exceeded)"


def prepare(df: pl.DataFrame, cfg: DiagnosisConfig) -> pl.DataFrame:
    """Normalise a contract frame and add the columns the analysis needs.

    Added: `is_failure` (transport error, or a configured business failure such as
    `order.outcome=declined` set in `diagnosis.business_failures`), `business_failure`, `is_root` (no parent in the trace: real
    roots and orphans of partial traces), `timeout_hint` (gRPC DEADLINE_EXCEEDED, HTTP 408/504, or an
    event that says timeout).
    """
    if "events" not in df.columns:
        df = df.with_columns(pl.lit("").alias("events"))
    business = pl.lit(False)
    for key, values in cfg.business_failures.items():
        if key in df.columns:
            business = business | pl.col(key).is_in(list(values))
    # Who a client span talks to, when the instrumentation says so (peer.service, server.address).
    peers = [
        pl.col(c).replace("", None) for c in ("peer.service", "server.address") if c in df.columns
    ]
    peer = pl.coalesce([*peers, pl.lit("")]) if peers else pl.lit("")
    df = df.with_columns(
        pl.col("events").fill_null(""),
        business.alias("business_failure"),
        pl.when(pl.col("kind").is_in([3, 4])).then(peer).otherwise(pl.lit("")).alias("peer"),
    ).with_columns(
        (pl.col("is_error") | pl.col("business_failure")).alias("is_failure"),
        (
            (pl.col("rpc_grpc_status") == 4)
            | pl.col("http_status").is_in([408, 504])
            | pl.col("events").str.contains(_TIMEOUT_WORDS)
        ).alias("timeout_hint"),
    )
    ids = df.select(TRACE, pl.col("span_id").alias("parent_span_id"), pl.lit(True).alias("_p"))
    df = (
        df.join(ids, on=[TRACE, "parent_span_id"], how="left")
        .with_columns(pl.col("_p").is_null().alias("is_root"))
        .drop("_p")
    )
    return df


def with_parent(df: pl.DataFrame) -> pl.DataFrame:
    """Add the parent's service, operation, kind and interval (null for roots)."""
    parents = df.select(
        TRACE,
        pl.col("span_id").alias("parent_span_id"),
        pl.col("service").alias("parent_service"),
        pl.col("operation").alias("parent_operation"),
        pl.col("kind").alias("parent_kind"),
        pl.col("start_ns").alias("parent_start_ns"),
        pl.col("end_ns").alias("parent_end_ns"),
    )
    return df.join(parents, on=[TRACE, "parent_span_id"], how="left")


def _clipped(df: pl.DataFrame) -> pl.DataFrame:
    """Every span's interval clipped to its parent's clipped interval, recursively (a callee that
    outlived its caller's timeout only counts inside the caller): adds `cs`, `ce`, `clip_ns` to
    `with_parent(df)`."""
    p = with_parent(df).with_columns(pl.col("start_ns").alias("cs"), pl.col("end_ns").alias("ce"))
    # One pass per tree level; stops as soon as nothing moves.
    for _ in range(256):
        bounds = p.select(
            TRACE,
            pl.col("span_id").alias("parent_span_id"),
            pl.col("cs").alias("_pcs"),
            pl.col("ce").alias("_pce"),
        )
        q = p.join(bounds, on=[TRACE, "parent_span_id"], how="left").with_columns(
            pl.max_horizontal("start_ns", pl.col("_pcs").fill_null(pl.col("start_ns"))).alias(
                "_cs"
            ),
            pl.min_horizontal("end_ns", pl.col("_pce").fill_null(pl.col("end_ns"))).alias("_ce"),
        )
        moved = q.filter((pl.col("_cs") != pl.col("cs")) | (pl.col("_ce") != pl.col("ce"))).height
        p = q.drop("cs", "ce", "_pcs", "_pce").rename({"_cs": "cs", "_ce": "ce"})
        if moved == 0:
            break
    return p.with_columns(
        pl.max_horizontal(pl.col("ce") - pl.col("cs"), pl.lit(0)).alias("clip_ns")
    )


def union_length(frame: pl.DataFrame, groups: list[str], start: str, end: str) -> pl.DataFrame:
    """Length of the union of intervals per group (overlaps counted once): `groups` + `union_ns`."""
    ordered = frame.select([*groups, start, end]).sort([*groups, start])
    prev_end = pl.col(end).cum_max().shift(1).over(groups)
    seg = pl.max_horizontal(
        pl.col(end) - pl.max_horizontal(pl.col(start), prev_end.fill_null(pl.col(start))),
        pl.lit(0),
    )
    return (
        ordered.with_columns(seg.alias("_seg"))
        .group_by(groups)
        .agg(pl.col("_seg").sum().alias("union_ns"))
    )


def add_self_time(df: pl.DataFrame) -> pl.DataFrame:
    """Add `self_ns`: duration minus the union of the children's intervals inside the span."""
    clip = _clipped(df).filter(~pl.col("is_root") & (pl.col("clip_ns") > 0))
    covered = union_length(clip, [TRACE, "parent_span_id"], "cs", "ce").rename(
        {"parent_span_id": "span_id", "union_ns": "_covered"}
    )
    return (
        df.join(covered, on=[TRACE, "span_id"], how="left")
        .with_columns(
            pl.max_horizontal(pl.col("duration_ns") - pl.col("_covered").fill_null(0), pl.lit(0))
            .cast(pl.Int64)
            .alias("self_ns")
        )
        .drop("_covered")
    )


def add_critical_path(df: pl.DataFrame, max_steps: int = 10_000) -> pl.DataFrame:
    """Add `on_critical` and `critical_ns` (time this span itself holds the critical path).

    The critical path is Jaeger's: from a span's end, walk back through the last-finishing child, then
    the last child that finished before that one started, and so on, recursively. The walk is done for
    all traces at once: `last` (a parent's last-finishing child) and `pred` (a child's predecessor
    among its siblings) are frames, and the critical set grows by joins until it stops changing.
    Children are clipped to their parent, so a callee that outlived its caller counts only up to the
    caller's end. Per trace, the `critical_ns` of the critical spans sum to the root's duration.
    """
    clip = _clipped(df)
    children = clip.filter(~pl.col("is_root") & (pl.col("clip_ns") > 0)).select(
        TRACE, "parent_span_id", "span_id", "cs", "ce", "clip_ns"
    )
    last = (
        children.sort([TRACE, "parent_span_id", "ce", "cs"])
        .group_by([TRACE, "parent_span_id"])
        .agg(pl.col("span_id").last().alias("next_id"))
        .rename({"parent_span_id": "span_id"})
    )
    left = children.select(TRACE, "parent_span_id", "span_id", "cs").sort("cs")
    right = children.select(TRACE, "parent_span_id", pl.col("span_id").alias("next_id"), "ce").sort(
        "ce"
    )
    pred = (
        left.join_asof(
            right,
            left_on="cs",
            right_on="ce",
            by=[TRACE, "parent_span_id"],
            strategy="backward",
            check_sortedness=False,
        )
        .filter(pl.col("next_id").is_not_null())
        .select(TRACE, "span_id", "next_id")
    )
    links = pl.concat([last, pred]).unique()
    critical = df.filter(pl.col("is_root")).select(TRACE, "span_id")
    frontier = critical
    for _ in range(max_steps):
        step = (
            frontier.join(links, on=[TRACE, "span_id"], how="inner")
            .select(TRACE, pl.col("next_id").alias("span_id"))
            .unique()
            .join(critical, on=[TRACE, "span_id"], how="anti")
        )
        if step.height == 0:
            break
        critical = pl.concat([critical, step])
        frontier = step
    critical = critical.with_columns(pl.lit(True).alias("on_critical"))
    child_time = (
        children.join(critical, on=[TRACE, "span_id"], how="inner")
        .group_by([TRACE, "parent_span_id"])
        .agg(pl.col("clip_ns").sum().alias("_crit_children"))
        .rename({"parent_span_id": "span_id"})
    )
    own = clip.select(TRACE, "span_id", "clip_ns")
    return (
        df.join(critical, on=[TRACE, "span_id"], how="left")
        .join(own, on=[TRACE, "span_id"], how="left")
        .join(child_time, on=[TRACE, "span_id"], how="left")
        .with_columns(pl.col("on_critical").fill_null(False))
        .with_columns(
            pl.when(pl.col("on_critical"))
            .then(
                pl.max_horizontal(
                    pl.col("clip_ns") - pl.col("_crit_children").fill_null(0), pl.lit(0)
                )
            )
            .otherwise(0)
            .cast(pl.Int64)
            .alias("critical_ns")
        )
        .drop("clip_ns", "_crit_children")
    )


def callee_map(df: pl.DataFrame) -> pl.DataFrame:
    """(service, operation) of client spans -> the service (and its operation) that usually serves them.

    Learned from traces where the callee's server span exists; used to blame the callee when a
    client span fails with no child at all (the callee was down: OOM-killed, crash-looping).
    Columns: `service`, `operation`, `callee`, `callee_operation`.
    """
    p = with_parent(df).filter(
        pl.col("parent_kind").is_in([3, 4]) & (pl.col("service") != pl.col("parent_service"))
    )
    return (
        p.group_by(["parent_service", "parent_operation", "service", "operation"])
        .agg(pl.len().alias("n"))
        .sort(
            ["parent_service", "parent_operation", "n", "service", "operation"],
            descending=[False, False, True, False, False],
        )
        .group_by(["parent_service", "parent_operation"], maintain_order=True)
        .first()
        .select(
            pl.col("parent_service").alias("service"),
            pl.col("parent_operation").alias("operation"),
            pl.col("service").alias("callee"),
            pl.col("operation").alias("callee_operation"),
        )
    )


def error_origins(
    df: pl.DataFrame, cfg: DiagnosisConfig, callees: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Where failures start: one row per failing span none of whose children fail.

    Columns: the origin span's (`trace_id`, `span_id`, `service`, `operation`, `start_ns`, `end_ns`,
    `business_failure`), `via_timeout` (the span failed because its time ran out while a child kept
    going), the locus (`locus_span_id`, `locus_service`, `locus_operation`: for a timeout, the deepest
    span that used up the budget, following children that dominate their parent's time, even when their
    status is OK; otherwise the origin itself), `blame_service` / `blame_operation` (the locus', or the usual
    callee and its operation for a client span that failed with no child), `primary` (false for a failure that started only after
    another failure in the trace had completed: it depends on it) and `attempts` (retries of the same
    locus in the trace).
    """
    failing = df.filter(pl.col("is_failure"))
    failing_parents = failing.select(TRACE, pl.col("parent_span_id").alias("span_id")).unique()
    child_stats = (
        df.filter(~pl.col("is_root"))
        .group_by([TRACE, "parent_span_id"])
        .agg(pl.col("end_ns").max().alias("_max_child_end"), pl.len().alias("_children"))
        .rename({"parent_span_id": "span_id"})
    )
    origins = (
        failing.join(failing_parents, on=[TRACE, "span_id"], how="anti")
        .join(child_stats, on=[TRACE, "span_id"], how="left")
        .with_columns(
            (
                pl.col("timeout_hint") | (pl.col("_max_child_end").fill_null(0) > pl.col("end_ns"))
            ).alias("via_timeout"),
            pl.col("_children").fill_null(0).alias("children"),
            pl.col("span_id").alias("locus_span_id"),
        )
    )
    # The child that dominates each parent: the last to finish, if it outlived the parent or used
    # most of its time.
    p = with_parent(df).filter(~pl.col("is_root"))
    dominant = (
        p.filter(
            (pl.col("end_ns") >= pl.col("parent_end_ns"))
            | (
                pl.col("duration_ns")
                >= cfg.dominant_child_share * (pl.col("parent_end_ns") - pl.col("parent_start_ns"))
            )
        )
        .sort([TRACE, "parent_span_id", "end_ns", "duration_ns"])
        .group_by([TRACE, "parent_span_id"])
        .agg(pl.col("span_id").last().alias("_dom"))
        .rename({"parent_span_id": "locus_span_id"})
    )
    for _ in range(64):
        moved = origins.join(dominant, on=[TRACE, "locus_span_id"], how="left").with_columns(
            pl.when(pl.col("via_timeout") & pl.col("_dom").is_not_null())
            .then(pl.col("_dom"))
            .otherwise(pl.col("locus_span_id"))
            .alias("_next")
        )
        changed = moved.filter(pl.col("_next") != pl.col("locus_span_id")).height
        origins = moved.drop("locus_span_id", "_dom").rename({"_next": "locus_span_id"})
        if changed == 0:
            break
    locus = df.select(
        TRACE,
        pl.col("span_id").alias("locus_span_id"),
        pl.col("service").alias("locus_service"),
        pl.col("operation").alias("locus_operation"),
        pl.col("kind").alias("locus_kind"),
        pl.col("start_ns").alias("locus_start_ns"),
        pl.col("end_ns").alias("locus_end_ns"),
        pl.col("peer").alias("locus_peer"),
    )
    origins = origins.join(locus, on=[TRACE, "locus_span_id"], how="left")
    if callees is None:
        callees = callee_map(df)
    origins = (
        origins.join(
            callees.rename({"service": "locus_service", "operation": "locus_operation"}),
            on=["locus_service", "locus_operation"],
            how="left",
        )
        .with_columns(
            pl.when(
                pl.col("locus_kind").is_in([3, 4])
                & (pl.col("locus_span_id") == pl.col("span_id"))
                & (pl.col("children") == 0)
                & (pl.col("locus_peer") != "")
            )
            .then(
                pl.struct(
                    s=pl.col("locus_peer"),
                    o=pl.when(pl.col("callee") == pl.col("locus_peer"))
                    .then(pl.col("callee_operation"))
                    .otherwise(pl.col("locus_operation")),
                )
            )
            .when(
                pl.col("locus_kind").is_in([3, 4])
                & (pl.col("locus_span_id") == pl.col("span_id"))
                & (pl.col("children") == 0)
                & pl.col("callee").is_not_null()
            )
            .then(pl.struct(s=pl.col("callee"), o=pl.col("callee_operation")))
            .otherwise(pl.struct(s=pl.col("locus_service"), o=pl.col("locus_operation")))
            .alias("_blame")
        )
        .with_columns(
            pl.col("_blame").struct.field("s").alias("blame_service"),
            pl.col("_blame").struct.field("o").alias("blame_operation"),
        )
        .drop("callee", "callee_operation", "_blame")
    )
    first_end = origins.group_by(TRACE).agg(pl.col("end_ns").min().alias("_first_end"))
    origins = origins.join(first_end, on=TRACE, how="left").with_columns(
        (pl.col("start_ns") < pl.col("_first_end")).alias("primary"),
        pl.len().over([TRACE, "locus_service", "locus_operation"]).alias("attempts"),
    )
    return origins.select(
        TRACE,
        "span_id",
        "parent_span_id",
        "service",
        "operation",
        "start_ns",
        "end_ns",
        "business_failure",
        "via_timeout",
        "locus_span_id",
        "locus_service",
        "locus_operation",
        "locus_start_ns",
        "locus_end_ns",
        "blame_service",
        "blame_operation",
        "primary",
        "attempts",
    ).sort([TRACE, "end_ns", "span_id"])


# Where a call goes: who answers it (peer.service, server.address) and, for a database, which
# statement it runs (current and older semantic-convention names).
_STATEMENT_ATTRIBUTES = ("db.query.text", "db.statement")
# Literals in a statement (numbers, quoted strings): an N+1 loop runs one statement with a
# different parameter each time, so they are masked before statements are compared.
_LITERALS = r"('[^']*'|\"[^\"]*\"|\b\d+(\.\d+)?\b)"
# A serial loop's calls fill about their wall window: their durations sum to at most the window
# (plus this much clock jitter) and to at least `_MIN_BUSY` of it.
_SERIAL_SLACK = 0.05
_MIN_BUSY = 0.5


def call_target(df: pl.DataFrame) -> pl.Expr:
    """Where each call goes, as one string: its peer and its (literal-masked) db statement. Empty
    when the instrumentation says neither."""
    peer = pl.col("peer").fill_null("") if "peer" in df.columns else pl.lit("")
    statements = [
        pl.col(c).replace("", None).str.replace_all(_LITERALS, "?")
        for c in _STATEMENT_ATTRIBUTES
        if c in df.columns
    ]
    statement = pl.coalesce([*statements, pl.lit("")]) if statements else pl.lit("")
    return pl.concat_str([peer, statement], separator=" | ")


def call_groups(df: pl.DataFrame, cfg: DiagnosisConfig) -> pl.DataFrame:
    """Repeated calls under one parent: N+1 (serial, to one target) told apart from fan-out.

    Siblings are grouped by operation *and* target (`call_target`): calls that share an operation
    name but go to different peers, or run different statements, are a fan-out whatever their
    timing, and an N+1 is the same call repeated. Within a group an N+1 needs serial execution:
    little overlap (`overlap` = 1 - union / sum of durations, at most `n_plus_one_max_overlap`) and
    durations summing to about the wall window (first start to last end). A bounded worker pool
    overlaps its calls, so their durations sum to more than the window: a fan-out.

    One row per (trace, parent, service, operation, target) with at least `n_plus_one_min_count`
    calls, plus one fan-out row (target `N targets`) per (trace, parent, service, operation)
    spread over several targets with that many calls in all but none repeated that often:
    `count`, `sum_ns`, `union_ns`, `wall_ns`, `overlap` and `kind` (`n_plus_one` or `fan_out`).
    """
    op_keys = [TRACE, "parent_span_id", "service", "operation"]
    keys = [*op_keys, "target"]
    kids = df.filter(~pl.col("is_root")).with_columns(call_target(df).alias("target"))
    columns = {
        "count": pl.UInt32,
        "sum_ns": pl.Int64,
        "union_ns": pl.Int64,
        "wall_ns": pl.Int64,
        "overlap": pl.Float64,
        "kind": pl.String,
    }

    def measure(groups: list[str]) -> pl.DataFrame:
        counts = (
            kids.group_by(groups)
            .agg(
                pl.len().alias("count"),
                pl.col("duration_ns").sum().cast(pl.Int64).alias("sum_ns"),
                (pl.col("end_ns").max() - pl.col("start_ns").min()).cast(pl.Int64).alias("wall_ns"),
                pl.col("target").n_unique().alias("targets"),
            )
            .filter(pl.col("count") >= cfg.n_plus_one_min_count)
        )
        many = kids.join(counts.select(groups), on=groups, how="inner")
        union = union_length(many, groups, "start_ns", "end_ns")
        return counts.join(union, on=groups, how="left").with_columns(
            pl.col("union_ns").fill_null(0).cast(pl.Int64),
            pl.when(pl.col("sum_ns") > 0)
            .then(1.0 - pl.col("union_ns") / pl.col("sum_ns"))
            .otherwise(0.0)
            .alias("overlap"),
        )

    per_target = measure(keys)
    serial = (
        (pl.col("overlap") <= cfg.n_plus_one_max_overlap)
        & (pl.col("sum_ns") <= pl.col("wall_ns") * (1.0 + _SERIAL_SLACK))
        & (pl.col("sum_ns") >= pl.col("wall_ns") * _MIN_BUSY)
    )
    per_target = per_target.with_columns(
        pl.when(serial).then(pl.lit("n_plus_one")).otherwise(pl.lit("fan_out")).alias("kind")
    )
    spread = (
        measure(op_keys)
        .filter(pl.col("targets") > 1)
        .join(per_target.select(op_keys).unique(), on=op_keys, how="anti")
        .with_columns(
            pl.format("{} targets", pl.col("targets")).alias("target"),
            pl.lit("fan_out").alias("kind"),
        )
    )
    out = [
        f.select(*keys, *(pl.col(c).cast(t) for c, t in columns.items()))
        for f in (per_target, spread)
    ]
    return pl.concat(out).sort(keys)
