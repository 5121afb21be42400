"""What one trace says: where its failure originates, why, and which call patterns it shows.

`analyze_trace` is the `sre-space diagnose --trace FILE` answer. It uses the same vectorised rules as
the population analysis (`structure.py`), so a single trace and a million are judged alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from sinks.brain.config import DiagnosisConfig
from sinks.brain.structure import (
    add_critical_path,
    add_self_time,
    call_groups,
    error_origins,
    prepare,
)


@dataclass(frozen=True, slots=True)
class TraceAnalysis:
    """The answer for one trace. `locus` is None for a trace without failures."""

    trace_id: str
    locus: dict[str, str] | None
    why: str
    patterns: list[dict[str, Any]] = field(default_factory=list)
    critical_path: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: float = 0.0
    spans: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `diagnose --trace --json`."""
        return {
            "trace_id": self.trace_id,
            "locus": self.locus,
            "why": self.why,
            "patterns": self.patterns,
            "critical_path": self.critical_path,
            "duration_ms": self.duration_ms,
            "spans": self.spans,
        }


def _ms(ns: int | float) -> float:
    return round(float(ns) / 1e6, 3)


def _failure_words(row: dict[str, Any], cfg: DiagnosisConfig) -> str:
    parts: list[str] = []
    if row.get("business_failure"):
        for key, values in cfg.business_failures.items():
            if row.get(key) in values:
                parts.append(f"{key}={row[key]}")
        if row.get("http_status"):
            parts.append(f"HTTP {row['http_status']}")
        return "business failure " + ", ".join(parts)
    if row.get("status_code") == 2:
        parts.append("status ERROR")
    if row.get("http_status", 0) >= 400:
        parts.append(f"HTTP {row['http_status']}")
    if row.get("rpc_grpc_status", -1) not in (-1, 0):
        parts.append(f"gRPC code {row['rpc_grpc_status']}")
    exc = _exception_type(row.get("events") or "")
    if exc:
        parts.append(f"exception {exc}")
    return ", ".join(parts) or "error"


def _exception_type(events: str) -> str:
    if not events:
        return ""
    try:
        items = json.loads(events)
    except json.JSONDecodeError:
        return ""
    for ev in items if isinstance(items, list) else ():
        if isinstance(ev, dict) and ev.get("name") == "exception":
            attrs = ev.get("attributes") or {}
            return str(attrs.get("exception.type") or "exception")[:80]
    return ""


def _label(row: dict[str, Any]) -> str:
    return f"{row['service']} '{row['operation']}'"


def analyze_trace(spans: pl.DataFrame, cfg: DiagnosisConfig | None = None) -> TraceAnalysis:
    """Analyse the spans of one trace (if the frame holds several, the first trace id is used).

    Returns the locus of the failure (the deepest failing span whose children succeeded; for a timeout,
    the callee that used up the budget even if it ended OK; among failures that follow one another, the
    first; retries collapsed), a one-paragraph `why`, the N+1 and fan-out patterns, and the critical
    path with each span's share of it.
    """
    cfg = cfg or DiagnosisConfig.from_settings()
    if spans.height == 0:
        return TraceAnalysis(trace_id="", locus=None, why="no spans in the input")
    trace_id = str(spans.get_column("trace_id").sort()[0])
    df = prepare(spans.filter(pl.col("trace_id") == trace_id), cfg)
    df = add_critical_path(add_self_time(df))
    rows = {r["span_id"]: r for r in df.to_dicts()}
    roots = df.filter(pl.col("is_root")).sort("start_ns")
    duration = int(df.select(pl.col("end_ns").max() - pl.col("start_ns").min()).item() or 0)
    crit = (
        df.filter(pl.col("on_critical") & (pl.col("critical_ns") > 0))
        .sort("critical_ns", descending=True)
        .head(8)
    )
    critical_path = [
        {
            "service": r["service"],
            "operation": r["operation"],
            "span_id": r["span_id"],
            "critical_ms": _ms(r["critical_ns"]),
            "self_ms": _ms(r["self_ns"]),
            "share": round(r["critical_ns"] / duration, 3) if duration else 0.0,
        }
        for r in crit.to_dicts()
    ]
    patterns = [
        {
            "kind": g["kind"],
            "parent_span_id": g["parent_span_id"],
            "service": g["service"],
            "operation": g["operation"],
            "target": g["target"],
            "count": g["count"],
            "overlap": round(g["overlap"], 3),
            "total_ms": _ms(g["sum_ns"]),
        }
        for g in call_groups(df, cfg).to_dicts()
    ]
    origins = error_origins(df, cfg)
    base = TraceAnalysis(
        trace_id=trace_id,
        locus=None,
        why="",
        patterns=patterns,
        critical_path=critical_path,
        duration_ms=_ms(duration),
        spans=df.height,
    )
    if origins.height == 0:
        why = "no span failed"
        if critical_path:
            top = critical_path[0]
            why += (
                f"; most of the {base.duration_ms:g} ms is spent in {top['service']} "
                f"'{top['operation']}' ({top['critical_ms']:g} ms on the critical path)"
            )
        n1 = [p for p in patterns if p["kind"] == "n_plus_one"]
        if n1:
            why += (
                f"; N+1: {n1[0]['count']} serial calls to {n1[0]['service']} "
                f"'{n1[0]['operation']}' under one parent"
            )
        return replace(base, why=why)
    ordered = origins.sort(
        [pl.col("primary"), pl.col("end_ns"), pl.col("locus_start_ns")],
        descending=[True, False, True],
    ).to_dicts()
    first = ordered[0]
    origin_row = rows[first["span_id"]]
    locus_row = rows[first["locus_span_id"]]
    locus = {
        "service": locus_row["service"],
        "operation": locus_row["operation"],
        "span_id": locus_row["span_id"],
    }
    if first["via_timeout"] and first["locus_span_id"] != first["span_id"]:
        state = "failed" if locus_row["is_failure"] else "had not failed (status OK)"
        why = (
            f"{_label(origin_row)} gave up after {_ms(origin_row['duration_ns']):g} ms "
            f"({_failure_words(origin_row, cfg)}) while its callee {_label(locus_row)} was still "
            f"running ({_ms(locus_row['duration_ns']):g} ms, {state}): the callee used up the budget"
        )
    elif first["via_timeout"]:
        why = (
            f"{_label(origin_row)} timed out after {_ms(origin_row['duration_ns']):g} ms "
            f"({_failure_words(origin_row, cfg)})"
        )
        if first["blame_service"] != origin_row["service"]:
            why += f" with no answer from {first['blame_service']} (no span from it)"
    else:
        why = f"{_label(origin_row)} failed ({_failure_words(origin_row, cfg)})"
        if (
            origin_row.get("children", 0)
            or df.filter(pl.col("parent_span_id") == origin_row["span_id"]).height
        ):
            why += " while all of its children succeeded"
        elif first["blame_service"] != origin_row["service"]:
            why += (
                f" with no span from the callee {first['blame_service']} (unreachable: down, "
                "restarting or refusing connections)"
            )
    same = [
        o
        for o in ordered
        if o["locus_service"] == first["locus_service"]
        and o["locus_operation"] == first["locus_operation"]
    ]
    if len(same) > 1:
        why += f"; the same failure repeated {len(same)} times (retries)"
    others = {
        (o["locus_service"], o["locus_operation"])
        for o in ordered
        if (o["locus_service"], o["locus_operation"])
        != (first["locus_service"], first["locus_operation"])
    }
    later = [
        o
        for o in ordered
        if not o["primary"] and (o["locus_service"], o["locus_operation"]) in others
    ]
    if later:
        names = sorted({f"{o['locus_service']} '{o['locus_operation']}'" for o in later})
        why += f"; {', '.join(names)} failed only after it and depend(s) on it"
    parallel = [
        o
        for o in ordered[1:]
        if o["primary"] and (o["locus_service"], o["locus_operation"]) in others
    ]
    if parallel:
        names = sorted({f"{o['locus_service']} '{o['locus_operation']}'" for o in parallel})
        why += f"; independent failure(s) at the same time: {', '.join(names)}"
    if roots.height and not bool(roots.get_column("is_failure").any()):
        why += "; the request itself still succeeded (the failure was handled)"
    return replace(base, locus=locus, why=why)
