"""Pod metrics as evidence: each instance's CPU, memory or network series joined to the spans it served.

A series is classified by its semantic-convention name and unit (`k8s.pod.cpu.*`, `container.*`,
`process.*`, `*.memory.*`, `*.network.*`, ...), joined to spans by `k8s.pod.name`, then
`service.instance.id`, then `service.name`, and compared window against baseline (the given
baseline, else the metric's history before the window, else the instance's siblings). A pod is
blamed in proportion to the share of the end-to-end latency change its critical-path time explains
(on the spans' baseline, `population.choose_baseline`), times how far its metric moved beyond its
peers'."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import polars as pl

from sinks.brain.config import DiagnosisConfig
from sinks.brain.population import PopulationReport
from sre_space.records import Evidence, SignalWindow, series_name

Window = tuple[int, int]

# The resource attributes that name an instance, most specific first (the join's fallback order
# ends at `service.name`).
INSTANCE_KEYS = ("k8s.pod.name", "service.instance.id")
_RESOURCE_TOKENS = {
    "cpu": frozenset({"cpu", "cpus"}),
    "memory": frozenset({"memory", "mem", "rss"}),
    "network": frozenset({"network", "net", "rx", "tx", "receive", "transmit"}),
}
# Capacity and configuration series say what a pod may use, not what it used.
_NOT_USAGE = frozenset(
    {"limit", "limits", "request", "requests", "capacity", "allocatable", "available", "reserved"}
)
# Shared by every pod on the machine: weaker evidence about one pod.
_NODE_PREFIXES = ("k8s.node.", "system.", "host.")
_CPU_UNITS = re.compile(r"(?i)core|\{cpu\}")
# Relative rise of a metric that counts as fully moved (memory moves less than CPU or traffic).
_FULL_CHANGE = {"cpu": 1.0, "network": 1.0, "memory": 0.25}


def classify_metric(name: str, unit: str = "") -> tuple[str, str] | None:
    """(resource, scope) of a usage metric: resource cpu / memory / network, scope pod or node."""
    tokens = set(re.split(r"[^a-z0-9]+", name.lower()))
    if tokens & _NOT_USAGE:
        return None
    resource = next((r for r, words in _RESOURCE_TOKENS.items() if tokens & words), None)
    if resource is None and _CPU_UNITS.search(unit or ""):
        resource = "cpu"
    if resource is None:
        return None
    node = name.lower().startswith(_NODE_PREFIXES) or "node" in tokens
    return resource, "node" if node else "pod"


@dataclass(frozen=True, slots=True)
class PodFinding:
    """One instance's metric that moved with the latency it served; `strength` in 0..1."""

    service: str
    pod: str
    joined_by: str
    resource: str
    metric: str
    unit: str
    baseline: float
    incident: float
    change: float
    peers_change: float
    reference: str
    served_base_ms: float
    served_inc_ms: float
    explained: float
    correlation: float | None
    strength: float
    trace_ids: list[str] = field(default_factory=list)

    def evidence(self) -> Evidence:
        """The finding as an evidence record of its candidate."""
        unit = f" {self.unit}" if self.unit else ""
        corr = (
            ""
            if self.correlation is None
            else f"; correlation with its latency {self.correlation:.2f}"
        )
        text = (
            f"pod {self.pod} of {self.service} (joined by {self.joined_by}): {self.metric} "
            f"{self.baseline:.4g} -> {self.incident:.4g}{unit} ({self.change:+.0%}, peers "
            f"{self.peers_change:+.0%}, against {self.reference}); its spans hold the critical path "
            f"{self.served_base_ms:.1f} -> {self.served_inc_ms:.1f} ms per trace, "
            f"{self.explained:.0%} of the end-to-end change{corr}"
        )
        return Evidence(
            kind=f"pod_{self.resource}",
            description=text,
            baseline=round(self.baseline, 6),
            incident=round(self.incident, 6),
            trace_ids=list(self.trace_ids),
        )


def pod_series(items: Iterable[SignalWindow | dict[str, Any]] | pl.DataFrame) -> pl.DataFrame:
    """Usage samples one row each: service, the instance's `k8s.pod.name` and `service.instance.id`
    ("" when absent), series, unit, resource, scope, time_ns, value; only `classify_metric`'s."""
    rows: list[dict[str, Any]] = []
    source: Iterable[Any] = items.to_dicts() if isinstance(items, pl.DataFrame) else items
    for item in source:
        if isinstance(item, SignalWindow):
            if item.kind != "metric":
                continue
            data: dict[str, Any] = {
                "service": item.service,
                "metric": item.metric,
                "unit": item.unit,
                "attributes": item.attributes,
                "value": item.mean if item.mean is not None else item.value,
                "time_ns": item.window_start,
            }
        else:
            data = item
        name, value = str(data.get("metric") or ""), data.get("value")
        kind = classify_metric(name, str(data.get("unit") or ""))
        if kind is None or value is None or not data.get("service"):
            continue
        attrs = {str(k): str(v) for k, v in (data.get("attributes") or {}).items()}
        point = {k: v for k, v in attrs.items() if k not in INSTANCE_KEYS and k != "host.name"}
        rows.append(
            {
                "service": str(data["service"]),
                **{k: attrs.get(k, "") for k in INSTANCE_KEYS},
                "series": series_name(name, point),
                "unit": str(data.get("unit") or ""),
                "resource": kind[0],
                "scope": kind[1],
                "time_ns": int(data.get("time_ns") or 0),
                "value": float(value),
            }
        )
    schema = {
        "service": pl.String,
        **{k: pl.String for k in INSTANCE_KEYS},
        "series": pl.String,
        "unit": pl.String,
        "resource": pl.String,
        "scope": pl.String,
        "time_ns": pl.Int64,
        "value": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def _own_time(frame: pl.DataFrame, by: list[str], traces: int) -> pl.DataFrame:
    """Critical-path ms per trace that each group's spans hold. A client span's share is the wait on
    its call beyond the callee's own time: a starved pod is slow to send and to read its answers,
    and its metric, moved beyond its peers', tells that apart from a slow network."""
    return frame.group_by(by).agg((pl.col("critical_ns").sum() / 1e6 / max(traces, 1)).alias("ms"))


def _join(
    inc: pl.DataFrame, base: pl.DataFrame, service: str, names: dict[str, str]
) -> tuple[str, pl.DataFrame, pl.DataFrame]:
    """(joined_by, incident spans, baseline spans) the instance served: the first of
    `INSTANCE_KEYS` it and the spans share, else its whole service."""
    svc_inc = inc.filter(pl.col("service") == service)
    svc_base = base.filter(pl.col("service") == service)
    for column in INSTANCE_KEYS:
        instance = names.get(column, "")
        if not instance or column not in inc.columns:
            continue
        mine = svc_inc.filter(pl.col(column) == instance)
        if mine.height:
            theirs = (
                svc_base.filter(pl.col(column) == instance)
                if column in base.columns
                else base.clear()
            )
            return column, mine, theirs
    return "service.name", svc_inc, svc_base


def _correlation(spans: pl.DataFrame, points: pl.DataFrame) -> float | None:
    """Pearson r between the metric's points and the mean self time of the instance's spans in the
    interval each point closes; None with fewer than four intervals holding spans."""
    times = points.sort("time_ns")
    ts, vs = times.get_column("time_ns").to_list(), times.get_column("value").to_list()
    if len(ts) < 4 or spans.height == 0 or "self_ns" not in spans.columns:
        return None
    if "remote_call" in spans.columns:
        spans = spans.filter(~pl.col("remote_call"))
    pairs: list[tuple[float, float]] = []
    for j in range(1, len(ts)):
        inside = spans.filter(pl.col("start_ns").is_between(ts[j - 1], ts[j], closed="right"))
        if inside.height >= 3:
            pairs.append((float(vs[j]), _mean(inside, "self_ns")))
    if len(pairs) < 4:
        return None
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    if sx == 0 or sy == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in pairs) / (sx * sy)


def _reference(
    points: pl.DataFrame, window: Window, baseline: Window
) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """(window points, reference points, what the reference is): the given baseline, else the
    history before the window. Metrics keep their own history, so spans' choice does not bind them."""
    inc = points.filter(pl.col("time_ns").is_between(window[0], window[1], closed="both"))
    ref = points.filter(pl.col("time_ns").is_between(baseline[0], baseline[1], closed="left"))
    if ref.height:
        return inc, ref, "the given baseline"
    return inc, points.filter(pl.col("time_ns") < window[0]), "the history before the window"


def pod_findings(
    metrics: Iterable[SignalWindow | dict[str, Any]] | pl.DataFrame,
    report: PopulationReport,
    inc: pl.DataFrame,
    base: pl.DataFrame,
    window: Window,
    baseline: Window,
    cfg: DiagnosisConfig | None = None,
) -> list[PodFinding]:
    """Instances whose usage metric moved with the latency they served, strongest first.

    `report`, `inc` / `base`: `population.analyze_population`'s (critical-path time per span);
    `window` / `baseline`: the incident's, for the metric points.
    """
    cfg = cfg or DiagnosisConfig()
    series = pod_series(metrics)
    e2e_delta = report.e2e_delta_ms
    if series.height == 0 or inc.height == 0 or e2e_delta <= 0:
        return []
    n_inc, n_base = report.incident_traces, report.baseline_traces
    # Shares of the end-to-end change: each service's critical-path time against the sum of all
    # rises (that sum is the end-to-end change, plus what traffic-mix noise adds).
    by_service = _own_time(inc, ["service"], n_inc).join(
        _own_time(base, ["service"], n_base).rename({"ms": "base"}), on="service", how="full"
    )
    rises = by_service.select(
        (pl.col("ms").fill_null(0.0) - pl.col("base").fill_null(0.0)).clip(lower_bound=0.0).sum()
    ).item()
    total = max(float(rises or 0.0), e2e_delta)
    # End-to-end change that is noise (below the configured shift) explains nothing.
    magnitude = min(
        1.0, e2e_delta / max(cfg.min_latency_shift_ratio * report.e2e_baseline_ms, 1e-9)
    )

    moves: list[dict[str, Any]] = []
    keys = ["service", *INSTANCE_KEYS, "series"]
    for group, points in series.group_by(keys, maintain_order=True):
        svc, name = str(group[0]), str(group[-1])
        names = {k: str(v) for k, v in zip(INSTANCE_KEYS, group[1:-1], strict=True)}
        window_pts, ref_pts, reference = _reference(points, window, baseline)
        if window_pts.height == 0:
            continue
        now = _mean(window_pts, "value")
        # The reference's median and MAD: a history may hold the tail of an earlier fault.
        values = [float(v) for v in ref_pts.get_column("value").to_list()]
        before = median(values) if values else None
        moves.append(
            {
                "service": str(svc),
                "names": names,
                "instance": next((v for v in names.values() if v), ""),
                "series": str(name),
                "resource": str(points.get_column("resource")[0]),
                "scope": str(points.get_column("scope")[0]),
                "unit": str(points.get_column("unit")[0]),
                "now": now,
                "before": before,
                "reference": reference,
                "points": points,
                "spread": 1.4826 * median(abs(v - (before or 0.0)) for v in values)
                if values
                else 0.0,
                "ref_points": ref_pts.height,
            }
        )
    _relative_changes(moves)

    found: list[PodFinding] = []
    # One join per instance, shared by its series.
    served: dict[tuple[str, ...], tuple[str, pl.DataFrame, pl.DataFrame, float, float]] = {}
    for m in moves:
        change, peers = m["change"], m["peers"]
        if change is None:
            continue
        moved = min(1.0, max(0.0, change - max(peers, 0.0)) / _FULL_CHANGE[m["resource"]])
        if moved < cfg.pod_min_move or not _beyond_noise(m):
            continue
        key = (m["service"], *m["names"].values())
        if key not in served:
            joined_by, mine, theirs = _join(inc, base, m["service"], m["names"])
            inc_ms = float(_own_time(mine, ["service"], n_inc).get_column("ms").sum() or 0.0)
            base_ms = float(_own_time(theirs, ["service"], n_base).get_column("ms").sum() or 0.0)
            served[key] = (joined_by, mine, theirs, inc_ms, base_ms)
        joined_by, mine, theirs, inc_ms, base_ms = served[key]
        explained = min(1.0, max(0.0, inc_ms - base_ms) / total) * magnitude
        if explained <= 0.01:
            continue  # the metric moved but the requests it served did not slow down
        both = pl.concat([theirs, mine], how="diagonal_relaxed")
        r = _correlation(both, m["points"])
        strength = explained * moved * (0.5 if m["scope"] == "node" else 1.0)
        if r is not None:
            strength *= 0.5 + 0.5 * max(r, 0.0)
        found.append(
            PodFinding(
                service=m["service"],
                pod=m["instance"] or m["service"],
                joined_by=joined_by,
                resource=m["resource"],
                metric=m["series"],
                unit=m["unit"],
                baseline=m["base_value"],
                incident=m["now"],
                change=change,
                peers_change=peers,
                reference=m["ref_name"],
                served_base_ms=base_ms,
                served_inc_ms=inc_ms,
                explained=explained,
                correlation=None if r is None else round(r, 4),
                strength=round(strength, 6),
                trace_ids=_slowest(mine, cfg.example_traces),
            )
        )
    found.sort(key=lambda f: (-f.strength, f.service, f.pod, f.metric))
    return found


def _relative_changes(moves: list[dict[str, Any]]) -> None:
    """Set each move's `change` (relative, against its own baseline or else its siblings' level)
    and `peers` (the median change of the same metric elsewhere: siblings first, else every other
    instance)."""
    for m in moves:
        m["change"], m["base_value"], m["ref_name"] = None, 0.0, m["reference"]
        if m["before"] is not None:
            m["change"] = _rel(m["now"], m["before"])
            m["base_value"] = m["before"]
            continue
        siblings = [
            o["now"]
            for o in moves
            if o is not m and o["service"] == m["service"] and o["series"] == m["series"]
        ]
        if siblings:
            level = median(siblings)
            m["change"], m["base_value"], m["ref_name"] = (
                _rel(m["now"], level),
                level,
                "sibling instances",
            )
    for m in moves:
        same = [
            o
            for o in moves
            if o is not m and o["series"] == m["series"] and o["change"] is not None
        ]
        siblings = [o["change"] for o in same if o["service"] == m["service"]]
        others = siblings or [o["change"] for o in same]
        m["peers"] = median(others) if others else 0.0
        if m["ref_name"] == "sibling instances":
            m["peers"] = 0.0  # the siblings are the reference already


def _beyond_noise(m: dict[str, Any]) -> bool:
    """The window's level sits beyond three robust standard deviations (MAD) of the series' own
    reference (a reference of fewer than three points cannot say how noisy the series is)."""
    if m["ref_name"] == "sibling instances" or m["ref_points"] < 3:
        return True
    return abs(m["now"] - m["base_value"]) > 3.0 * m["spread"]


def _mean(frame: pl.DataFrame, column: str) -> float:
    return float(frame.select(pl.col(column).mean()).item() or 0.0)


def _rel(now: float, before: float) -> float:
    return (now - before) / max(abs(before), 1e-9)


def _slowest(spans: pl.DataFrame, n: int) -> list[str]:
    """The incident traces where these spans held the critical path longest."""
    if spans.height == 0 or "critical_ns" not in spans.columns:
        return []
    top = (
        spans.group_by("trace_id")
        .agg(pl.col("critical_ns").sum().alias("c"))
        .sort(["c", "trace_id"], descending=[True, False])
        .head(n)
    )
    return [str(t) for t in top.get_column("trace_id").to_list()]
