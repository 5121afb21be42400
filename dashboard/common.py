"""What every page shares: the state folder, the store handle, refresh, and time rendering.

Pages run either under `app.py` (st.navigation) or alone (`AppTest.from_file(page)`), so none of
this relies on the entry script having run: the state folder comes from the session, then from
`SRE_STATE_DIR`, then `./state`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import queries as q

DEFAULT_REFRESH_S = 10


def state_dir() -> Path:
    """The state folder this session reads."""
    value = st.session_state.get("state_dir") or os.environ.get("SRE_STATE_DIR") or "state"
    return Path(str(value))


@st.cache_resource(show_spinner=False)
def _store(path: str, exists: bool) -> q.StoreReader:
    # Keyed on existence too: a database created after the first visit is picked up.
    del exists
    return q.open_store(path)


def store() -> q.StoreReader:
    """The state folder's store (shared by sessions), or an empty stand-in before it exists."""
    folder = state_dir()
    return _store(str(folder), (folder / "sre.db").exists())


@st.cache_resource(show_spinner=False)
def _memory_index(path: str, exists: bool) -> Any:
    del exists
    return q.memory_index(path)


def memory_index() -> Any:
    """The post-mortem index, opened once per state folder (ChromaDB clients are heavy)."""
    folder = state_dir()
    return _memory_index(str(folder), (folder / "chroma").exists())


def refresh_seconds() -> float | None:
    """How often the live parts re-run (None: paused)."""
    value = st.session_state.get("refresh_s", DEFAULT_REFRESH_S)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = DEFAULT_REFRESH_S
    return seconds if seconds > 0 else None


def show_time(label: str, ts: str | None) -> None:
    """`label: <UTC time>` with the local time on hover."""
    st.markdown(f"**{label}:** {q.time_html(ts)}", unsafe_allow_html=True)


def utc_column(label: str) -> Any:
    """A table column for event times: shown in UTC, the local zone named in the header's help."""
    return st.column_config.DatetimeColumn(
        label,
        format="YYYY-MM-DD HH:mm:ss",
        timezone="UTC",
        help=f"UTC; local time here is {local_zone()}",
    )


def local_zone() -> str:
    """The dashboard machine's zone name and offset, e.g. `CET (UTC+0100)`."""
    now = datetime.now(UTC).astimezone()
    return now.strftime("%Z (UTC%z)")


def jaeger_url() -> str | None:
    """The Jaeger UI base URL when configured (`SRE_JAEGER_URL`)."""
    url = os.environ.get("SRE_JAEGER_URL", "").strip()
    return url.rstrip("/") or None


def empty(message: str) -> None:
    """An empty state that says what to do next."""
    st.info(message, icon=":material/info:")


def query_param(name: str) -> str | None:
    """A query parameter's value (bookmarkable selections)."""
    value = st.query_params.get(name)
    return str(value) if value else None


STATE_COLOURS = {
    "open": "red",
    "diagnosed": "orange",
    "mitigating": "orange",
    "verifying": "blue",
    "escalated": "violet",
    "resolved": "green",
    "recovered": "green",
    "merged": "green",
    "reverted": "red",
    "closed": "gray",
}


def state_badge(state: str) -> str:
    """Markdown for a coloured incident state."""
    return f":{STATE_COLOURS.get(state, 'gray')}-badge[{state}]"
