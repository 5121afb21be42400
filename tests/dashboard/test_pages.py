"""Every page through `streamlit.testing` AppTest: against the seeded state folder (a real replay),
asserting what it shows, and against a state folder that does not exist (empty states that say
what to do, and nothing created)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from chaos.control import read_commands
from sinks.outputs.store_sink import record_row
from sinks.store import Store
from sre_space.records import SignalWindow
from tests.dashboard.seed import Seeded

pytestmark = pytest.mark.dashboard

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "dashboard" / "views"
PAGE_FILES = ["overview", "incidents", "memory", "chaos_lab", "audit", "backtests"]


def run_page(name: str, state: Path, **params: str) -> AppTest:
    """Run one page (or `app`) against `state`, with optional query parameters."""
    path = ROOT / "dashboard" / "app.py" if name == "app" else PAGES / f"{name}.py"
    at = AppTest.from_file(str(path), default_timeout=60)
    at.session_state["state_dir"] = str(state)
    at.session_state["refresh_s"] = 0  # no timers in tests
    for key, value in params.items():
        at.query_params[key] = value
    main = sys.modules["__main__"]
    try:
        at.run()
    finally:
        # AppTest leaves the page installed as `__main__`; a process pool spawned later in this
        # process (the backtest suite) would then run the page in every worker.
        sys.modules["__main__"] = main
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    """Every text a page shows (markdown, captions, infos, codes, metrics, headings)."""
    parts: list[str] = []
    for group in (at.title, at.header, at.subheader, at.markdown, at.caption, at.info, at.code):
        parts += [str(e.value) for e in group]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    parts += [str(e.value) for e in at.success]
    return "\n".join(parts)


def frames(at: AppTest) -> str:
    """Every dataframe's content as text."""
    return "\n".join(str(d.value.to_string()) for d in at.dataframe)


def metric(at: AppTest, label: str) -> str:
    """A metric's value by label."""
    return next(str(m.value) for m in at.metric if m.label == label)


# ------------------------------------------------------------------------------------- seeded


def test_app_entry_runs_overview_with_sidebar(seeded: Seeded) -> None:
    at = run_page("app", seeded.state)
    assert at.text_input(key="state_dir").value == str(seeded.state)
    assert at.selectbox(key="refresh_s").value == 0
    assert "Overview" in texts(at)
    assert metric(at, "Open incidents") == str(len(seeded.open_ids))


def test_overview(seeded: Seeded) -> None:
    at = run_page("overview", seeded.state)
    shown = texts(at)
    assert metric(at, "Open incidents") == str(len(seeded.open_ids)) == "1"
    assert metric(at, "Dead letters") == "0"
    assert metric(at, "Conversion: checkout").endswith("%")  # the site's journey, by its name
    for iid in seeded.open_ids:
        assert iid in shown  # linked from the open incidents list
    assert seeded.resolved_id not in shown  # closed incidents are not listed as open
    assert "Event time up to" in shown and "2026-01-05 00:16:10 UTC" in shown
    table = frames(at)
    for service in ("cart", "checkout", "frontend", "payment"):
        assert service in table
    assert "checkout-conversion" in table and "availability" in table
    assert at.selectbox(key="overview_service").value == "cart"
    # the reader picks another service; the page keeps it
    at.selectbox(key="overview_service").select("checkout").run()
    assert not at.exception and at.selectbox(key="overview_service").value == "checkout"


def test_incidents_defaults_to_the_open_incident(seeded: Seeded) -> None:
    at = run_page("incidents", seeded.state)
    assert at.selectbox(key="incident_pick").value == seeded.open_ids[0]
    assert (
        at.query_params["incident"] == [seeded.open_ids[0]]
        or at.query_params["incident"] == seeded.open_ids[0]
    )
    table = frames(at)
    for iid in seeded.incident_ids:
        assert iid in table
    assert "resolved" in table and "open" in table
    # not yet diagnosed: the empty states explain who fills them
    assert "Not diagnosed yet" in texts(at)


def test_incident_detail_of_the_resolved_incident(seeded: Seeded) -> None:
    at = run_page("incidents", seeded.state, incident=seeded.resolved_id)
    assert at.selectbox(key="incident_pick").value == seeded.resolved_id
    shown = texts(at)
    assert f"## {seeded.resolved_id}" in shown and "green-badge[resolved]" in shown
    # timeline: every step of the loop
    table = frames(at)
    for step in ("opened", "diagnosed", "pull request opened", "approved", "merged", "deployed"):
        assert step in table, step
    assert "oncall@example.com" in table
    # anomalies with their signals, diagnosis ranked with evidence
    assert "checkout · memory" in shown
    assert "Root cause: checkout" in shown and "memory_leak" in shown
    assert "memory reached" in table  # evidence row
    # the trace waterfall of an exemplar trace from the archive
    assert int(metric(at, "Spans")) > 1
    assert at.selectbox(key=f"trace_{seeded.resolved_id}").value
    # the pull request and its diff, and the post-mortem
    codes = "\n".join(c.value for c in at.code)
    assert '-    newTag: "1.4.3"' in codes and '+    newTag: "1.4.2"' in codes
    assert "green-badge[merged]" in shown
    assert f"# Post-mortem: {seeded.postmortem_title}" in shown


def test_memory_search_and_outcomes(seeded: Seeded) -> None:
    at = run_page("memory", seeded.state)
    table = frames(at)
    assert seeded.resolved_id in table and seeded.pr_action in table and "preferred" in table
    assert seeded.postmortem_title in texts(at)
    at.text_input(key="memory_q").input("checkout runs out of memory after a deploy").run()
    assert not at.exception
    assert "similarity" in frames(at)
    results = at.dataframe[0].value
    assert results["incident"].iloc[0] == seeded.resolved_id


def test_chaos_shows_manifests(seeded: Seeded) -> None:
    at = run_page("chaos_lab", seeded.state)
    shown = texts(at)
    assert "No shop has reported" in shown  # no live shop in the test
    assert "Branch main at" in shown
    table = frames(at)
    assert "checkout" in table and "1.4.2" in table  # the merged fix is what main runs
    assert "Merge sre/" in table
    at.selectbox(key="chaos_manifest").select("checkout").run()
    assert "version: 1.4.2" in "\n".join(c.value for c in at.code)


def test_chaos_start_and_stop_write_the_control_file(empty_state: Path) -> None:
    at = run_page("chaos_lab", empty_state)
    at.selectbox(key="chaos_scenario").select("oom")
    at.number_input(key="chaos_intensity").set_value(2.0)
    at.number_input(key="chaos_minutes").set_value(5)
    next(b for b in at.button if b.label == "Start scenario").click().run()
    assert not at.exception
    assert "Sent oom (command 1)" in texts(at)
    next(b for b in at.button if b.label == "Stop every scenario").click().run()
    commands = read_commands(empty_state)
    assert [c["cmd"] for c in commands] == ["inject", "clear"]
    assert commands[0]["scenario"] == "oom" and commands[0]["intensity"] == 2.0
    assert commands[0]["duration_s"] == 300.0 and commands[0]["service"] is None
    assert "Commands sent (2)" in [e.label for e in at.expander]


def test_audit_log_filters(seeded: Seeded) -> None:
    at = run_page("audit", seeded.state)
    total = len(at.dataframe[0].value)
    assert f"{total} of {total} actions" in texts(at)
    assert set(at.dataframe[0].value["action"]) == set(seeded.actions)
    at.multiselect(key="audit_actor").select("fixer").run()
    shown = at.dataframe[0].value
    assert set(shown["actor"]) == {"fixer"} and len(shown) < total
    at.text_input(key="audit_text").input("approved by").run()
    assert set(at.dataframe[0].value["action"]) <= {"merge"}


def test_backtests(seeded: Seeded) -> None:
    at = run_page("backtests", seeded.state)
    assert metric(at, "Backtests") == "2"
    assert metric(at, "Faults") == "2"
    assert metric(at, "Detected") == "100%"
    assert metric(at, "Localization accuracy") == "100%"
    table = frames(at)
    assert "oom" in table and "errors" in table and "checkout" in table and "cart" in table
    at.selectbox(key="backtest_pick").select(seeded.backtests[0]).run()
    assert not at.exception and int(metric(at, "Incidents")) >= 1
    assert "ground truth: memory_leak in checkout" in texts(at)


# -------------------------------------------------------------------------------------- empty


@pytest.mark.parametrize(
    ("page", "hint"),
    [
        ("overview", "python -m chaos oom"),
        ("incidents", "No incidents yet — run `python -m chaos oom`"),
        ("memory", "No post-mortems yet"),
        ("chaos_lab", "sre-space init"),
        ("audit", "No actions audited yet"),
        ("backtests", "sre-space replay"),
        ("app", "No signals yet"),
    ],
)
def test_empty_state(page: str, hint: str, empty_state: Path) -> None:
    at = run_page(page, empty_state)
    assert hint in texts(at)
    assert not empty_state.exists()  # reading never creates the state folder


def cells(at: AppTest) -> list[str]:
    """Every cell of every dataframe, as text (links are the cells' URLs)."""
    return [str(v) for d in at.dataframe for v in d.value.to_numpy().ravel()]


def test_trace_ids_link_to_the_jaeger_ui(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    # The Brain's address of Jaeger (inside compose) is not what a browser opens.
    monkeypatch.setenv("SRE_JAEGER_URL", "http://jaeger:16686")
    monkeypatch.setenv("SRE_JAEGER_UI_URL", "http://localhost:16686/")
    ui = "http://localhost:16686/trace/"
    at = run_page("incidents", seeded.state, incident=seeded.resolved_id)
    trace = at.selectbox(key=f"trace_{seeded.resolved_id}").value
    links = [(e.proto.label, e.proto.url) for e in at.get("link_button")]
    assert ("Open in Jaeger", f"{ui}{trace}") in links
    shown, table = texts(at), cells(at)
    assert f"Trace [`{trace}`]({ui}{trace}) from the span archive" in shown  # the waterfall's
    evidence = [m for m in shown.splitlines() if m.startswith("Traces behind these facts:")]
    assert evidence and all(f"]({ui}" in m for m in evidence), shown
    # the post-mortem's trace ids too
    assert f"[`{trace}`]({ui}{trace})" in next(m for m in shown.split("\n# ") if "Post-mortem" in m)
    linked = [c for c in table if c.startswith(ui)]
    assert f"{ui}{trace}" in linked  # the table of every exemplar trace
    options = at.selectbox(key=f"trace_{seeded.resolved_id}").options
    assert {f"{ui}{t}" for t in options} <= set(linked)
    assert "http://jaeger:16686" not in shown + "".join(table)

    # The open incident's anomalies (cart throws) carry exemplars of their own.
    at = run_page("incidents", seeded.state, incident=seeded.open_ids[0])
    exemplars = [m for m in texts(at).splitlines() if m.startswith("Exemplar traces: ")]
    assert exemplars and all(f"]({ui}" in m for m in exemplars), texts(at)

    monkeypatch.delenv("SRE_JAEGER_UI_URL")  # falls back to SRE_JAEGER_URL
    at = run_page("incidents", seeded.state, incident=seeded.resolved_id)
    links = [(e.proto.label, e.proto.url) for e in at.get("link_button")]
    assert ("Open in Jaeger", f"http://jaeger:16686/trace/{trace}") in links

    monkeypatch.delenv("SRE_JAEGER_URL")  # not configured: ids as text, no links
    at = run_page("incidents", seeded.state, incident=seeded.resolved_id)
    assert not [e for e in at.get("link_button") if e.proto.label == "Open in Jaeger"]
    assert "/trace/" not in texts(at) + "".join(cells(at))
    assert trace in cells(at) and f"Trace `{trace}` from the span archive" in texts(at)


def _signal(**fields: object) -> SignalWindow:
    return SignalWindow.from_dict({"window_end": fields["window_start"], **fields})


def test_overview_links_signal_traces_and_shows_the_collectors_health(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRE_JAEGER_UI_URL", "http://localhost:16686")
    state = tmp_path / "state"
    state.mkdir()
    t0, t1 = "2026-01-05T00:00:00.000Z", "2026-01-05T00:00:10.000Z"
    failing, slow = "a" * 32, "b" * 32
    windows = [
        _signal(
            kind="span",
            window_start=t0,
            service="checkout",
            operation="POST /api/checkout",
            span_kind="server",
            count=10,
            errors=1,
            p95_ms=80.0,
            failing_trace_ids=[failing],
            slowest_trace_ids=[slow, failing],
        ),
        _signal(
            kind="span",
            window_start=t1,
            service="checkout",
            operation="POST /api/checkout",
            span_kind="server",
            count=10,
            p95_ms=70.0,
        ),
    ]
    for start, failed, sent in ((t0, 10.0, 100.0), (t1, 25.0, 180.0)):
        for name, value in (
            ("otelcol_exporter_send_failed_spans", failed),
            ("otelcol_exporter_sent_spans", sent),
        ):
            windows.append(
                _signal(
                    kind="pipeline",
                    window_start=start,
                    service="otelcol-sre",
                    metric=name,
                    value=value,
                )
            )
    with Store(state / "sre.db") as store:
        for w in windows:
            _table, rid, payload, ts, key = record_row(w)
            store.upsert("signals", rid, payload, ts=ts, key=key)

    at = run_page("overview", state)
    assert metric(at, "Collector: telemetry not passed on") == "25"
    health = next(d.value for d in at.dataframe if "collector" in d.value.columns)
    rows = {r["metric"]: (r["last"], r["change"]) for r in health.to_dict("records")}
    assert rows == {
        "otelcol_exporter_send_failed_spans": (25.0, 15.0),
        "otelcol_exporter_sent_spans": (180.0, 80.0),
    }
    assert health["metric"].iloc[0] == "otelcol_exporter_send_failed_spans"  # failures first
    traces = next(d.value for d in at.dataframe if "trace_kind" in d.value.columns)
    assert list(zip(traces["trace_kind"], traces["trace_id"], strict=True)) == [
        ("failing", f"http://localhost:16686/trace/{failing}"),
        ("slowest", f"http://localhost:16686/trace/{slow}"),
    ]
