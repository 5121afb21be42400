"""Memory: search past incidents and their post-mortems; how each automated fix turned out."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import common
from dashboard.format import fmt_duration, parse_time
from dashboard.queries import memory as q

st.title("Memory")
st.caption(
    "Post-mortems Memory wrote for resolved and escalated incidents, searchable by meaning "
    "(ChromaDB), and the outcome of every automated fix, which the Fixer uses to prefer what "
    "worked and avoid what failed."
)

store = common.store()
state = common.state_dir()
written = q.postmortems(store)

if "memory_q" not in st.session_state:
    st.session_state["memory_q"] = common.query_param("q") or ""
text = st.text_input(
    "Search past incidents",
    key="memory_q",
    placeholder="e.g. pods OOM killed after a deploy",
    help="Searches the post-mortem index (service, signals, fault class, evidence, fix).",
)
if text:
    st.query_params["q"] = text
    index = common.memory_index()
    results = q.search_memory(state, text, n=10, index=index) if index is not None else []
    if not results:
        common.empty(
            f"Nothing similar in the index at {common.paths().chroma}. Post-mortems are indexed when "
            "an incident is resolved or escalated."
        )
    else:
        st.dataframe(
            pl.DataFrame(
                [
                    {
                        "similarity": r["similarity"],
                        "incident": r["incident_id"],
                        "title": r["title"],
                        "fault class": r["fault_class"],
                        "services": ", ".join(r["services"]),
                        "fix": r["action"] or "(none)",
                        "outcome": r["outcome"],
                        "resolved": parse_time(r["resolved_at"]),
                    }
                    for r in results
                ]
            ),
            hide_index=True,
            column_config={
                "similarity": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0),
                "resolved": common.utc_column("resolved (UTC)"),
            },
        )

st.subheader("Outcome of each fix")
outcomes = q.fix_outcomes(store)
if not outcomes:
    common.empty(
        "No fix outcomes yet: they come from post-mortems. Run a scenario through the loop "
        "(`make demo`, then `python -m chaos oom`) and wait for the incident to resolve."
    )
else:
    st.dataframe(
        pl.DataFrame(outcomes),
        hide_index=True,
        column_config={
            "success_rate": st.column_config.ProgressColumn(
                "success", min_value=0.0, max_value=1.0, format="percent"
            )
        },
    )

st.subheader("Post-mortems")
if not written:
    common.empty(
        "No post-mortems yet — run `python -m chaos oom` against the demo and let the loop "
        "resolve it; Memory writes one per resolved or escalated incident."
    )
else:
    st.dataframe(
        pl.DataFrame(
            [
                {
                    "incident": p["incident_id"],
                    "title": p["title"],
                    "fault class": p["fault_class"],
                    "culprit": p["culprit"],
                    "fix": p["action"] or "(none)",
                    "outcome": p["outcome"],
                    "impact": fmt_duration(p["duration_s"]),
                    "failed requests": p["failed_requests"],
                    "resolved": parse_time(p["resolved_at"]),
                }
                for p in written
            ]
        ),
        hide_index=True,
        column_config={"resolved": common.utc_column("resolved (UTC)")},
    )
    ids = [p["incident_id"] for p in written]
    pick = st.selectbox("Read the post-mortem of", ids, key="memory_pick")
    md = q.postmortem_markdown(store, state, pick)
    with st.container(border=True):
        st.markdown(md or "_The Markdown file is missing._")
