"""Audit log: every automated decision with its reason and inputs, filterable."""

from __future__ import annotations

import streamlit as st

from dashboard import common
from dashboard.queries import audit as q

st.title("Audit log")
st.caption("Every action SRE-Space decided on its own, or refused, with the reason it gave.")


@st.fragment(run_every=common.refresh_seconds())
def audit() -> None:
    """The filters keep their values across refreshes (widget keys in the session)."""
    df = q.audit_frame(common.store())
    if df.is_empty():
        common.empty(
            "No actions audited yet. The Fixer and the responder log every decision here once an "
            "incident is handled — run `python -m chaos oom` against the demo."
        )
        return
    c1, c2, c3, c4 = st.columns([1, 1, 1, 1])
    actors = c1.multiselect("Actor", sorted(set(df["actor"])), key="audit_actor")
    actions = c2.multiselect("Action", sorted(set(df["action"])), key="audit_action")
    outcomes = c3.multiselect("Outcome", sorted(set(df["outcome"])), key="audit_outcome")
    if "audit_incident" not in st.session_state:
        st.session_state["audit_incident"] = common.query_param("incident") or ""
    incident = c4.text_input("Incident", key="audit_incident", placeholder="inc-…")
    text = st.text_input("Search reasons and inputs", key="audit_text")
    shown = q.filter_audit(
        df, actors=actors, actions=actions, incident=incident, outcomes=outcomes, text=text
    )
    st.caption(f"{shown.height} of {df.height} actions")
    st.dataframe(
        shown,
        hide_index=True,
        column_config={
            "at": common.utc_column("at (UTC)"),
            "reason": st.column_config.TextColumn(width="large"),
        },
    )
    st.download_button(
        "Download CSV",
        shown.with_columns(shown["at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(),
        file_name="sre-space-audit.csv",
        mime="text/csv",
        icon=":material/download:",
    )


audit()
