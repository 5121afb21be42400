"""Attribute values (version, pod, route, a site's business attribute, feature flag) that concentrate one
service's failures or slowness in the incident window beyond their share of its traffic."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from sinks.brain.config import DiagnosisConfig
from sinks.brain.structure import TRACE


@dataclass(frozen=True, slots=True)
class AttributeFinding:
    """One attribute value that concentrates failures (or slowness) beyond its share of traffic."""

    attribute: str
    value: str
    target: str
    hits: int
    total: int
    share_of_hits: float
    incident_share: float
    baseline_share: float
    risk_ratio: float
    trace_ids: list[str] = field(default_factory=list)

    @property
    def strength(self) -> float:
        """How strongly the value explains the hits (0..1): share of hits, damped by a weak ratio."""
        rr = min(self.risk_ratio, 50.0)
        return self.share_of_hits * min(1.0, rr / 10.0)


def _attr_column(attribute: str) -> str:
    return "service_version" if attribute == "service.version" else attribute


def pinpoint(
    inc: pl.DataFrame,
    base: pl.DataFrame,
    *,
    service: str | None,
    operation: str | None = None,
    target: str = "failure",
    cfg: DiagnosisConfig | None = None,
) -> list[AttributeFinding]:
    """Attribute values that concentrate the failures (or the slowness) of one service's spans.

    Scope: the spans of `service` (and `operation`) in each window. A span is a hit when it fails
    (`target="failure"`, business failures included) or when its duration exceeds the baseline p90 of
    its (service, operation) (`target="slow"`). For each attribute value: its share of the hits, the
    risk ratio P(hit | value) / P(hit | other values) (with a 0.5 continuity correction), and its share
    of traffic in the incident and in the baseline. Kept when it has at least `pinpoint_min_support`
    hits, at least `pinpoint_min_share` of them and a ratio of at least `pinpoint_min_risk_ratio`;
    strongest first.
    """
    cfg = cfg or DiagnosisConfig()

    def scope(frame: pl.DataFrame) -> pl.DataFrame:
        out = frame
        if service is not None:
            out = out.filter(pl.col("service") == service)
        if operation is not None:
            out = out.filter(pl.col("operation") == operation)
        return out

    i, b = scope(inc), scope(base)
    if i.height == 0:
        return []
    if target == "slow":
        p90 = b.group_by(["service", "operation"]).agg(
            pl.col("duration_ns").quantile(0.9).alias("_p90")
        )
        i = i.join(p90, on=["service", "operation"], how="left").with_columns(
            (pl.col("duration_ns") > pl.col("_p90").fill_null(float("inf"))).alias("_hit")
        )
    else:
        i = i.with_columns(pl.col("is_failure").alias("_hit"))
    total = i.height
    total_hits = int(i.get_column("_hit").sum())
    if total_hits < cfg.pinpoint_min_support:
        return []
    findings: list[AttributeFinding] = []
    for attribute in cfg.pinpoint_attributes:
        col = _attr_column(attribute)
        if col not in i.columns:
            continue
        ii = i.select(TRACE, "_hit", pl.col(col).alias("_v"))
        bb = b.select(pl.col(col).alias("_v")) if col in b.columns else pl.DataFrame({"_v": []})
        if attribute == "feature_flag":
            ii = ii.explode("_v")
            bb = bb.explode("_v") if bb.height else bb
        ii = ii.filter(pl.col("_v").is_not_null() & (pl.col("_v") != ""))
        g = ii.group_by("_v").agg(
            pl.len().alias("n"),
            pl.col("_hit").sum().alias("hits"),
            pl.col(TRACE)
            .filter(pl.col("_hit"))
            .unique()
            .sort()
            .head(cfg.example_traces)
            .alias("ids"),
        )
        base_total = max(b.height, 1)
        bg = (
            bb.filter(pl.col("_v").is_not_null()).group_by("_v").agg(pl.len().alias("bn"))
            if bb.height
            else pl.DataFrame(schema={"_v": pl.String, "bn": pl.UInt32})
        )
        g = g.join(bg, on="_v", how="left").with_columns(pl.col("bn").fill_null(0))
        # Risk ratios compare spans that carry the attribute: a span without it says nothing.
        known_n = int(g.get_column("n").sum() or 0) if attribute != "feature_flag" else total
        known_hits = (
            int(g.get_column("hits").sum() or 0) if attribute != "feature_flag" else total_hits
        )
        for row in g.to_dicts():
            hits, n = int(row["hits"]), int(row["n"])
            other_hits, other_n = known_hits - hits, known_n - n
            p_in = (hits + 0.5) / (n + 1.0)
            p_out = (other_hits + 0.5) / (other_n + 1.0)
            finding = AttributeFinding(
                attribute=attribute,
                value=str(row["_v"]),
                target=target,
                hits=hits,
                total=n,
                share_of_hits=hits / total_hits,
                incident_share=n / total,
                baseline_share=int(row["bn"]) / base_total,
                risk_ratio=p_in / p_out,
                trace_ids=list(row["ids"] or []),
            )
            if (
                hits >= cfg.pinpoint_min_support
                and finding.share_of_hits >= cfg.pinpoint_min_share
                and finding.risk_ratio >= cfg.pinpoint_min_risk_ratio
            ):
                findings.append(finding)
    findings.sort(key=lambda f: (-f.strength, -f.risk_ratio, f.attribute, f.value))
    return findings
