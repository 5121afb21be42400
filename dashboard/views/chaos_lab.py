"""Chaos: start and stop fault scenarios in the running demo shop, and see the manifests it runs.

The one page that writes: it appends commands to the shop's control file through
`sre_space.harness.chaos_lab`, exactly as `python -m chaos NAME` and `python -m chaos stop` do.
"""

from __future__ import annotations

import polars as pl
import streamlit as st
import yaml

from dashboard import common
from dashboard.format import parse_time, time_html
from sre_space.harness import chaos_lab

st.title("Chaos")
state = common.state_dir()


@st.fragment(run_every=common.refresh_seconds())
def shop_status() -> None:
    """What the shop last reported, and the commands sent to it."""
    status = chaos_lab.shop_status(state)
    if status is None:
        common.empty(
            f"No shop has reported in {state}. Start one with `make demo` (or "
            "`python -m chaos shop`); commands sent now wait in the control file until it runs."
        )
    else:
        active = status.get("injections") or []
        st.markdown(
            f"Shop event time {time_html(status.get('time'))} · GitOps main at "
            f"`{str(status.get('head', ''))[:12]}` · **{len(active)} active injection(s)**",
            unsafe_allow_html=True,
        )
        if active:
            st.dataframe(pl.DataFrame(active), hide_index=True)
        for err in status.get("manifest_errors") or []:
            st.error(f"Invalid manifest: {err}")
    commands = chaos_lab.commands(state)
    if commands:
        with st.expander(f"Commands sent ({len(commands)})"):
            st.dataframe(
                pl.DataFrame(
                    [
                        {
                            "id": c["id"],
                            "cmd": c.get("cmd", ""),
                            "scenario": c.get("scenario") or "",
                            "service": c.get("service") or "",
                            "intensity": c.get("intensity"),
                            "duration_s": c.get("duration_s"),
                            "tag": c.get("tag") or "",
                        }
                        for c in commands
                    ]
                ),
                hide_index=True,
            )


flash = st.session_state.pop("chaos_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")
shop_status()

scenarios = chaos_lab.scenarios()
by_name = {s["name"]: s for s in scenarios}
info = chaos_lab.manifests(state)
services = sorted(info["docs"])

st.subheader("Inject a fault")
with st.form("inject"):
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
    name = c1.selectbox(
        "Scenario",
        list(by_name),
        key="chaos_scenario",
        format_func=lambda n: f"{n} — {by_name[n]['fault_class']}",
    )
    target = c2.selectbox(
        "Target service",
        ["(scenario default)", *services],
        key="chaos_service",
        help="Default: the scenario's own target",
    )
    intensity = c3.number_input(
        "Intensity", min_value=0.1, max_value=10.0, value=1.0, step=0.5, key="chaos_intensity"
    )
    minutes = c4.number_input(
        "Minutes (0: until stopped)", min_value=0, max_value=720, value=0, key="chaos_minutes"
    )
    st.caption(by_name[name]["summary"] if name in by_name else "")
    start = st.form_submit_button("Start scenario", type="primary", icon=":material/bolt:")
if start:
    service = None if target == "(scenario default)" else target
    cid = chaos_lab.inject(
        state,
        name,
        service=service,
        intensity=float(intensity),
        duration_s=float(minutes) * 60 if minutes else None,
    )
    # Rerun so the status above (drawn before this click was handled) shows the new command.
    st.session_state["chaos_flash"] = (
        f"Sent {name} (command {cid}) to the shop through {chaos_lab.control_file(state)}."
    )
    st.rerun()

if st.button("Stop every scenario", icon=":material/stop_circle:", key="chaos_stop"):
    cid = chaos_lab.stop_all(state)
    st.session_state["chaos_flash"] = f"Sent stop (command {cid})."
    st.rerun()

with st.expander("Scenarios"):
    st.dataframe(pl.DataFrame(scenarios), hide_index=True)

st.subheader("Current manifests")
if not info["exists"]:
    common.empty(
        f"No GitOps repository at {common.paths().gitops} — run `sre-space init` (or `make demo`)."
    )
else:
    for err in info["errors"]:
        st.error(err)
    st.caption(f"Branch main at `{info['head'][:12]}`, {len(services)} services")
    if services:
        overview = pl.DataFrame(
            [
                {
                    "service": s,
                    "version": str(d.get("version", "")),
                    "replicas": d.get("replicas"),
                    "memory MiB": (d.get("resources") or {}).get("memory_limit_mib"),
                    "cpu m": (d.get("resources") or {}).get("cpu_limit_millicores"),
                    "timeout ms": (d.get("timeouts") or {}).get("downstream_ms"),
                    "breaker": d.get("circuit_breaker"),
                    "flags on": ", ".join(
                        k for k, v in (d.get("feature_flags") or {}).items() if v
                    ),
                }
                for s, d in sorted(info["docs"].items())
            ]
        )
        st.dataframe(overview, hide_index=True)
        pick = st.selectbox("Desired state (as main renders)", services, key="chaos_manifest")
        st.code(yaml.safe_dump(info["docs"][pick], sort_keys=False), language="yaml")
    if info["commits"]:
        st.caption("Recent commits on main")
        st.dataframe(
            pl.DataFrame(info["commits"]).with_columns(
                pl.col("at").map_elements(parse_time, return_dtype=pl.Datetime("us", "UTC"))
            ),
            hide_index=True,
            column_config={"at": common.utc_column("at (UTC)")},
        )
