"""Structure without status: calls that stopped happening, and where the request was cut short.

Many failures leave no error status (the instrumentation does not set one, or the code returned a
wrong value that the caller handled by giving up). They still change the shape of the trace: a
span that used to call several children calls fewer, or none. The cut happened where the request
went last: the last child it did call (followed down through client spans into the callee's
server span), or the span's own service when it called nothing at all. Counting cut spans per
locus, incident against baseline, names the service whose behaviour changed. This holds for any
instrumented system: it uses only parent links, span kinds and times.

A span is cut when it has fewer than half the children its (service, operation) usually has: the
baseline median when the baseline has enough such spans, else the window's own upper quartile (the
fuller shape the window still shows).

Only work the caller waits for counts. Asynchronous children (a CONSUMER span, any child of a
PRODUCER span, per OpenTelemetry's span kinds) run when a queue delivers them: a slow or lagging
consumer leaves the producer's spans childless for a while although nothing was cut short, and the
producer is not where the request went wrong. They are left out before children are counted and
before the cut is followed down, so a queue's lag is judged by its own evidence (lag, the
consumer's time), never as a cut at the producer.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sinks.brain.structure import TRACE

MIN_REFERENCE_SPANS = 10
_CUT_RATIO = 0.5
_PRODUCER, _CONSUMER = 4, 5


@dataclass(frozen=True, slots=True)
class ShapeReport:
    """`loci`: per service, traces cut there (incident and baseline rates, `excess_rate`, `score`
    in 0..1); `cut`: per (service, operation), the cut spans' usual and incident child counts."""

    loci: pl.DataFrame
    cut: pl.DataFrame
    reference: str


def synchronous(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with its asynchronous edges cut: a CONSUMER span, or any child of a PRODUCER span,
    is detached from its parent (see the module docstring). It stays in the frame as the root of
    its own work, so a consumer whose own calls are cut short still shows."""
    if frame.height == 0:
        return frame
    producers = (
        frame.filter(pl.col("kind") == _PRODUCER)
        .select(TRACE, pl.col("span_id").alias("parent_span_id"), pl.lit(True).alias("_async"))
        .unique()
    )
    return (
        frame.join(producers, on=[TRACE, "parent_span_id"], how="left")
        .with_columns(
            pl.when(pl.col("_async").fill_null(False) | (pl.col("kind") == _CONSUMER))
            .then(pl.lit(""))
            .otherwise(pl.col("parent_span_id"))
            .alias("parent_span_id")
        )
        .drop("_async")
    )


def _children(frame: pl.DataFrame) -> pl.DataFrame:
    counts = (
        frame.group_by([TRACE, "parent_span_id"])
        .agg(pl.len().alias("n_children"))
        .rename({"parent_span_id": "span_id"})
    )
    return frame.join(counts, on=[TRACE, "span_id"], how="left").with_columns(
        pl.col("n_children").fill_null(0)
    )


def _last_child(frame: pl.DataFrame) -> pl.DataFrame:
    """`span_id` -> `last_id`: the child that ended last."""
    return (
        frame.filter(pl.col("parent_span_id") != "")
        .sort([TRACE, "parent_span_id", "end_ns", "span_id"])
        .group_by([TRACE, "parent_span_id"])
        .agg(pl.col("span_id").last().alias("last_id"))
        .rename({"parent_span_id": "span_id"})
    )


def _locus(frame: pl.DataFrame, cut: pl.DataFrame) -> pl.DataFrame:
    """For each cut span (`trace_id`, `span_id`, `service`): the service where the request went
    last. Down from the cut span's last child through client spans into the callee's server span,
    since a client span only waits on its callee."""
    last = _last_child(frame)
    info = frame.select(TRACE, "span_id", "service", "kind")
    cur = (
        cut.select(TRACE, pl.col("span_id").alias("cut_id"), "span_id", "service")
        .join(last, on=[TRACE, "span_id"], how="left")
        .with_columns(pl.col("service").alias("locus"))
    )
    # The last child, then (while it is a client span) its own last child, a few levels down.
    nxt = cur.filter(pl.col("last_id").is_not_null()).select(
        TRACE, "cut_id", pl.col("last_id").alias("span_id")
    )
    for _ in range(4):
        if nxt.height == 0:
            break
        step = nxt.join(info, on=[TRACE, "span_id"], how="inner")
        cur = (
            cur.join(
                step.select(TRACE, "cut_id", pl.col("service").alias("_svc")),
                on=[TRACE, "cut_id"],
                how="left",
            )
            .with_columns(pl.coalesce("_svc", "locus").alias("locus"))
            .drop("_svc")
        )
        nxt = (
            step.filter(pl.col("kind").is_in([3, 4]))
            .join(last, on=[TRACE, "span_id"], how="inner")
            .select(TRACE, "cut_id", pl.col("last_id").alias("span_id"))
        )
    return cur.select(TRACE, "locus")


def shape_shift(inc: pl.DataFrame, base: pl.DataFrame, n_inc: int, n_base: int) -> ShapeReport:
    """Cut spans in the incident window against the baseline, per locus service."""
    keys = ["service", "operation"]
    ci = _children(synchronous(inc))
    cb = _children(synchronous(base))
    base_ref = cb.group_by(keys).agg(
        pl.len().alias("_nb"), pl.col("n_children").median().alias("base_ref")
    )
    inc_ref = ci.group_by(keys).agg(pl.col("n_children").quantile(0.75).alias("inc_ref"))
    refs = (
        inc_ref.join(base_ref, on=keys, how="left")
        .with_columns(
            pl.when(pl.col("_nb").fill_null(0) >= MIN_REFERENCE_SPANS)
            .then(pl.col("base_ref"))
            .otherwise(pl.col("inc_ref"))
            .alias("ref"),
            (pl.col("_nb").fill_null(0) >= MIN_REFERENCE_SPANS).alias("own_baseline"),
        )
        .filter(pl.col("ref") >= 1)
        .select(*keys, "ref", "own_baseline")
    )
    has_base = bool(refs.height) and bool(refs.get_column("own_baseline").all())
    reference = (
        "the baseline's usual child counts"
        if has_base
        else "the window's own fuller shapes"
        if not refs.height or not refs.get_column("own_baseline").any()
        else "the baseline's usual child counts, or the window's own where it had none"
    )

    def cut_spans(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.join(refs, on=keys, how="inner").filter(
            pl.col("n_children") < pl.col("ref") * _CUT_RATIO
        )

    cut_i = cut_spans(ci)
    cut_b = cut_spans(cb)
    loci_i = _locus(ci, cut_i).group_by("locus").agg(pl.col(TRACE).n_unique().alias("inc_traces"))
    loci_b = _locus(cb, cut_b).group_by("locus").agg(pl.col(TRACE).n_unique().alias("base_traces"))
    loci = (
        loci_i.join(loci_b, on="locus", how="left")
        .with_columns(pl.col("base_traces").fill_null(0))
        .with_columns(
            (pl.col("inc_traces") / max(n_inc, 1)).alias("inc_rate"),
            (pl.col("base_traces") / max(n_base, 1) if n_base else pl.lit(0.0)).alias("base_rate"),
        )
        .with_columns(
            pl.max_horizontal(pl.col("inc_rate") - pl.col("base_rate"), pl.lit(0.0)).alias(
                "excess_rate"
            )
        )
        .rename({"locus": "service"})
    )
    total = float(loci.get_column("excess_rate").sum() or 0.0) if loci.height else 0.0
    loci = (
        loci.with_columns(
            (pl.col("excess_rate") / total if total > 0 else pl.lit(0.0)).alias("share")
        )
        # Share of the cut traffic, scaled by how much traffic was cut (a few percent is enough
        # to matter: each cut request is a user-visible failure).
        .with_columns(
            (pl.col("share") * (pl.col("excess_rate") / 0.05).clip(0.0, 1.0)).alias("score")
        )
        .filter(pl.col("score") > 0)
        .sort(["score", "service"], descending=[True, False])
    )
    cut = (
        cut_i.group_by(keys)
        .agg(
            pl.len().alias("cut_spans"),
            pl.col("ref").first().alias("usual_children"),
            pl.col("n_children").mean().alias("children"),
        )
        .sort(["cut_spans", *keys], descending=[True, False, False])
    )
    return ShapeReport(loci, cut, reference)


def shape_findings(report: ShapeReport) -> list[tuple[str, float, str]]:
    """Per locus service: (service, score in 0..1, description)."""
    cuts = "; ".join(
        f"{r['service']} '{r['operation']}' {r['usual_children']:g} -> {r['children']:.1f} calls"
        for r in report.cut.head(2).to_dicts()
    )
    return [
        (
            row["service"],
            float(row["score"]),
            f"requests cut short after reaching {row['service']} in {row['inc_rate']:.1%} of traces "
            f"(baseline {row['base_rate']:.1%}; {cuts}; reference: {report.reference})",
        )
        for row in report.loci.to_dicts()
    ]
