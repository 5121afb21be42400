"""Incidents: the list, and one incident in full: timeline, anomalies, diagnosis, a trace
waterfall, the pull request with its diff, and the post-mortem."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from dashboard import charts, common
from dashboard import waterfall as wf
from dashboard.format import fmt_duration, fmt_utc, parse_time, state_badge, time_html
from dashboard.queries import incidents as q
from dashboard.queries import memory as memory_q

st.title("Incidents")


@st.fragment(run_every=common.refresh_seconds())
def incident_list() -> None:
    """The live list; the selection below is not disturbed by its refresh."""
    rows = q.incidents(common.store())
    if not rows:
        common.empty(
            "No incidents yet — run `python -m chaos oom` against the demo (or start a scenario "
            "on the Chaos page); Scout opens one here within a minute of the fault."
        )
        return
    df = pl.DataFrame(
        [
            {
                "id": r["id"],
                "state": r["state"],
                "severity": r["severity"],
                "services": ", ".join(r["services"]),
                "opened": parse_time(r["opened_at"]),
                "duration": fmt_duration(r["duration_s"]),
                "anomalies": r["anomalies"],
                "summary": r["summary"],
            }
            for r in rows
        ]
    )
    st.dataframe(
        df,
        hide_index=True,
        column_config={"opened": common.utc_column("opened (UTC)")},
    )


def _label(r: dict[str, Any]) -> str:
    return f"{r['id']} · {r['state']} · {', '.join(r['services'])}"


def detail(inc: dict[str, Any]) -> None:
    """One incident in full."""
    store = common.store()
    state = common.state_dir()
    st.markdown(
        f"## {inc['id']} {state_badge(inc['state'])}\n\n"
        f"**Severity** {inc['severity']} · **services** {', '.join(inc['services'])} · "
        f"**opened** {time_html(inc['opened_at'])} · **duration** "
        f"{fmt_duration(inc['duration_s'])}",
        unsafe_allow_html=True,
    )
    if inc["summary"]:
        st.caption(inc["summary"])

    anomalies = q.incident_anomalies(store, inc["anomaly_ids"])
    tabs = st.tabs(["Timeline", "Anomalies", "Diagnosis", "Trace", "Pull request", "Post-mortem"])
    with tabs[0]:
        _timeline(inc["id"])
    with tabs[1]:
        _anomalies(anomalies)
    with tabs[2]:
        _diagnosis(q.diagnosis(store, inc["id"]))
    with tabs[3]:
        _trace(inc, anomalies)
    with tabs[4]:
        _pull_requests(q.pull_requests(store, inc["id"]))
    with tabs[5]:
        md = memory_q.postmortem_markdown(store, state, inc["id"])
        if md is None:
            common.empty(
                "No post-mortem yet: Memory writes it when the incident is resolved or escalated."
            )
        else:
            st.markdown(common.link_trace_ids(md))


@st.fragment(run_every=common.refresh_seconds())
def _timeline(incident_id: str) -> None:
    items = q.timeline(common.store(), incident_id)
    if not items:
        st.caption("No events recorded for this incident yet.")
        return
    df = pl.DataFrame(
        [
            {
                "at": parse_time(i["at"]),
                "who": i["source"],
                "what": i["what"],
                "outcome": i["outcome"],
                "detail": i["detail"],
            }
            for i in items
        ]
    )
    st.dataframe(df, hide_index=True, column_config={"at": common.utc_column("at (UTC)")})


def _anomalies(anomalies: list[dict[str, Any]]) -> None:
    if not anomalies:
        st.caption("The incident's anomalies are not in the store.")
        return
    store = common.store()
    cols = st.columns(2)
    for i, a in enumerate(anomalies[:8]):
        with cols[i % 2], st.container(border=True):
            where = a.get("service") or a.get("cuj") or ""
            name = a.get("operation") or a.get("metric") or a.get("cuj") or ""
            st.markdown(
                f"**{where} · {name}** — `{a['signal']}` ({a['detector']}, {a.get('severity', '')})"
                f"  \nonset {time_html(a['onset'])} · observed {a['observed']:.4g} vs expected "
                f"{a['expected']:.4g} · score {a['score']:.3g}",
                unsafe_allow_html=True,
            )
            series = q.anomaly_series(store, a)
            if series.is_empty():
                st.caption("No windows of this series around the onset.")
            else:
                onset = parse_time(a["onset"])
                rules = [(onset, "onset")] if onset else []
                st.altair_chart(
                    charts.line_chart(
                        series,
                        y="value",
                        y_title=q.anomaly_field(a),
                        height=160,
                        rules=rules,
                        y_zero=False,
                    ),
                    width="stretch",
                )
            if a.get("detail"):
                st.caption(a["detail"])
            exemplars = list(a.get("exemplar_trace_ids") or [])[:3]
            if exemplars:
                st.markdown("Exemplar traces: " + common.trace_links(exemplars))


def _diagnosis(diag: dict[str, Any] | None) -> None:
    if diag is None:
        common.empty("Not diagnosed yet: the Brain writes its ranked answer here.")
        return
    if diag.get("abstained"):
        st.warning("The Brain abstained: the evidence was too thin to act on; a person decides.")
    # Span attributes reach this text: shown as plain text, never rendered as Markdown.
    st.code(diag.get("narrative") or diag.get("summary") or "", language=None, wrap_lines=True)
    st.caption(
        f"Incident window {fmt_utc(diag.get('window_start'))} → "
        f"{fmt_utc(diag.get('window_end'))}; baseline {fmt_utc(diag.get('baseline_start'))} "
        f"→ {fmt_utc(diag.get('baseline_end'))}"
    )
    cands = q.candidates_frame(diag)
    if cands.is_empty():
        return
    st.dataframe(
        cands,
        hide_index=True,
        column_config={
            "score": st.column_config.NumberColumn(format="%.2f"),
            "confidence": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0),
        },
    )
    for i, c in enumerate(diag.get("candidates") or [], start=1):
        with st.expander(
            f"#{i} {c.get('service')} — {c.get('fault_class')} ({len(c.get('evidence') or [])} facts)",
            expanded=i == 1,
        ):
            evidence = c.get("evidence") or []
            ev = pl.DataFrame(
                [
                    {
                        "kind": e.get("kind", ""),
                        "description": e.get("description", ""),
                        "baseline": e.get("baseline"),
                        "incident": e.get("incident"),
                        "trace": common.trace_cell(next(iter(e.get("trace_ids") or []), "")),
                    }
                    for e in evidence
                ],
                schema={
                    "kind": pl.String(),
                    "description": pl.String(),
                    "baseline": pl.Float64(),
                    "incident": pl.Float64(),
                    "trace": pl.String(),
                },
            )
            st.dataframe(
                ev, hide_index=True, column_config={"trace": common.trace_column("example trace")}
            )
            shown = list(dict.fromkeys(t for e in evidence for t in e.get("trace_ids") or []))
            if shown:
                st.markdown("Traces behind these facts: " + common.trace_links(shown[:10]))


def _trace(inc: dict[str, Any], anomalies: list[dict[str, Any]]) -> None:
    store = common.store()
    archive = common.paths().spans
    sources = q.exemplar_sources(store, inc, anomalies)
    ids = [r["trace_id"] for r in sources]
    if not ids:
        common.empty(
            "No exemplar trace for this incident: the flow keeps the slowest and failing trace "
            "ids per window; none were recorded for its services around the onset."
        )
        return
    key = f"trace_{inc['id']}"
    wanted = common.query_param("trace")
    if wanted in ids and key not in st.session_state:
        st.session_state[key] = wanted
    trace_id = st.selectbox(
        "Exemplar trace", ids[:20], key=key, help="Anomaly exemplars and diagnosis evidence first"
    )
    with st.expander(f"Every exemplar trace ({len(sources)})"):
        st.dataframe(
            pl.DataFrame(
                [
                    {"trace": common.trace_cell(r["trace_id"]), "source": r["source"]}
                    for r in sources
                ],
                schema={"trace": pl.String(), "source": pl.String()},
            ),
            hide_index=True,
            column_config={"trace": common.trace_column("trace")},
        )
    spans = q.trace_spans(archive, trace_id, around=inc["opened_at"])
    url = common.trace_url(trace_id)
    if url:
        st.link_button("Open in Jaeger", url, icon=":material/open_in_new:")
    if spans.is_empty():
        common.empty(
            f"Trace {trace_id} is not in the span archive ({archive}); it may have been sampled "
            "out or aged out of retention."
            + ("" if url else " Set SRE_JAEGER_UI_URL (or SRE_JAEGER_URL) to open it in Jaeger.")
        )
        return
    # The waterfall and the critical path below are this trace's.
    st.markdown(f"Trace {common.trace_links([trace_id])} from the span archive")
    rows = wf.waterfall_frame(spans)
    s = wf.waterfall_summary(rows)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Spans", s["spans"])
    m2.metric("Services", s["services"])
    m3.metric("Duration", f"{s['duration_ms']:.1f} ms")
    m4.metric("Failing spans", s["failing"])
    st.altair_chart(wf.waterfall_chart(rows), width="stretch")
    failing = rows.filter(pl.col("failing"))
    if failing.height:
        st.caption("Failing spans")
        st.dataframe(
            failing.select("service", "operation", "kind", "status", "duration_ms", "span_id"),
            hide_index=True,
        )
    st.caption("Critical path (time each span holds it)")
    st.dataframe(
        rows.filter(pl.col("critical") & (pl.col("critical_ms") > 0))
        .sort("critical_ms", descending=True)
        .select("service", "operation", "critical_ms", "self_ms", "duration_ms"),
        hide_index=True,
        column_config={
            c: st.column_config.NumberColumn(c.replace("_ms", " (ms)"), format="%.1f")
            for c in ("critical_ms", "self_ms", "duration_ms")
        },
    )


def _pull_requests(prs: list[dict[str, Any]]) -> None:
    if not prs:
        common.empty(
            "No pull request for this incident: the Fixer opens one when the diagnosis "
            "recommends an action the policy allows."
        )
        return
    for pr in prs:
        number = f"#{pr['number']} " if pr.get("number") else ""
        st.markdown(f"#### {number}{pr.get('title', '')}")
        st.markdown(
            f"{state_badge(str(pr.get('state', '')))} · `{pr.get('branch', '')}` · "
            f"{pr.get('forge', '')} forge · {pr.get('merge_mode', '')} · opened "
            f"{time_html(pr.get('created_at'))}"
            + (f" · merge `{str(pr['merge_sha'])[:12]}`" if pr.get("merge_sha") else "")
            + (f" · approved by {pr['approved_by']}" if pr.get("approved_by") else ""),
            unsafe_allow_html=True,
        )
        if pr.get("url", "").startswith("http"):
            st.link_button("Open pull request", pr["url"], icon=":material/open_in_new:")
        checks = pr.get("checks") or []
        if checks:
            st.dataframe(pl.DataFrame(checks), hide_index=True)
        if pr.get("diff"):
            st.code(pr["diff"], language="diff")
        with st.expander("Pull request body"):
            # The Fixer's body quotes untrusted text itself; still shown as text, not rendered.
            st.code(pr.get("body", ""), language="markdown", wrap_lines=True)


rows = q.incidents(common.store())
incident_list()
if rows:
    ids = [r["id"] for r in rows]
    by_id = {r["id"]: r for r in rows}
    chosen = common.query_param("incident")
    if chosen not in by_id:
        opened = q.open_incidents(rows)
        chosen = str(opened[0]["id"]) if opened else ids[0]
    if st.session_state.get("incident_pick") not in by_id:
        st.session_state["incident_pick"] = chosen
    pick = st.selectbox(
        "Incident",
        ids,
        key="incident_pick",
        format_func=lambda i: _label(by_id[i]),
    )
    # The selection is in the URL, so a link or a reload lands on the same incident.
    st.query_params["incident"] = pick
    detail(by_id[pick])
