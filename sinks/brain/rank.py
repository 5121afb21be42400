"""Evidence into ranked root-cause candidates: score, fault class, confidence, actions, abstention.

Deterministic, and the only thing that decides. Scores add weighted evidence shares: failure origin,
the share of the end-to-end latency change on the critical path, resource saturation, pod metrics,
call-count shifts, changes before onset, and a concentrating attribute value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from sinks.brain.changes import ChangeFinding
from sinks.brain.config import DiagnosisConfig
from sinks.brain.faults import propose
from sinks.brain.hops import hop_findings
from sinks.brain.pinpoint import AttributeFinding, pinpoint
from sinks.brain.pods import PodFinding
from sinks.brain.population import PopulationReport
from sinks.brain.resources import ResourceFinding
from sinks.brain.shape import shape_findings
from sre_space.records import Candidate, Evidence

# Score parts that say why a symptom happened, not that something is wrong.
_EXPLANATIONS = frozenset({"changes", "attribute"})


@dataclass
class _Acc:
    service: str
    operation: str | None = None
    parts: dict[str, float] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)
    timeout_share: float = 0.0
    business_share: float = 0.0
    is_db: bool = False
    cache_hint: bool = False
    surge: bool = False
    findings: list[AttributeFinding] = field(default_factory=list)
    pod_resources: set[str] = field(default_factory=set)

    @property
    def score(self) -> float:
        return sum(self.parts.values())

    @property
    def symptom(self) -> float:
        """The parts that show something wrong, without those that only explain it."""
        return sum(v for k, v in self.parts.items() if k not in _EXPLANATIONS)

    def add(self, part: str, value: float) -> None:
        self.parts[part] = max(self.parts.get(part, 0.0), value)


@dataclass(frozen=True, slots=True)
class Ranking:
    """The ranked candidates, the overall confidence, and whether to abstain (and why)."""

    candidates: list[Candidate]
    confidence: float
    abstained: bool
    reason: str


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _error_part(acc: dict[str, _Acc], report: PopulationReport, cfg: DiagnosisConfig) -> None:
    o = report.origins.filter(pl.col("excess_rate") > cfg.min_error_excess_rate)
    if o.height == 0:
        return
    total = float(o.get_column("excess_rate").sum())
    magnitude = min(1.0, total / 0.05)
    per_service = (
        o.group_by("blame_service")
        .agg(
            pl.col("excess_rate").sum().alias("excess"),
            pl.col("blame_operation").sort_by("excess_rate", descending=True).first().alias("op"),
            (pl.col("timeout_share") * pl.col("excess_rate")).sum().alias("t"),
            (pl.col("business_share") * pl.col("excess_rate")).sum().alias("b"),
        )
        .sort(["excess", "blame_service"], descending=[True, False])
    )
    for row in per_service.to_dicts():
        svc = row["blame_service"]
        a = acc.setdefault(svc, _Acc(svc))
        share = row["excess"] / total
        a.add("errors", cfg.weight_errors * share * magnitude)
        a.timeout_share = row["t"] / row["excess"]
        a.business_share = row["b"] / row["excess"]
        if a.operation is None:
            a.operation = row["op"]
        for r in o.filter(pl.col("blame_service") == svc).head(3).to_dicts():
            where = f"{r['locus_service']} '{r['locus_operation']}'"
            how = []
            if r["timeout_share"] >= 0.5:
                how.append("callers timed out while it was still running")
            if r["business_share"] >= 0.5:
                how.append("business failures (transport OK)")
            if r["blame_service"] != r["locus_service"]:
                how.append(f"client spans of {r['locus_service']} got no answer from {svc}")
            a.evidence.append(
                Evidence(
                    kind="error_origin",
                    description=(
                        f"failures originate at {where} in {_pct(r['inc_rate'])} of traces "
                        f"(baseline {_pct(r['base_rate'])})"
                        + (f"; {'; '.join(how)}" if how else "")
                    ),
                    baseline=round(r["base_rate"], 6),
                    incident=round(r["inc_rate"], 6),
                    trace_ids=list(r["trace_ids"]),
                    # The caller whose calls timed out on this service: where a breaker goes.
                    peer=_timed_out_caller(report, r) if r["timeout_share"] >= 0.5 else None,
                )
            )


def _timed_out_caller(report: PopulationReport, row: dict[str, Any]) -> str | None:
    """The service whose calls timed out: the failure's locus when that is a client, else the
    busiest caller of the locus operation."""
    if row["locus_service"] != row["blame_service"]:
        return str(row["locus_service"])
    calls = report.calls
    if calls.height == 0:
        return None
    callers = calls.filter(
        (pl.col("service") == row["locus_service"])
        & (pl.col("operation") == row["locus_operation"])
        & (pl.col("parent_service") != "")
        & (pl.col("parent_service") != row["locus_service"])
    ).sort(["inc_calls", "parent_service"], descending=[True, False])
    return str(callers.get_column("parent_service")[0]) if callers.height else None


def _latency_part(acc: dict[str, _Acc], report: PopulationReport, cfg: DiagnosisConfig) -> None:
    shifted = report.shifted_entries
    if shifted.height == 0:
        return
    e2e = "; ".join(
        f"{r['entry']} {r['e2e_base']:.1f} -> {r['e2e_inc']:.1f} ms"
        for r in shifted.sort("inc_traces", descending=True).head(3).to_dicts()
    )
    rows = report.latency.filter((pl.col("delta_ms") > 0) & (pl.col("share") > 0.05)).head(6)
    for r in rows.to_dicts():
        svc = r["service"]
        owner = svc
        if r["is_db"] and r["parent_service"] and r["parent_service"] != svc and re_db(svc):
            # A database that is its own service: the owner of the query is its caller.
            owner = r["parent_service"]
        share = min(1.0, float(r["share"]))
        a = acc.setdefault(owner, _Acc(owner))
        a.add("latency", cfg.weight_latency * share)
        if a.operation is None or "errors" not in a.parts:
            a.operation = r["operation"]
        a.is_db = a.is_db or bool(r["is_db"])
        a.evidence.append(
            Evidence(
                kind="latency_shift",
                description=(
                    f"{svc} '{r['operation']}' holds the critical path {r['base_ms']:.1f} -> "
                    f"{r['inc_ms']:.1f} ms per trace, {_pct(share)} of the end-to-end increase "
                    f"({e2e})"
                ),
                baseline=round(r["base_ms"], 3),
                incident=round(r["inc_ms"], 3),
                trace_ids=list(r["trace_ids"]),
            )
        )
        if owner != svc:
            db = acc.setdefault(svc, _Acc(svc, operation=r["operation"]))
            db.add("latency", 0.5 * cfg.weight_latency * share)
            db.is_db = True


_DB_NAME = re.compile(r"(?i)(^db$|database|postgres|mysql|mariadb|mongo|sql)")
_CACHE_NAME = re.compile(r"(?i)(cache|redis|memcache|valkey)")


def re_db(service: str) -> bool:
    """True for a service name that looks like a database."""
    return bool(_DB_NAME.search(service))


def _is_cache(service: str) -> bool:
    return bool(_CACHE_NAME.search(service))


def _traffic_part(
    acc: dict[str, _Acc],
    report: PopulationReport,
    cfg: DiagnosisConfig,
    inc: pl.DataFrame,
    resources: dict[str, list[ResourceFinding]],
) -> None:
    calls = report.calls
    if calls.height == 0:
        return
    inbound = (
        calls.filter(pl.col("kind").is_in([2, 5]))
        .group_by("service")
        .agg(
            pl.col("inc_calls").sum(),
            pl.col("base_calls").sum(),
            pl.col("inc_rate_s").sum(),
            pl.col("base_rate_s").sum(),
        )
        .with_columns(
            ((pl.col("inc_rate_s") + 0.01) / (pl.col("base_rate_s") + 0.01)).alias("ratio")
        )
    )
    for r in inbound.filter(
        (pl.col("ratio") >= cfg.traffic_surge) & (pl.col("inc_calls") >= 20)
    ).to_dicts():
        if r["service"] in acc:
            a = acc[r["service"]]
            a.surge = True
            a.add("traffic", cfg.weight_traffic * min(1.0, (r["ratio"] - 1.0)))
            a.evidence.append(
                Evidence(
                    kind="traffic_shift",
                    description=f"requests into {r['service']} {r['base_rate_s']:.1f}/s -> {r['inc_rate_s']:.1f}/s",
                    baseline=round(r["base_rate_s"], 3),
                    incident=round(r["inc_rate_s"], 3),
                )
            )
    # Retry storms: a caller calling the same operation many more times per trace.
    storms = calls.filter(
        (pl.col("per_trace_ratio") >= 2.0)
        & (pl.col("inc_calls") >= 20)
        & (pl.col("parent_service") != "")
    )
    for r in storms.to_dicts():
        if r["service"] in acc:
            acc[r["service"]].evidence.append(
                Evidence(
                    kind="call_count_shift",
                    description=(
                        f"{r['parent_service']} calls {r['service']} '{r['operation']}' "
                        f"{r['base_per_trace']:.2f} -> {r['inc_per_trace']:.2f} times per trace (retries)"
                    ),
                    baseline=round(r["base_per_trace"], 4),
                    incident=round(r["inc_per_trace"], 4),
                )
            )
    # Cache stopped hitting: database calls per trace rise from callers that also use a cache.
    db_up = calls.filter(
        pl.col("operation").str.contains(r"(?i)^(select|insert|update|query|db[ .:_])")
        | pl.col("service").map_elements(re_db, return_dtype=pl.Boolean)
    ).filter((pl.col("per_trace_ratio") >= 1.5) & (pl.col("inc_calls") >= 20))
    # Poisson check: the rise must be unlikely under the baseline rate per trace, not noise.
    expected = pl.col("base_per_trace") * report.incident_traces
    db_up = db_up.filter((pl.col("inc_calls") - expected) / (expected + 1.0).sqrt() >= 4.0)
    top_latency = max((a.parts.get("latency", 0.0) for a in acc.values()), default=0.0)
    if db_up.height == 0 or top_latency <= 0:
        # No user-visible slowdown: more database reads alone are not an incident.
        return
    callers = set(db_up.get_column("parent_service").to_list()) | set(
        db_up.get_column("service").to_list()
    )
    caches = _cache_targets(inc, callers, resources)
    for svc, op in caches:
        a = acc.setdefault(svc, _Acc(svc))
        a.cache_hint = True
        a.add("traffic", cfg.weight_traffic + top_latency)
        if a.operation is None:
            a.operation = op
        for r in db_up.head(3).to_dicts():
            a.evidence.append(
                Evidence(
                    kind="call_count_shift",
                    description=(
                        f"{r['service']} runs '{r['operation']}' {r['base_per_trace']:.2f} -> "
                        f"{r['inc_per_trace']:.2f} times per trace (the cache {svc} in front of it "
                        "stopped absorbing reads)"
                    ),
                    baseline=round(r["base_per_trace"], 4),
                    incident=round(r["inc_per_trace"], 4),
                )
            )


_CACHE_SYSTEMS = ("redis", "memcached", "valkey", "memcache")


def _cache_targets(
    inc: pl.DataFrame, callers: set[str], resources: dict[str, list[ResourceFinding]]
) -> list[tuple[str, str | None]]:
    """Caches used by `callers`: (name, usual operation). From client spans' peer (peer.service /
    server.address) or db.system, from cache services with their own spans, or, when spans do not say,
    from a cache-like service seen only in metrics."""
    client = inc.filter(pl.col("service").is_in(sorted(callers)) & (pl.col("kind") == 3))
    is_cache = pl.col("peer").map_elements(_is_cache, return_dtype=pl.Boolean)
    if "db.system" in client.columns:
        is_cache = is_cache | pl.col("db.system").is_in(list(_CACHE_SYSTEMS))
    via_peer = (
        client.filter(is_cache & (pl.col("peer") != ""))
        .group_by(["peer", "operation"])
        .agg(pl.len().alias("n"))
        .sort(["n", "peer", "operation"], descending=[True, False, False])
        .group_by("peer", maintain_order=True)
        .first()
    )
    found = [(r["peer"], r["operation"]) for r in via_peer.to_dicts()]
    if not found:
        own = (
            inc.filter(
                pl.col("parent_service").is_in(sorted(callers))
                & pl.col("service").map_elements(_is_cache, return_dtype=pl.Boolean)
            )
            .group_by(["service", "operation"])
            .agg(pl.len().alias("n"))
            .sort(["n", "service", "operation"], descending=[True, False, False])
            .group_by("service", maintain_order=True)
            .first()
        )
        found = [(r["service"], r["operation"]) for r in own.to_dicts()]
    if not found:
        found = [(svc, None) for svc in sorted(resources) if _is_cache(svc)]
    return found


def _hop_and_shape_parts(
    acc: dict[str, _Acc], report: PopulationReport, cfg: DiagnosisConfig
) -> None:
    """Inflated hops (a pod's CPU or network, seen from both ends of its calls) and requests cut
    short (structure changed with no error status): see `hops` and `shape`."""
    for part, weight, kind, found in (
        ("hops", cfg.weight_hops, "hop_latency", hop_findings(report.hops)),
        ("structure", cfg.weight_structure, "structure_shift", shape_findings(report.shape)),
    ):
        for svc, score, text in found[: cfg.max_candidates]:
            a = acc.setdefault(svc, _Acc(svc))
            a.add(part, weight * min(1.0, score))
            a.evidence.append(
                Evidence(kind=kind, description=text, baseline=None, incident=round(score, 4))
            )


def _pod_part(acc: dict[str, _Acc], pods: Sequence[PodFinding], cfg: DiagnosisConfig) -> None:
    """Pods whose usage moved with the latency they served, scored by `PodFinding.strength`."""
    for f in pods[: 3 * cfg.max_candidates]:
        a = acc.setdefault(f.service, _Acc(f.service))
        a.add("pods", cfg.weight_pods * f.strength)
        if f.strength >= cfg.pod_min_move:
            # Strong enough to name the kind of fault, not only to add to the score.
            a.pod_resources.add(f.resource)
        if len([e for e in a.evidence if e.kind.startswith("pod_")]) < 3:
            a.evidence.append(f.evidence())


def _classify(a: _Acc, resources: list[ResourceFinding], changes: list[ChangeFinding]) -> str:
    # A pod's CPU that moved with the latency it served is CPU evidence like a saturated series.
    kinds = {f.kind for f in resources} | ({"cpu"} & a.pod_resources)
    spans = {k: a.parts.get(k, 0.0) for k in ("errors", "latency", "hops", "structure")}
    strongest = max(spans, key=lambda k: spans[k])
    resource_kinds = {"crashloop", "oom_kill", "memory", "pool", "lag", "restarts"}
    pods = a.parts.get("pods", 0.0)
    if pods > 0 and pods >= spans[strongest] and not kinds & resource_kinds:
        # The pod's own usage explains the latency it served.
        return "cpu_saturation" if "cpu" in a.pod_resources else "resource_saturation"
    if spans[strongest] > 0 and strongest in ("hops", "structure") and not kinds & resource_kinds:
        # Evidence-typed: what the spans show, not a scenario's name.
        return "resource_saturation" if strongest == "hops" else "structural_change"
    topics = {t for c in changes for t in c.topics}
    versions = any(c.kind == "version" for c in changes)
    errors = a.parts.get("errors", 0.0)
    latency = a.parts.get("latency", 0.0)
    if "crashloop" in kinds or ("restarts" in kinds and "probe" in topics):
        return "crashloop"
    if "oom_kill" in kinds or "memory" in kinds:
        return "memory_leak"
    if "pool" in kinds or ("connection_pool" in topics and (errors or latency)):
        return "config_pool_exhaustion"
    if "lag" in kinds:
        return "queue_lag"
    if a.cache_hint or (_is_cache(a.service) and (errors or latency)):
        return "cache_failure"
    if errors >= latency and a.business_share >= 0.5:
        return "business_rule"
    if "cpu" in kinds or "cpu_throttling" in kinds:
        return "cpu_saturation"
    if errors >= latency * 0.5 and a.timeout_share >= 0.5:
        return "dependency_timeout"
    if a.surge and latency > errors:
        return "cpu_saturation"
    if latency > errors and a.is_db:
        return "db_latency"
    if "restarts" in kinds:
        return "crashloop"
    if errors >= latency and errors > 0:
        return "error_regression"
    if versions:
        return "error_regression" if errors else "latency_regression"
    return "db_latency" if a.is_db else "latency_regression"


def rank(
    report: PopulationReport,
    inc: pl.DataFrame,
    base: pl.DataFrame,
    resources: dict[str, list[ResourceFinding]],
    changes: list[ChangeFinding],
    cfg: DiagnosisConfig | None = None,
    similar: Sequence[dict[str, Any]] = (),
    pods: Sequence[PodFinding] = (),
) -> Ranking:
    """Rank root-cause candidates from the population report plus resource and change evidence.

    `similar`: past incidents from Memory, `{"fault_class", "service"?, "action", "outcome":
    "worked"|"failed"}`; an action that worked for the same fault class moves first, one that failed
    is left out (see `faults.propose`). `pods`: instances whose CPU, memory or network moved with
    the latency they served (see `pods`).
    """
    cfg = cfg or DiagnosisConfig()
    acc: dict[str, _Acc] = {}
    _error_part(acc, report, cfg)
    _latency_part(acc, report, cfg)
    for svc, found in resources.items():
        if not svc:
            continue
        a = acc.setdefault(svc, _Acc(svc))
        a.add("resources", cfg.weight_resources * max(f.strength for f in found))
        for f in found:
            measures = {k: float(v) for k, v in f.detail.items() if isinstance(v, int | float)}
            if f.kind == "lag":
                measures["processed_per_s"] = _inbound_rate(report, svc)
            a.evidence.append(
                Evidence(
                    kind=f"resource_{f.kind}",
                    description=f"{svc}: {f.description}",
                    baseline=f.baseline,
                    incident=f.incident,
                    measures=measures or None,
                )
            )
    _traffic_part(acc, report, cfg, inc, resources)
    _hop_and_shape_parts(acc, report, cfg)
    _pod_part(acc, pods, cfg)
    by_service: dict[str, list[ChangeFinding]] = {}
    for c in changes:
        by_service.setdefault(c.service, []).append(c)
    for svc, a in acc.items():
        mine = by_service.get(svc, [])
        if mine:
            if a.symptom >= cfg.min_symptom_score:
                a.add("changes", cfg.weight_changes * max(c.strength for c in mine))
            for c in mine[:3]:
                a.evidence.append(c.evidence())
    for a in acc.values():
        if a.operation is None:
            # Resource-only candidates: name the operation whose time shifted most.
            ops = report.latency.filter(pl.col("service") == a.service)
            entry_ops = ops.filter(pl.col("kind").is_in([2, 5]))
            ops = entry_ops if entry_ops.height else ops
            if ops.height:
                a.operation = ops.get_column("operation")[0]
    prelim = sorted(acc.values(), key=lambda a: (-a.score, a.service))[:3]
    for a in prelim:
        target = "failure" if a.parts.get("errors", 0.0) >= a.parts.get("latency", 0.0) else "slow"
        # Narrowest scope first: the operation where the failures (or the time) are, then the
        # whole service.
        findings: list[AttributeFinding] = []
        if a.operation:
            findings = pinpoint(
                inc, base, service=a.service, operation=a.operation, target=target, cfg=cfg
            )
        if not findings:
            findings = pinpoint(inc, base, service=a.service, target=target, cfg=cfg)
        a.findings = findings
        if findings:
            if a.symptom >= cfg.min_symptom_score:
                a.add("attribute", cfg.weight_attribute * findings[0].strength)
            for af in findings[:3]:
                a.evidence.append(
                    Evidence(
                        kind="attribute",
                        description=(
                            f"{af.attribute}={af.value} carries {_pct(af.share_of_hits)} of the "
                            f"{'failures' if af.target == 'failure' else 'slow spans'} of {a.service} "
                            f"with {_pct(af.incident_share)} of its traffic (baseline share "
                            f"{_pct(af.baseline_share)}, risk ratio {af.risk_ratio:.1f})"
                        ),
                        baseline=round(af.baseline_share, 6),
                        incident=round(af.share_of_hits, 6),
                        trace_ids=af.trace_ids,
                        flag=af.value.partition("=")[0] if af.attribute == "feature_flag" else None,
                        version=af.value if af.attribute == "service.version" else None,
                    )
                )
    ordered = sorted(acc.values(), key=lambda a: (-a.score, a.service))[: cfg.max_candidates]
    for a in ordered:
        # Every fact should point at traces a person can open: evidence without its own examples
        # (metrics, call counts, changes) gets the candidate's slowest incident traces.
        examples = _example_traces(inc, a.service, a.operation, cfg.example_traces)
        a.evidence = [
            replace(e, id=f"{e.kind}#{i}", trace_ids=e.trace_ids or examples)
            for i, e in enumerate(a.evidence)
        ]
    if not ordered or ordered[0].score <= 0:
        return Ranking([], 0.0, True, "no evidence points at any service")
    top = ordered[0].score
    second = ordered[1].score if len(ordered) > 1 else 0.0
    margin = (top - second) / top
    support = min(1.0, report.incident_traces / max(cfg.min_incident_traces, 1))
    corroborating = len([p for p in ordered[0].parts.values() if p > 0.05]) - 1
    corroboration = min(0.2, 0.1 * max(0, corroborating))
    confidence = round(min(1.0, min(1.0, top) * (0.5 + 0.5 * margin) * support + corroboration), 4)
    candidates: list[Candidate] = []
    for a in ordered:
        fault = _classify(a, resources.get(a.service, []), by_service.get(a.service, []))
        attribute, value = _attribute(a, fault, by_service.get(a.service, []))
        candidates.append(
            Candidate(
                service=a.service,
                fault_class=fault,
                score=round(a.score, 4),
                confidence=round(confidence * a.score / top, 4),
                operation=a.operation,
                attribute=attribute,
                attribute_value=value,
                evidence=a.evidence,
                actions=propose(a.service, fault, a.evidence, similar),
            )
        )
    reason = ""
    abstain = False
    if report.incident_traces < cfg.min_incident_traces:
        abstain, reason = (
            True,
            f"only {report.incident_traces} traces in the incident window (need {cfg.min_incident_traces})",
        )
    elif confidence < cfg.abstain_below:
        abstain, reason = True, f"confidence {confidence:.2f} below {cfg.abstain_below:.2f}"
    return Ranking(candidates, confidence, abstain, reason)


def _inbound_rate(report: PopulationReport, service: str) -> float:
    """Requests or messages per second `service` took in (server and consumer spans) in the
    incident window: what a saturated consumer processes."""
    calls = report.calls
    if calls.height == 0:
        return 0.0
    mine = calls.filter((pl.col("service") == service) & pl.col("kind").is_in([2, 5]))
    return float(mine.get_column("inc_rate_s").sum())


def _example_traces(inc: pl.DataFrame, service: str, operation: str | None, n: int) -> list[str]:
    """The incident traces where the service's spans (of `operation` if given) took longest."""
    scope = inc.filter(pl.col("service") == service)
    if operation is not None and scope.filter(pl.col("operation") == operation).height:
        scope = scope.filter(pl.col("operation") == operation)
    if scope.height == 0:
        return []
    top = (
        scope.group_by("trace_id")
        .agg(pl.col("duration_ns").max().alias("d"))
        .sort(["d", "trace_id"], descending=[True, False])
        .head(n)
    )
    return [str(t) for t in top.get_column("trace_id").to_list()]


def _attribute(a: _Acc, fault: str, changes: list[ChangeFinding]) -> tuple[str | None, str | None]:
    if fault == "business_rule":
        # A flag turned on for everyone concentrates nothing by itself (no other value to compare
        # with); the change evidence names it, the segment is in the findings.
        flags = [c for c in changes if c.kind == "flag" and c.description]
        on = [c for c in flags if c.value and not c.value.endswith(("=off", "=false"))]
        if on:
            return "feature_flag", on[0].value
    if (
        fault
        in ("error_regression", "memory_leak", "crashloop", "db_latency", "latency_regression")
        and not a.findings
    ):
        new = [c for c in changes if c.kind == "version" and c.value]
        if new:
            return "service.version", new[0].value
    if not a.findings:
        return None, None
    if fault == "business_rule":
        flag_findings = [f for f in a.findings if f.attribute == "feature_flag"]
        if flag_findings:
            return flag_findings[0].attribute, flag_findings[0].value
    if fault in ("error_regression", "memory_leak", "crashloop"):
        versions = [f for f in a.findings if f.attribute == "service.version"]
        if versions:
            return versions[0].attribute, versions[0].value
        new = [c for c in changes if c.kind == "version" and c.value]
        if new:
            return "service.version", new[0].value
    return a.findings[0].attribute, a.findings[0].value
