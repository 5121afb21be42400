"""What every page shares: the state folder, the store handle, refresh, and time rendering.

Pages run either under `app.py` (st.navigation) or alone (`AppTest.from_file(page)`), so none of
this relies on the entry script having run: the state folder comes from the session, then from
`sre_space.paths.state_dir()` ($SRE_STATE_DIR, then ./state).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.format import time_html
from dashboard.queries.memory import memory_index as open_memory_index
from dashboard.queries.store import StoreReader, open_store
from sre_space.paths import StatePaths
from sre_space.paths import state_dir as resolve_state_dir

DEFAULT_REFRESH_S = 10
_HEX = re.compile(r"[0-9a-fA-F]{1,32}")
_NOT_ID = re.compile(r"[^0-9A-Za-z_-]")
# A code span holding exactly a trace id, not already a link's text.
_CODE_TRACE = re.compile(r"(?<!\[)`([0-9a-f]{32})`(?!\]\()")


def state_dir() -> Path:
    """The state folder this session reads."""
    return resolve_state_dir(st.session_state.get("state_dir"))


def paths() -> StatePaths:
    """The layout of the state folder this session reads."""
    return StatePaths(state_dir())


@st.cache_resource(show_spinner=False)
def _store(path: str, exists: bool) -> StoreReader:
    # Keyed on existence too: a database created after the first visit is picked up.
    del exists
    return open_store(path)


def store() -> StoreReader:
    """The state folder's store (shared by sessions), or an empty stand-in before it exists."""
    return _store(str(state_dir()), paths().db.exists())


@st.cache_resource(show_spinner=False)
def _memory_index(path: str, exists: bool) -> Any:
    del exists
    return open_memory_index(path)


def memory_index() -> Any:
    """The post-mortem index, opened once per state folder (ChromaDB clients are heavy)."""
    return _memory_index(str(state_dir()), paths().chroma.exists())


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
    st.markdown(f"**{label}:** {time_html(ts)}", unsafe_allow_html=True)


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
    """The Jaeger UI's base URL as a browser reaches it: `SRE_JAEGER_UI_URL`, else
    `SRE_JAEGER_URL` (the address the Brain uses, right when both see Jaeger alike); else None."""
    for name in ("SRE_JAEGER_UI_URL", "SRE_JAEGER_URL"):
        url = os.environ.get(name, "").strip().rstrip("/")
        if url:
            return url
    return None


def trace_url(trace_id: str) -> str | None:
    """The Jaeger UI's page of one trace, or None when Jaeger is not configured (or the id is
    not hex: ids come from telemetry and end up in Markdown and URLs)."""
    base = jaeger_url()
    if not base or not trace_id or not _HEX.fullmatch(trace_id):
        return None
    return f"{base}/trace/{trace_id}"


def trace_links(trace_ids: Sequence[str]) -> str:
    """Markdown for trace ids: links to the Jaeger UI when configured, else code spans."""
    parts = []
    for tid in trace_ids:
        url = trace_url(tid)
        parts.append(f"[`{tid}`]({url})" if url else f"`{_NOT_ID.sub('', tid)}`")
    return " · ".join(parts)


def link_trace_ids(markdown: str) -> str:
    """Markdown with each trace id in a code span (`` `<32 hex>` ``) linked to the Jaeger UI
    when it is configured (post-mortems quote their traces that way); unchanged otherwise."""
    if jaeger_url() is None:
        return markdown
    return _CODE_TRACE.sub(lambda m: f"[{m.group(0)}]({trace_url(m.group(1))})", markdown)


def trace_column(label: str) -> Any:
    """A table column of trace ids that links each to the Jaeger UI when it is configured
    (the cells then hold `{url}/trace/{id}`, shown as the id); plain text otherwise."""
    if jaeger_url() is None:
        return st.column_config.TextColumn(label)
    return st.column_config.LinkColumn(label, display_text=r".*/trace/([0-9a-fA-F]+)$")


def trace_cell(trace_id: str) -> str:
    """A `trace_column` cell: the trace's Jaeger UI URL when configured, else its id."""
    return trace_url(trace_id) or trace_id


def empty(message: str) -> None:
    """An empty state that says what to do next."""
    st.info(message, icon=":material/info:")


def query_param(name: str) -> str | None:
    """A query parameter's value (bookmarkable selections)."""
    value = st.query_params.get(name)
    return str(value) if value else None
