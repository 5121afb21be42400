"""Resource evidence for candidate services: memory near its limit, restarts (OOMKilled or crash
loops), CPU saturation and throttling, connection-pool exhaustion, queue depth and consumer lag.

Input is plain data, so the flow, a replay or a test can feed it: `SignalWindow` records of kind
`metric` (what the flow emits) or dicts `{"service", "metric", "time_ns" | "at" | "window_start",
"value", "limit"?, "utilization"?, "attributes"?}` (what `loading.load_metrics` returns).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import polars as pl

from sinks.brain.config import DiagnosisConfig
from sinks.brain.pods import classify_metric
from sre_space.records import SignalWindow
from sre_space.timeutil import rfc3339_to_ns

Window = tuple[int, int]

# OpenTelemetry semantic-convention names (as in sre_space/defaults.yaml) plus the flow's saturation
# signal names.
MEMORY_USAGE = ("container.memory.usage", "k8s.pod.memory.usage", "process.memory.usage", "memory")
MEMORY_LIMIT = ("k8s.container.memory_limit", "container.memory.limit")
CPU_USAGE = (
    "container.cpu.utilization",
    "k8s.pod.cpu.utilization",
    "process.cpu.utilization",
    "cpu",
)
CPU_THROTTLING = ("container.cpu.throttling",)
POOL_USAGE = ("db.client.connection.count", "db.client.connections.usage", "connection_pool")
POOL_LIMIT = ("db.client.connection.max", "db.client.connections.max")
QUEUE = ("messaging.queue.depth", "messaging.kafka.consumer.lag", "queue")
RESTARTS = ("k8s.container.restarts",)
_REASON_KEYS = (
    "reason",
    "k8s.container.last_terminated_reason",
    "k8s.container.restart.reason",
    "container.last_terminated_reason",
    "k8s.container.status.last_terminated_reason",
)


@dataclass(frozen=True, slots=True)
class ResourceFinding:
    """One resource fact about one service; `strength` in 0..1 says how alarming it is."""

    service: str
    kind: str
    description: str
    baseline: float | None
    incident: float | None
    strength: float
    detail: dict[str, Any] = field(default_factory=dict)


def _time(item: dict[str, Any]) -> int:
    for key in ("time_ns", "at_ns"):
        if item.get(key) is not None:
            return int(item[key])
    for key in ("at", "window_start", "time"):
        if item.get(key):
            value = item[key]
            return int(value) if isinstance(value, int | float) else rfc3339_to_ns(str(value))
    return 0


@lru_cache(maxsize=4096)
def _is_pod_cpu_ratio(metric: str, unit: str) -> bool:
    # Once per (name, unit), not per sample: a case holds thousands of points of a few series.
    return unit in ("%", "1") and classify_metric(metric, unit) == ("cpu", "pod")


def _cpu_ratio(metric: str, unit: str, value: float) -> float | None:
    """A pod's CPU utilization under a name outside the conventions (`*cpu*usage_rate`, in % or
    as a ratio): recognised by its name's words and its unit, as `pods.classify_metric` does."""
    if not _is_pod_cpu_ratio(metric, unit):
        return None
    return value / 100.0 if unit == "%" else value


def metrics_frame(items: Iterable[SignalWindow | dict[str, Any]]) -> pl.DataFrame:
    """Normalise metric inputs into one frame: service, metric, series (its attributes), time_ns,
    value, limit, util, reason, state."""
    rows: list[dict[str, Any]] = []
    for item in items:
        data = item.to_dict() if isinstance(item, SignalWindow) else dict(item)
        if isinstance(item, SignalWindow) and item.kind != "metric":
            continue
        attrs = data.get("attributes") or {}
        reason = next((str(attrs[k]) for k in _REASON_KEYS if attrs.get(k)), "")
        value = data.get("value")
        if value is None:
            value = data.get("max")
        if value is None:
            continue
        metric = str(data.get("metric") or "")
        util = data.get("utilization")
        if util is None and metric not in CPU_USAGE:
            util = _cpu_ratio(metric, str(data.get("unit") or ""), float(value))
            if util is not None:
                metric = "cpu"
        rows.append(
            {
                "service": str(data.get("service") or ""),
                "metric": metric,
                "series": ",".join(f"{k}={attrs[k]}" for k in sorted(attrs)),
                "time_ns": _time(data),
                "value": float(value),
                "limit": None if data.get("limit") is None else float(data["limit"]),
                "util": None if util is None else float(util),
                "reason": reason,
                "state": str(attrs.get("db.client.connection.state") or attrs.get("state") or ""),
            }
        )
    schema = {
        "service": pl.String,
        "metric": pl.String,
        "series": pl.String,
        "time_ns": pl.Int64,
        "value": pl.Float64,
        "limit": pl.Float64,
        "util": pl.Float64,
        "reason": pl.String,
        "state": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def _stats(frame: pl.DataFrame, names: tuple[str, ...], w: Window) -> pl.DataFrame:
    return (
        frame.filter(
            pl.col("metric").is_in(list(names))
            & pl.col("time_ns").is_between(w[0], w[1], closed="left")
        )
        .group_by("service")
        .agg(
            pl.col("value").max().alias("max"),
            pl.col("value").min().alias("min"),
            pl.col("value").mean().alias("mean"),
            pl.col("value").sort_by("time_ns").last().alias("last"),
            pl.col("value").sort_by("time_ns").first().alias("first"),
            pl.col("time_ns").min().alias("t0"),
            pl.col("time_ns").max().alias("t1"),
            pl.col("limit").max().alias("limit"),
            pl.col("util").max().alias("util"),
            pl.col("reason").filter(pl.col("reason") != "").unique().sort().alias("reasons"),
        )
    )


def _backlogs(frame: pl.DataFrame, w: Window) -> dict[str, list[tuple[int, float]]]:
    """service -> (time, backlog) in the window: the sum of one metric's series at each time (a
    consumer group's lag is its partitions' or pods' lags together), the first of `QUEUE` that
    the service reports."""
    rows = frame.filter(
        pl.col("metric").is_in(list(QUEUE)) & pl.col("time_ns").is_between(w[0], w[1], "left")
    )
    out: dict[str, list[tuple[int, float]]] = {}
    for svc in sorted(set(rows.get_column("service").to_list())):
        mine = rows.filter(pl.col("service") == svc)
        have = set(mine.get_column("metric").to_list())
        metric = next(m for m in QUEUE if m in have)
        totals = (
            mine.filter(pl.col("metric") == metric)
            .group_by("time_ns")
            .agg(pl.col("value").sum())
            .sort("time_ns")
        )
        out[svc] = [(int(t), float(v)) for t, v in totals.iter_rows()]
    return out


def _rising_slope(points: list[tuple[int, float]], level: float) -> float:
    """Per second, the least-squares slope of the points since the last one at `level` or below
    (0 with fewer than two)."""
    start = max((i for i, (_, v) in enumerate(points) if v <= level), default=0)
    rising = points[start:]
    if len(rising) < 2:
        return 0.0
    xs = [t / 1e9 for t, _ in rising]
    ys = [v for _, v in rising]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def _utilization(
    frame: pl.DataFrame, usage: tuple[str, ...], limit: tuple[str, ...], w: Window
) -> dict[str, tuple[float, float]]:
    """service -> (max utilization, limit) in the window, from utilization, limit fields or a limit series."""
    use = _stats(frame, usage, w)
    lim = _stats(frame, limit, w).select(
        "service", pl.col("max").alias("limit_series"), pl.col("min").alias("limit_min")
    )
    out: dict[str, tuple[float, float]] = {}
    for row in use.join(lim, on="service", how="left").to_dicts():
        if row["util"] is not None:
            out[row["service"]] = (
                float(row["util"]),
                float(row["limit"] or row["limit_series"] or 0.0),
            )
            continue
        limit_value = row["limit"] or row["limit_min"]
        if limit_value:
            out[row["service"]] = (float(row["max"]) / float(limit_value), float(limit_value))
    return out


def resource_evidence(
    metrics: Iterable[SignalWindow | dict[str, Any]] | pl.DataFrame,
    window: Window,
    baseline: Window,
    cfg: DiagnosisConfig | None = None,
) -> dict[str, list[ResourceFinding]]:
    """Per service, the resource facts of the incident window against the baseline."""
    cfg = cfg or DiagnosisConfig()
    frame = metrics if isinstance(metrics, pl.DataFrame) else metrics_frame(metrics)
    out: dict[str, list[ResourceFinding]] = {}
    if frame.height == 0:
        return out

    def add(f: ResourceFinding) -> None:
        out.setdefault(f.service, []).append(f)

    # Memory near its limit.
    mem_i = _utilization(frame, MEMORY_USAGE, MEMORY_LIMIT, window)
    mem_b = _utilization(frame, MEMORY_USAGE, MEMORY_LIMIT, baseline)
    for svc, (util, limit) in sorted(mem_i.items()):
        base = mem_b.get(svc, (0.0, 0.0))[0]
        if util >= cfg.memory_high:
            add(
                ResourceFinding(
                    svc,
                    "memory",
                    f"memory reached {util:.0%} of its limit ({limit:g})",
                    base,
                    util,
                    1.0,
                    {"utilization": util, "limit": limit},
                )
            )
        elif util >= 0.75 and util > base * 1.25:
            add(
                ResourceFinding(
                    svc,
                    "memory",
                    f"memory climbing: {base:.0%} -> {util:.0%} of the limit",
                    base,
                    util,
                    0.5,
                    {"utilization": util, "limit": limit},
                )
            )
    # Restarts, with the reason when the metric carries it.
    r_i = {r["service"]: r for r in _stats(frame, RESTARTS, window).to_dicts()}
    r_b = {r["service"]: r for r in _stats(frame, RESTARTS, baseline).to_dicts()}
    for svc, row in sorted(r_i.items()):
        before = r_b.get(svc, {}).get("last")
        start = row["first"] if before is None else before
        delta = float(row["max"]) - float(start)
        reasons = list(row["reasons"] or [])
        if delta < 1 and not reasons:
            continue
        if delta < 1:
            delta = float(row["max"])  # per-window counts rather than a cumulative counter
        if delta < 1:
            continue
        text = ", ".join(reasons)
        kind = "restarts"
        if any("oom" in r.lower() for r in reasons):
            kind = "oom_kill"
        elif any(
            w in r.lower()
            for r in reasons
            for w in ("crashloop", "backoff", "readiness", "liveness", "error")
        ):
            kind = "crashloop"
        add(
            ResourceFinding(
                svc,
                kind,
                f"{delta:g} restart(s){' (' + text + ')' if text else ''}",
                float(start),
                float(row["max"]),
                1.0,
                {"reasons": reasons},
            )
        )
    oom_series = frame.filter(pl.col("metric").str.contains("(?i)oom"))
    for row in _stats(
        oom_series, tuple(oom_series.get_column("metric").unique().to_list()), window
    ).to_dicts():
        if float(row["max"]) - float(row["first"]) >= 1 or float(row["max"]) >= 1:
            add(
                ResourceFinding(
                    row["service"], "oom_kill", "OOM kills recorded", None, float(row["max"]), 1.0
                )
            )
    # CPU.
    cpu_i = {r["service"]: r for r in _stats(frame, CPU_USAGE, window).to_dicts()}
    cpu_b = {r["service"]: r for r in _stats(frame, CPU_USAGE, baseline).to_dicts()}
    for svc, row in sorted(cpu_i.items()):
        util = float(row["util"] if row["util"] is not None else row["max"])
        cpu_base = cpu_b.get(svc, {}).get("mean")
        if util >= cfg.cpu_high:
            add(
                ResourceFinding(
                    svc,
                    "cpu",
                    f"CPU at {util:.0%}",
                    cpu_base,
                    util,
                    1.0 if util >= 0.95 else 0.7,
                    {"utilization": util},
                )
            )
    thr_i = {r["service"]: r for r in _stats(frame, CPU_THROTTLING, window).to_dicts()}
    thr_b = {r["service"]: r for r in _stats(frame, CPU_THROTTLING, baseline).to_dicts()}
    for svc, row in sorted(thr_i.items()):
        base = float(thr_b.get(svc, {}).get("mean") or 0.0)
        if float(row["mean"]) > max(2 * base, 0.05):
            add(
                ResourceFinding(
                    svc,
                    "cpu_throttling",
                    f"CPU throttling {base:.2f} -> {row['mean']:.2f}",
                    base,
                    float(row["mean"]),
                    0.6,
                )
            )
    # Connection pool: in-use near its max, or a max that shrank.
    pool = frame.filter(
        ~pl.col("metric").is_in(list(POOL_USAGE)) | pl.col("state").is_in(["", "used"])
    )
    pool_i = _utilization(pool, POOL_USAGE, POOL_LIMIT, window)
    pool_b = _utilization(pool, POOL_USAGE, POOL_LIMIT, baseline)
    for svc, (util, limit) in sorted(pool_i.items()):
        base_util, base_limit = pool_b.get(svc, (0.0, 0.0))
        shrank = base_limit > 0 and limit > 0 and limit < base_limit
        if util >= cfg.pool_high or shrank:
            text = f"connection pool {util:.0%} in use"
            if shrank:
                text += f"; pool max shrank from {base_limit:g} to {limit:g}"
            add(
                ResourceFinding(
                    svc,
                    "pool",
                    text,
                    base_util,
                    util,
                    1.0 if util >= cfg.pool_high else 0.6,
                    {"limit": limit, "baseline_limit": base_limit},
                )
            )
    # Queue depth / consumer lag growth, on the backlog's total (see `_backlogs`).
    q_b = _backlogs(frame, baseline)
    for svc, points in sorted(_backlogs(frame, window).items()):
        before = [v for _, v in q_b.get(svc, [])]
        base = sum(before) / len(before) if before else 0.0
        peak = max(v for _, v in points)
        if peak >= 10 and peak >= cfg.lag_growth * (base + 1.0):
            seconds = (points[-1][0] - points[0][0]) / 1e9
            growth = (points[-1][1] - points[0][1]) / seconds if seconds > 0 else 0.0
            measures = {
                "backlog": points[-1][1],
                # over the window, as the processed rate is: the two add up to the arrivals
                "growth_per_s": round(growth, 4),
                # since it left its level before the incident: arrivals over what is processed now
                "recent_growth_per_s": round(_rising_slope(points, base), 4),
            }
            add(
                ResourceFinding(
                    svc, "lag", f"queue lag {base:g} -> {peak:g}", base, peak, 1.0, measures
                )
            )
    return out
