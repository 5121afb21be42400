"""SRE-Space control center: `streamlit run dashboard/app.py` (or `sre-space dashboard`).

The entry script only sets the page up, draws the sidebar (state folder, refresh) and hands over to
`st.navigation`; each page lives in `dashboard/views/` and reads the stores on its own.

The folder is not called `pages/`: Streamlit treats a `pages/` folder next to the entry script as a
legacy multipage app until the entry script has run once in the process, so the first visit to a
bookmarked `/incidents` on a fresh server would run that page alone, without this script.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repository root.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard import common  # noqa: E402

_PAGES = Path(__file__).resolve().parent / "views"

st.set_page_config(
    page_title="SRE-Space",
    page_icon=":material/monitor_heart:",
    layout="wide",
    initial_sidebar_state="expanded",
)

pages = [
    st.Page(_PAGES / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page(_PAGES / "incidents.py", title="Incidents", icon=":material/emergency:"),
    st.Page(_PAGES / "memory.py", title="Memory", icon=":material/psychology:"),
    # Not `chaos.py`: a page's own folder can be on sys.path (AppTest puts it there), where a
    # `chaos.py` would shadow the chaos package.
    st.Page(_PAGES / "chaos_lab.py", title="Chaos", icon=":material/bolt:", url_path="chaos"),
    st.Page(_PAGES / "audit.py", title="Audit log", icon=":material/receipt_long:"),
    st.Page(_PAGES / "backtests.py", title="Backtests", icon=":material/science:"),
]
page = st.navigation(pages)

with st.sidebar:
    st.markdown("### SRE-Space")
    if "state_dir" not in st.session_state:
        st.session_state["state_dir"] = str(common.state_dir())
    st.text_input(
        "State folder",
        key="state_dir",
        help="Where sre.db, spans/, chroma/, gitops/ and backtests/ live ($SRE_STATE_DIR).",
    )
    st.selectbox(
        "Refresh every",
        options=[0, 5, 10, 30, 60],
        index=2,
        key="refresh_s",
        format_func=lambda s: "paused" if s == 0 else f"{s} s",
        help="Live parts re-run on their own; your selections and scroll position stay put.",
    )
    if st.button("Refresh now", icon=":material/refresh:", width="stretch"):
        st.rerun()
    folder = common.state_dir()
    if not folder.exists():
        st.warning(f"{folder} does not exist yet: run `sre-space init` or `make demo`.")
    st.caption(f"Times are UTC; hover a time for local time ({common.local_zone()}).")

page.run()
