"""A trace waterfall: one row per span in tree order, failing spans and the critical path marked.

`waterfall_frame` is pure (spans in, rows out) and uses the Brain's own span-tree rules
(`sinks.brain.structure`: failures, self time, the critical path), so the picture and the
diagnosis never disagree. `waterfall_chart` turns the rows into an Altair chart.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from operators.otlp.span_kind import KIND_NAMES

WATERFALL_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.Int64(),
    "depth": pl.Int64(),
    "label": pl.String(),
    "service": pl.String(),
    "operation": pl.String(),
    "kind": pl.String(),
    "span_id": pl.String(),
    "start_ms": pl.Float64(),
    "end_ms": pl.Float64(),
    "duration_ms": pl.Float64(),
    "self_ms": pl.Float64(),
    "critical_ms": pl.Float64(),
    "failing": pl.Boolean(),
    "critical": pl.Boolean(),
    "status": pl.String(),
    "marker": pl.String(),
}


def waterfall_frame(spans: pl.DataFrame) -> pl.DataFrame:
    """Rows of a waterfall for one trace (the first trace id if there are several).

    Depth-first by start time from each root, times in ms from the trace's first start. `marker`
    is `failing`, `critical path` or `other`, for the colour.
    """
    if spans.is_empty():
        return pl.DataFrame(schema=WATERFALL_SCHEMA)
    from sinks.brain.config import DiagnosisConfig
    from sinks.brain.structure import add_critical_path, add_self_time, prepare

    trace_id = str(spans.get_column("trace_id").sort()[0])
    df = prepare(spans.filter(pl.col("trace_id") == trace_id), DiagnosisConfig())
    df = add_critical_path(add_self_time(df))
    t0 = int(df["start_ns"].min())  # type: ignore[arg-type]
    rows = {r["span_id"]: r for r in df.to_dicts()}
    children: dict[str, list[str]] = {}
    roots: list[str] = []
    for sid, r in rows.items():
        if r["is_root"]:
            roots.append(sid)
        else:
            children.setdefault(r["parent_span_id"], []).append(sid)
    order: list[tuple[str, int]] = []

    def by_start(ids: list[str]) -> list[str]:
        return sorted(ids, key=lambda i: (rows[i]["start_ns"], i))

    # Iterative depth-first walk: traces can be deep, recursion limits are not a UI concern.
    stack = [(sid, 0) for sid in reversed(by_start(roots))]
    while stack:
        sid, depth = stack.pop()
        order.append((sid, depth))
        stack.extend((c, depth + 1) for c in reversed(by_start(children.get(sid, []))))
    out: list[dict[str, Any]] = []
    for i, (sid, depth) in enumerate(order):
        r = rows[sid]
        failing = bool(r["is_failure"])
        critical = bool(r["on_critical"])
        status = "error" if r["status_code"] == 2 else ("ok" if r["status_code"] == 1 else "unset")
        if r.get("http_status"):
            status += f" · HTTP {r['http_status']}"
        out.append(
            {
                "row": i,
                "depth": depth,
                "label": f"{'  ' * depth}{r['service']}: {r['operation']}",
                "service": r["service"],
                "operation": r["operation"],
                "kind": KIND_NAMES.get(int(r["kind"]), "unspecified"),
                "span_id": sid,
                "start_ms": (r["start_ns"] - t0) / 1e6,
                "end_ms": (r["end_ns"] - t0) / 1e6,
                "duration_ms": r["duration_ns"] / 1e6,
                "self_ms": (r.get("self_ns") or 0) / 1e6,
                "critical_ms": (r.get("critical_ns") or 0) / 1e6,
                "failing": failing,
                "critical": critical,
                "status": status,
                "marker": "failing" if failing else ("critical path" if critical else "other"),
            }
        )
    return pl.DataFrame(out, schema=WATERFALL_SCHEMA)


def waterfall_summary(rows: pl.DataFrame) -> dict[str, Any]:
    """Headline numbers: spans, services, duration, failing spans, critical-path spans."""
    if rows.is_empty():
        return {"spans": 0, "services": 0, "duration_ms": 0.0, "failing": 0, "critical": 0}
    return {
        "spans": rows.height,
        "services": rows["service"].n_unique(),
        "duration_ms": float(rows.select(pl.col("end_ms").max() - pl.col("start_ms").min()).item()),
        "failing": int(rows["failing"].sum()),
        "critical": int(rows["critical"].sum()),
    }


def waterfall_chart(rows: pl.DataFrame) -> Any:
    """The waterfall as an Altair layered bar chart (failing red, critical path dark blue)."""
    import altair as alt

    data = rows.to_dicts()
    height = max(120, 22 * len(data))
    y = alt.Y(
        "row:O",
        axis=alt.Axis(title=None, labels=False, ticks=False),
        sort="ascending",
    )
    colour = alt.Color(
        "marker:N",
        scale=alt.Scale(
            domain=["failing", "critical path", "other"], range=["#d62728", "#1f3b73", "#9fb4d3"]
        ),
        legend=alt.Legend(title=None, orient="top"),
    )
    tooltip = [
        alt.Tooltip("service:N"),
        alt.Tooltip("operation:N"),
        alt.Tooltip("kind:N"),
        alt.Tooltip("status:N"),
        alt.Tooltip("start_ms:Q", format=".1f", title="start (ms)"),
        alt.Tooltip("duration_ms:Q", format=".1f", title="duration (ms)"),
        alt.Tooltip("self_ms:Q", format=".1f", title="self (ms)"),
        alt.Tooltip("critical_ms:Q", format=".1f", title="on critical path (ms)"),
        alt.Tooltip("span_id:N"),
    ]
    base = alt.Chart(alt.Data(values=data)).encode(y=y)
    bars = base.mark_bar(height=14, cornerRadius=2).encode(
        x=alt.X("start_ms:Q", title="ms since the trace started"),
        x2="end_ms:Q",
        color=colour,
        tooltip=tooltip,
    )
    text = base.mark_text(align="left", dx=3, fontSize=11).encode(
        x=alt.X("end_ms:Q"), text="label:N", tooltip=tooltip
    )
    return (bars + text).properties(height=height)
