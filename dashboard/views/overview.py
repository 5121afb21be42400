"""Overview: are users hurt (SLOs, journeys, latency, errors, saturation), what is open, and is
SRE-Space itself healthy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl
import streamlit as st

from dashboard import charts, common
from dashboard.format import fmt_duration, state_badge, time_html
from dashboard.queries import incidents as incidents_q
from dashboard.queries import overview as q
from dashboard.queries import signals as signals_q
from dashboard.queries.store import StoreReader, latest_ts
from sre_space.settings import ConfigError, Settings

st.title("Overview")


def _page_burn(rates: Iterable[float]) -> str:
    """Page thresholds (the SLOs' fast-burn rules) as the help texts say them, e.g. `14.4×`."""
    return " / ".join(f"{b:g}×" for b in sorted(set(rates)))


def _slo_table(rows: list[q.SloRow], subject: str) -> None:
    rows = sorted(rows, key=lambda r: (-r.burn_short, -r.burn_long, r.slo, r.subject))
    page = _page_burn(r.page_burn for r in rows)
    df = pl.DataFrame(
        [
            {
                "SLO": r.slo,
                subject: r.subject,
                "objective": r.objective,
                "SLI": r.sli,
                "burn 5m": r.burn_short,
                "burn (range)": r.burn_long,
                "budget left": r.budget_remaining,
                "status": r.status,
                "events": r.events,
            }
            for r in rows
        ]
    )
    st.dataframe(
        df,
        hide_index=True,
        column_config={
            "objective": st.column_config.NumberColumn(format="percent"),
            "SLI": st.column_config.NumberColumn(format="%.3f"),
            "burn 5m": st.column_config.NumberColumn(
                format="%.2f×", help="Budget burn over the last 5 minutes; 1× spends it exactly"
            ),
            "burn (range)": st.column_config.NumberColumn(format="%.2f×"),
            "status": st.column_config.TextColumn(
                help=f"breach: 5-min burn ≥ {page} (page); burning: ≥ 1×; ok below"
            ),
            "budget left": st.column_config.ProgressColumn(
                min_value=0.0,
                max_value=1.0,
                format="percent",
                help="Share of the SLO period's error budget left after the shown range",
            ),
        },
    )


@st.fragment(run_every=common.refresh_seconds())
def live() -> None:
    """Everything on this page is live: it re-runs on the sidebar's interval."""
    store = common.store()
    minutes = st.session_state.get("overview_minutes", 30)
    df = signals_q.load_signals(store, minutes=float(minutes))
    all_incidents = incidents_q.incidents(store)
    still_open = incidents_q.open_incidents(all_incidents)
    if df.is_empty():
        common.empty(
            f"No signals yet in {common.paths().db}. Start the demo with `make demo` "
            "(or `sre-space demo`), or replay a recording: `python -m chaos record oom --seed 1 "
            "--duration 10m --out rec/oom.jsonl.gz` then `sre-space replay rec/oom.jsonl.gz "
            "--out state/backtests/oom`."
        )
        _incidents_block(still_open, all_incidents)
        return
    newest = latest_ts(store)
    st.markdown(
        f"Event time up to {time_html(newest)} · last {minutes} min · {df.height:,} signal windows",
        unsafe_allow_html=True,
    )
    try:
        extra = Settings().pipeline.extra
    except ConfigError as exc:
        st.warning(f"Pipeline config not readable, default SLOs shown: {exc}")
        extra = {}
    slos, _scale = q.slo_specs(extra)
    status = q.slo_status(q.slo_rows(store, float(minutes)), slos)
    health = q.pipeline_health(store, df)
    breaching = [r for r in status if r.status == "breach"]
    page = _page_burn(s.page_burn_rate for s in slos)
    burning = [r for r in status if r.status == "burning"]
    journeys = signals_q.conversion_series(df)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Open incidents", len(still_open))
    c2.metric(
        "SLOs breaching",
        len(breaching),
        help=f"Fast burn (≥{page} over 5 min); burning ≥1×: {len(burning)}",
    )
    if not journeys.is_empty():
        last = journeys.drop_nulls("conversion").sort("start")
        conv = last["conversion"][-1] if last.height else None
        journey = str(last["journey"][-1]) if last.height else ""
        c3.metric(
            f"Conversion: {journey}" if journey else "Conversion",
            f"{conv:.1%}" if conv is not None else "—",
        )
    else:
        c3.metric("Conversion", "—")
    c4.metric("Dead letters", f"{health['deadletters']:,}")

    _incidents_block(still_open, all_incidents)

    st.subheader("SLOs and error budget")
    journeys_rows = [r for r in status if r.type == "conversion"]
    service_rows = [r for r in status if r.type != "conversion"]
    # Stacked, not side by side: both tables stay readable at laptop width.
    st.caption("Per critical user journey")
    if journeys_rows:
        _slo_table(journeys_rows, "journey")
    else:
        st.caption("No journey SLO has data in this range.")
    st.caption("Per service (server spans), fastest burn first")
    if service_rows:
        _slo_table(service_rows, "service")
    else:
        st.caption("No service SLO has data in this range.")

    st.subheader("Signals over time")
    services = signals_q.service_series(df)
    names = sorted(services["service"].unique().to_list())
    tabs = st.tabs(["Latency", "Errors", "Conversion", "Saturation", "Traffic"])
    with tabs[0]:
        if names:
            default = st.session_state.get("overview_service")
            if default not in names:
                st.session_state["overview_service"] = names[0]
            service = st.selectbox("Service", names, key="overview_service")
            st.altair_chart(
                charts.line_chart(
                    signals_q.latency_series(df, service),
                    y="value",
                    color="quantile",
                    y_title=f"{service} latency (ms)",
                ),
                width="stretch",
            )
            st.altair_chart(
                charts.line_chart(services, y="p95_ms", color="service", y_title="p95 (ms)"),
                width="stretch",
            )
            _signal_traces(store, service, float(minutes))
        else:
            st.caption("No span signals in this range.")
    with tabs[1]:
        st.altair_chart(
            charts.line_chart(
                services, y="error_rate", color="service", y_title="error rate", y_format=".1%"
            ),
            width="stretch",
        )
    with tabs[2]:
        if journeys.is_empty():
            st.caption("No journeys configured or no journey traffic (`journeys:` in the config).")
        else:
            st.altair_chart(
                charts.line_chart(
                    journeys.drop_nulls("conversion"),
                    y="conversion",
                    color="journey",
                    y_title="conversion",
                    y_format=".0%",
                ),
                width="stretch",
            )
    with tabs[3]:
        sat = signals_q.saturation_series(df)
        if sat.is_empty():
            st.caption("No saturation metrics in this range.")
        else:
            st.altair_chart(
                charts.line_chart(
                    sat, y="utilization", color="series", y_title="utilization", y_format=".0%"
                ),
                width="stretch",
            )
    with tabs[4]:
        st.altair_chart(
            charts.line_chart(services, y="requests", color="service", y_title="requests / window"),
            width="stretch",
        )

    st.subheader("Pipeline health")
    p1, p2, p3, p4 = st.columns(4)
    p1.metric("Dead letters", f"{health['deadletters']:,}")
    p2.metric("Late data points", f"{health['late']:,}", help="Arrived after their window closed")
    wd = health["watermark_delay_s"]
    p3.metric("Watermark delay", "—" if wd is None else f"{wd:.1f} s")
    lag = health["consumer_lag"]
    p4.metric("Consumer lag", "—" if lag is None else f"{lag:,.0f}")
    if health["deadletter_reasons"]:
        st.caption(
            "Latest dead letters: "
            + "; ".join(f"{k} ×{v}" for k, v in health["deadletter_reasons"].items())
        )
    _collector(health["collector"])


def _signal_traces(store: StoreReader, service: str, minutes: float) -> None:
    """The failing and slowest traces the flow kept for the service, linked to Jaeger."""
    rows = signals_q.signal_traces(store, service, minutes=minutes)
    st.caption(f"Failing and slowest traces of {service}, newest window first")
    if not rows:
        st.caption("The flow kept no trace ids for this service in this range.")
        return
    df = pl.DataFrame(
        [{**r, "trace_id": common.trace_cell(r["trace_id"])} for r in rows],
        schema={
            "start": pl.Datetime("us", "UTC"),
            "operation": pl.String(),
            "trace_kind": pl.String(),
            "trace_id": pl.String(),
        },
    )
    st.dataframe(
        df,
        hide_index=True,
        column_config={
            "start": common.utc_column("window (UTC)"),
            "trace_kind": st.column_config.TextColumn("kept as"),
            "trace_id": common.trace_column("trace"),
        },
    )


def _collector(health: pl.DataFrame) -> None:
    """The Collector's own metrics (pipeline signals `otelcol_*`), failures first."""
    failures = q.collector_failures(health)
    if failures is None:
        st.caption(
            "No Collector reports its own metrics into the pipeline (`otelcol_*`; see "
            "deploy/otel-collector.yaml, which sends them)."
        )
        return
    st.metric(
        "Collector: telemetry not passed on",
        f"{failures:,.0f}",
        help="The Collector's send-failed, enqueue-failed and refused counters, summed",
    )
    st.dataframe(
        health.drop("failure"),
        hide_index=True,
        column_config={
            "last": st.column_config.NumberColumn("last value", format="%.6g"),
            "change": st.column_config.NumberColumn("change in range", format="%.6g"),
        },
    )


def _incidents_block(
    still_open: Sequence[Mapping[str, Any]], all_incidents: Sequence[Mapping[str, Any]]
) -> None:
    st.subheader("Open incidents")
    if not all_incidents:
        common.empty(
            "No incidents yet — run `python -m chaos oom` against the demo shop (or start one "
            "from the Chaos page) and watch Scout open one here."
        )
        return
    if not still_open:
        st.success(f"Nothing open. {len(all_incidents)} incident(s) in the store, all closed.")
        return
    for inc in still_open:
        st.markdown(
            f"{state_badge(inc['state'])} **[{inc['id']}](incidents?incident={inc['id']})** · "
            f"{inc['severity']} · {', '.join(inc['services'])} · open for "
            f"{fmt_duration(inc['duration_s'])} since {time_html(inc['opened_at'])}",
            unsafe_allow_html=True,
        )


st.select_slider(
    "Range (event time, ending at the newest signal)",
    options=[5, 15, 30, 60, 180, 720],
    value=30,
    key="overview_minutes",
    format_func=lambda m: f"{m} min" if m < 60 else f"{m // 60} h",
)
live()
