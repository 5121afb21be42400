"""Hop time: what a call costs between the caller's client span and the callee's server span.

A client span's duration minus its server child's duration is the time the call spent outside both
services' code: the network, the callee's queue before its handler started, and the caller's own
RPC stack. CPU starvation or a network fault on one pod inflates the hops of every call that pod
takes part in (as caller or as callee), so the pod shows as the common participant of the inflated
hops, while a healthy neighbour shares only the one hop to it. This holds on any system whose
client and server spans are both recorded, whatever the protocol.

A hop's reference is its own baseline (mean against mean) when the baseline has calls on it;
without one, the median hop time across all hops of the window, compared with the hop's own median
(a hop costs about the same everywhere in one cluster, so a hop whose typical call is an outlier
is abnormal on its own; medians, because a healthy hop may have a slow tail). Which reference was
used is returned with the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sinks.brain.structure import TRACE

# A hop is inflated when its mean time is at least this many times its reference, plus this much
# (so microsecond jitter on a fast hop is not a fault).
_INFLATION_RATIO = 2.0
_INFLATION_MS = 2.0
# Fewer baseline calls than this on a hop: its baseline is not trusted.
MIN_BASELINE_CALLS = 10


@dataclass(frozen=True, slots=True)
class HopReport:
    """Per hop (caller, callee) and per participant service; `reference` says what was compared."""

    hops: pl.DataFrame
    participants: pl.DataFrame
    reference: str


def hop_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per server span called by a client span of another service: `caller`, `callee`,
    `operation` (the server span's), `gap_ms` (client minus server duration, at least 0)."""
    needed = {"parent_kind", "parent_service", "parent_start_ns", "parent_end_ns"}
    if frame.height == 0 or not needed <= set(frame.columns):
        return pl.DataFrame(
            schema={
                TRACE: pl.String,
                "caller": pl.String,
                "callee": pl.String,
                "operation": pl.String,
                "gap_ms": pl.Float64,
            }
        )
    return frame.filter(
        (pl.col("kind") == 2)
        & pl.col("parent_kind").is_in([3, 4])
        & (pl.col("parent_service") != pl.col("service"))
    ).select(
        TRACE,
        pl.col("parent_service").alias("caller"),
        pl.col("service").alias("callee"),
        "operation",
        (
            pl.max_horizontal(
                (pl.col("parent_end_ns") - pl.col("parent_start_ns")) - pl.col("duration_ns"),
                pl.lit(0),
            )
            / 1e6
        ).alias("gap_ms"),
    )


def hop_shift(inc: pl.DataFrame, base: pl.DataFrame, n_inc: int) -> HopReport:
    """Hops of the incident window against their references, and each service's share of the
    inflated hop time (`participants`: `service`, `excess_ms` per trace, `share` of all excess,
    `consistency` = the share of its hop calls that are inflated, `score` = share * consistency).
    """
    hi = hop_frame(inc)
    hb = hop_frame(base)
    keys = ["caller", "callee"]
    i = hi.group_by(keys).agg(
        pl.len().alias("calls"),
        pl.col("gap_ms").mean().alias("inc_ms"),
        pl.col("gap_ms").median().alias("inc_median_ms"),
    )
    b = hb.group_by(keys).agg(
        pl.len().alias("base_calls"), pl.col("gap_ms").mean().alias("base_ms")
    )
    medians = i.get_column("inc_median_ms").drop_nulls().to_list()
    cross = float(sorted(medians)[len(medians) // 2]) if medians else 0.0
    hops = (
        i.join(b, on=keys, how="left")
        .with_columns(pl.col("base_calls").fill_null(0))
        .with_columns(
            pl.when(pl.col("base_calls") >= MIN_BASELINE_CALLS)
            .then(pl.col("base_ms"))
            .otherwise(pl.lit(cross))
            .alias("ref_ms"),
            (pl.col("base_calls") >= MIN_BASELINE_CALLS).alias("own_baseline"),
        )
        .with_columns(
            pl.when(pl.col("own_baseline"))
            .then(pl.col("inc_ms"))
            .otherwise(pl.col("inc_median_ms"))
            .alias("_cmp")
        )
        .with_columns(
            (pl.col("_cmp") >= pl.col("ref_ms") * _INFLATION_RATIO + _INFLATION_MS).alias(
                "inflated"
            ),
            (
                pl.max_horizontal(pl.col("_cmp") - pl.col("ref_ms"), pl.lit(0.0))
                * pl.col("calls")
                / max(n_inc, 1)
            ).alias("excess_ms"),
        )
        .drop("_cmp")
        .sort(keys)
    )
    own = hops.get_column("own_baseline").sum() if hops.height else 0
    reference = (
        "each hop's baseline"
        if hops.height and own == hops.height
        else "the window's median hop time"
        if own == 0
        else "each hop's baseline, or the window's median hop time where it had none"
    )
    inflated = hops.filter(pl.col("inflated"))
    total = float(inflated.get_column("excess_ms").sum() or 0.0)
    if hops.height == 0 or total <= 0:
        empty = pl.DataFrame(
            schema={
                "service": pl.String,
                "excess_ms": pl.Float64,
                "share": pl.Float64,
                "consistency": pl.Float64,
                "score": pl.Float64,
            }
        )
        return HopReport(hops, empty, reference)
    sides = pl.concat(
        [
            hops.select(pl.col("caller").alias("service"), "calls", "inflated", "excess_ms"),
            hops.select(pl.col("callee").alias("service"), "calls", "inflated", "excess_ms"),
        ]
    )
    participants = (
        sides.group_by("service")
        .agg(
            pl.col("excess_ms").filter(pl.col("inflated")).sum().alias("excess_ms"),
            (pl.col("calls").filter(pl.col("inflated")).sum() / pl.col("calls").sum()).alias(
                "consistency"
            ),
        )
        .with_columns((pl.col("excess_ms") / total).alias("share"))
        .with_columns((pl.col("share") * pl.col("consistency")).alias("score"))
        .filter(pl.col("score") > 0)
        .sort(["score", "service"], descending=[True, False])
    )
    return HopReport(hops, participants, reference)


def hop_findings(report: HopReport, top: int = 3) -> list[tuple[str, float, str]]:
    """Per participant service: (service, score in 0..1, description naming its inflated hops)."""
    out: list[tuple[str, float, str]] = []
    inflated = report.hops.filter(pl.col("inflated"))
    for row in report.participants.to_dicts():
        svc = row["service"]
        mine = (
            inflated.filter((pl.col("caller") == svc) | (pl.col("callee") == svc))
            .sort("excess_ms", descending=True)
            .head(top)
        )
        hops = "; ".join(
            f"{r['caller']} -> {r['callee']} {r['ref_ms']:.1f} -> "
            f"{r['inc_median_ms'] if not r['own_baseline'] else r['inc_ms']:.1f} ms"
            for r in mine.to_dicts()
        )
        out.append(
            (
                svc,
                float(row["score"]),
                f"time between client and server spans grew on calls {svc} takes part in "
                f"({hops}; {row['consistency']:.0%} of its calls, {row['share']:.0%} of the "
                f"added hop time; reference: {report.reference})",
            )
        )
    return out


def mark_remote_calls(frame: pl.DataFrame) -> pl.DataFrame:
    """Add `remote_call`: a client span whose child is a server span of another service. Its own
    time is hop time, which `hop_shift` judges; the latency analysis leaves it out so the hop is
    not blamed on the caller alone."""
    remote = (
        frame.filter(pl.col("kind") == 2)
        .select(TRACE, pl.col("parent_span_id").alias("span_id"), pl.col("service").alias("_cs"))
        .unique(subset=[TRACE, "span_id"])
    )
    return (
        frame.join(remote, on=[TRACE, "span_id"], how="left")
        .with_columns(
            (
                pl.col("kind").is_in([3, 4])
                & pl.col("_cs").is_not_null()
                & (pl.col("_cs") != pl.col("service"))
            ).alias("remote_call")
        )
        .drop("_cs")
    )
