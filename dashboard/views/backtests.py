"""Backtests: the latest replay reports (detection, time to detect, localization) and the
replayed signals against the recording's ground truth."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts, common
from dashboard.format import parse_time
from dashboard.queries import backtests as q
from dashboard.queries import signals as signals_q

st.title("Backtests")
state = common.state_dir()
reports = q.backtests(state)

if not reports:
    common.empty(
        f"No backtests in {common.paths().backtests} yet. Record a scenario and replay it there: "
        "`python -m chaos record oom --seed 1 --duration 10m --out rec/oom.jsonl.gz` then "
        f"`sre-space replay rec/oom.jsonl.gz --out {common.paths().backtests / 'oom-seed1'}`."
    )
    st.stop()

faults = q.backtest_faults(reports)
totals = q.backtest_totals(faults)
m1, m2, m3, m4, m5 = st.columns(5)
m1.metric("Backtests", len(reports))
m2.metric("Faults", totals["faults"])
m3.metric("Detected", "—" if totals["recall"] is None else f"{totals['recall']:.0%}")
m4.metric(
    "Median time to detect",
    "—" if totals["ttd_median_s"] is None else f"{totals['ttd_median_s']:.0f} s",
)
m5.metric(
    "Localization accuracy",
    "—" if totals["localization"] is None else f"{totals['localization']:.0%}",
    help="Faults whose culprit service is among the matching incidents' services",
)

st.subheader("Per fault")
st.dataframe(
    faults,
    hide_index=True,
    column_config={"ttd_s": st.column_config.NumberColumn("time to detect (s)", format="%.0f")},
)
if faults.height:
    left, right = st.columns(2)
    with left:
        ttd = faults.filter(pl.col("ttd_s").is_not_null()).with_columns(
            (pl.col("scenario") + " (" + pl.col("backtest") + ")").alias("fault")
        )
        st.caption("Time to detect (s)")
        st.altair_chart(
            charts.bar_chart(ttd, x="fault", y="ttd_s", y_title="seconds"), width="stretch"
        )
    with right:
        loc = faults.group_by("scenario").agg(
            pl.col("localized").mean().alias("localization"),
            pl.col("detected").mean().alias("recall"),
        )
        st.caption("Localization accuracy per scenario")
        st.altair_chart(
            charts.bar_chart(loc, x="scenario", y="localization", y_title="share"), width="stretch"
        )

st.subheader("Reports")
names = [b["name"] for b in reports]
pick = st.selectbox(
    "Backtest",
    names,
    key="backtest_pick",
    format_func=lambda n: f"{n} (written {next(b['modified'] for b in reports if b['name'] == n)})",
)
b = next(r for r in reports if r["name"] == pick)
rep = b["report"]
c1, c2, c3 = st.columns(3)
c1.metric("Signal windows", f"{b['signals']:,}")
c2.metric("Anomalies", b["anomalies"])
c3.metric("Incidents", b["incidents"])
tot = rep.get("totals") or {}
if tot:
    st.dataframe(pl.DataFrame([tot]), hide_index=True)
scen = rep.get("scenarios") or {}
if scen:
    st.dataframe(pl.DataFrame([{"scenario": k, **v} for k, v in scen.items()]), hide_index=True)
labels = b.get("labels") or {}
signals = q.backtest_signals(b["folder"])
if not signals.is_empty():
    rules = []
    for key, text in (("onset", "fault onset"), ("end", "fault end")):
        at = parse_time(labels.get(key))
        if at is not None:
            rules.append((at, text))
    culprit = (labels.get("culprit") or {}).get("service")
    st.caption(
        "Replayed signals: error rate per service"
        + (f" — ground truth: {labels.get('fault_class')} in {culprit}" if culprit else "")
    )
    st.altair_chart(
        charts.line_chart(
            signals_q.service_series(signals),
            y="error_rate",
            color="service",
            y_title="error rate",
            y_format=".1%",
            rules=rules,
        ),
        width="stretch",
    )
    sat = signals_q.saturation_series(signals)
    if not sat.is_empty() and culprit:
        sat = sat.filter(pl.col("series").str.starts_with(f"{culprit} /"))
        if not sat.is_empty():
            st.altair_chart(
                charts.line_chart(
                    sat,
                    y="utilization",
                    color="series",
                    y_title="utilization",
                    y_format=".0%",
                    rules=rules,
                ),
                width="stretch",
            )
with st.expander("report.json"):
    st.json(rep, expanded=False)
