"""Unit tests of the dashboard's pure queries: hand-made rows with known answers, then the seeded
state folder (a real replay) for the shapes the other stages really write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboard import format as fmt
from dashboard import waterfall as wf
from dashboard.queries import audit as audit_q
from dashboard.queries import backtests as backtests_q
from dashboard.queries import incidents as incidents_q
from dashboard.queries import memory as memory_q
from dashboard.queries import overview as overview_q
from dashboard.queries import signals as signals_q
from dashboard.queries import store as store_q
from sinks.memory import gather
from sinks.store.sqlite import Store
from sre_space import timeutil
from sre_space.harness import chaos_lab
from sre_space.records import Incident, SignalWindow
from tests.dashboard.seed import Seeded

pytestmark = pytest.mark.dashboard

T0 = "2026-01-05T00:00:00.000Z"


def at(seconds: int) -> str:
    """An RFC 3339 time `seconds` after T0."""
    return timeutil.ns_to_rfc3339(timeutil.rfc3339_to_ns(T0) + seconds * timeutil.NS_PER_S)


def span(
    i: int, service: str, count: int, errors: int, p95: float, op: str = "GET /"
) -> SignalWindow:
    """A server span window number i (10 s windows)."""
    return SignalWindow(
        kind="span",
        service=service,
        operation=op,
        window_start=timeutil.rfc3339_to_ns(at(10 * i)),
        window_end=timeutil.rfc3339_to_ns(at(10 * i + 10)),
        count=count,
        errors=errors,
        error_rate=errors / count,
        p50_ms=p95 / 2,
        p95_ms=p95,
        p99_ms=p95 * 1.5,
        max_ms=p95 * 2,
        span_kind="server",
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "sre.db")


def put_signals(store: Store, windows: list[SignalWindow]) -> None:
    from sinks.outputs.store_sink import record_row

    rows = []
    for w in windows:
        _table, rid, payload, ts, key = record_row(w)
        rows.append((rid, payload, ts, key))
    store.upsert_many("signals", rows)


# ---------------------------------------------------------------------------------------- basics


def test_missing_database_is_empty_and_not_created(tmp_path: Path) -> None:
    folder = tmp_path / "nothing"
    reader = store_q.open_store(folder)
    assert isinstance(reader, store_q.EmptyStore)
    assert incidents_q.incidents(reader) == []
    assert signals_q.load_signals(reader).is_empty()
    assert backtests_q.backtests(folder) == []
    assert chaos_lab.commands(folder) == [] and chaos_lab.shop_status(folder) is None
    assert chaos_lab.manifests(folder)["exists"] is False
    assert memory_q.search_memory(folder, "anything") == []
    assert not folder.exists()


def test_time_formatting() -> None:
    assert fmt.fmt_utc("2026-01-05T00:03:50.000Z") == "2026-01-05 00:03:50 UTC"
    html = fmt.time_html("2026-01-05T00:03:50.000Z")
    assert ">2026-01-05 00:03:50 UTC</span>" in html and 'title="local: 2026-01-05' in html
    assert fmt.fmt_duration(45) == "45s" and fmt.fmt_duration(725) == "12m 5s"
    assert fmt.fmt_duration(3 * 3600 + 20 * 60) == "3h 20m" and fmt.fmt_duration(None) == "—"
    assert fmt.time_html(None) == "—" and fmt.parse_time("nonsense") is None


# --------------------------------------------------------------------------------------- signals


def test_service_series_sums_counts_and_keeps_the_worst_quantile(store: Store) -> None:
    put_signals(
        store,
        [
            span(0, "cart", 100, 2, 40.0, "GET /cart"),
            span(0, "cart", 50, 3, 90.0, "POST /cart"),
            span(1, "cart", 80, 0, 30.0, "GET /cart"),
            span(0, "payment", 10, 0, 200.0),
        ],
    )
    df = signals_q.load_signals(store, minutes=None)
    assert df.height == 4 and df.schema["start"] == pl.Datetime("us", "UTC")
    s = signals_q.service_series(df).filter(pl.col("service") == "cart").sort("start")
    assert s["requests"].to_list() == [150, 80]
    assert s["errors"].to_list() == [5, 0]
    assert s["error_rate"][0] == pytest.approx(5 / 150)
    assert s["p95_ms"].to_list() == [90.0, 30.0]
    lat = signals_q.latency_series(df, "payment")
    assert sorted(lat["quantile"].unique()) == ["p50_ms", "p95_ms", "p99_ms"]
    assert lat.filter(pl.col("quantile") == "p99_ms")["value"][0] == pytest.approx(300.0)


def test_load_signals_keeps_only_the_range_before_the_newest(store: Store) -> None:
    put_signals(store, [span(i, "cart", 10, 0, 5.0) for i in range(60)])  # 10 minutes
    assert (
        signals_q.load_signals(store, minutes=5).height == 30
    )  # the windows inside the last 5 min
    assert signals_q.load_signals(store, minutes=None).height == 60
    assert store_q.latest_ts(store) == at(600)


def test_slo_burn_and_budget_from_known_counts() -> None:
    slos, _ = overview_q.slo_specs(
        {"slos": {"objectives": {"avail": {"type": "availability", "objective": 0.99}}}}
    )
    # 60 windows of 1000 requests; 10 errors each (burn 1x) except the last 5 minutes at 50 (5x)
    rows = [span(i, "cart", 1000, 10 if i < 30 else 50, 10.0).to_dict() for i in range(60)]
    (row,) = overview_q.slo_status(rows, slos, short_s=300)
    assert row.slo == "avail" and row.subject == "cart" and row.events == 60_000
    assert row.bad == 30 * 10 + 30 * 50
    assert row.burn_short == pytest.approx(5.0)
    assert row.burn_long == pytest.approx((1800 / 60_000) / 0.01)
    # 10 minutes of traffic extrapolated to 30 days: 1800 bad of a 0.01 x 259.2M budget
    assert row.budget_remaining == pytest.approx(1 - 1800 / (0.01 * 60_000 * 6 * 24 * 30))
    assert row.status == "burning"


def test_default_slos_when_the_config_has_none() -> None:
    slos, scale = overview_q.slo_specs({})
    assert {s.name for s in slos} == {"availability", "latency"}
    assert scale == 1.0
    bad, _ = overview_q.slo_specs({"slos": {"objectives": {"x": {"type": "nope"}}}})
    assert {s.name for s in bad} == {"availability", "latency"}


# ------------------------------------------------------------------------------------- incidents


def _incident(state: str, event: str, updated: int, **kw: Any) -> Incident:
    return Incident(
        id="inc-1",
        fingerprint="cart/errors",
        state=state,  # type: ignore[arg-type]
        opened_at=timeutil.rfc3339_to_ns(at(100)),
        updated_at=timeutil.rfc3339_to_ns(at(updated)),
        services=["cart"],
        severity="major",
        anomaly_ids=["an-1"],
        event=event,
        **kw,
    )


def test_incidents_fold_events_and_measure_duration(store: Store) -> None:
    put_signals(store, [span(i, "cart", 10, 0, 5.0) for i in range(60)])
    for ev in (_incident("open", "opened", 100), _incident("diagnosed", "diagnosed", 130)):
        store.upsert(
            "incident_events",
            f"{ev.id}|{ev.event}",
            ev.to_dict(),
            ts=timeutil.ns_to_rfc3339(ev.updated_at),
            key=ev.id,
        )
    (row,) = incidents_q.incidents(store)
    assert row["state"] == "diagnosed" and row["open"]
    assert row["duration_s"] == 500.0  # still open: up to the newest signal (t=600)
    resolved = _incident("resolved", "resolved", 400)
    store.upsert(
        "incidents", "inc-1", resolved.to_dict(), ts=timeutil.ns_to_rfc3339(resolved.opened_at)
    )
    (row,) = incidents_q.incidents(store)
    assert row["state"] == "resolved" and not row["open"] and row["duration_s"] == 300.0
    assert incidents_q.open_incidents([row]) == []


def test_timeline_merges_events_and_actions_in_time_order(store: Store) -> None:
    ev = _incident("open", "opened", 100)
    store.upsert(
        "incident_events", "e1", ev.to_dict(), ts=timeutil.ns_to_rfc3339(ev.updated_at), key=ev.id
    )
    store.upsert(
        "actions",
        "a2",
        {"at": at(160), "actor": "fixer", "action": "merge", "reason": "checks passed"},
        ts=at(160),
        key="inc-1",
    )
    store.upsert(
        "actions",
        "a1",
        {"at": at(120), "actor": "responder", "action": "diagnose", "reason": "root cause"},
        ts=at(120),
        key="inc-1",
    )
    items = incidents_q.timeline(store, "inc-1")
    assert [i["what"] for i in items] == ["opened", "diagnosed", "merged"]
    assert [i["source"] for i in items] == ["scout", "responder", "fixer"]


def test_anomaly_series_and_field() -> None:
    assert (
        incidents_q.anomaly_field({"signal": "time_to_exhaustion", "kind": "metric"})
        == "utilization"
    )
    assert incidents_q.anomaly_field({"signal": "p95_ms", "kind": "span"}) == "p95_ms"
    assert incidents_q.anomaly_field({"signal": "burn", "kind": "cuj"}) == "conversion"
    a = {"kind": "span", "service": "cart", "operation": "GET /", "signal": "error_rate"}
    assert incidents_q.anomaly_key(a) == "span|cart|GET /"


def test_change_diff_and_candidates() -> None:
    diff = gather.change_diff(
        {"path": "services/cart.yaml", "old_text": "version: 1\n", "new_text": "version: 2\n"}
    )
    assert "--- a/services/cart.yaml" in diff and "-version: 1" in diff and "+version: 2" in diff
    assert gather.change_diff({}) == ""
    df = incidents_q.candidates_frame(
        {
            "candidates": [
                {"service": "cart", "fault_class": "bad_deploy", "score": 2, "confidence": 0.9}
            ]
        }
    )
    assert df.row(0, named=True)["rank"] == 1 and df["service"].to_list() == ["cart"]
    assert incidents_q.candidates_frame(None).is_empty()


def test_audit_filters() -> None:
    df = pl.DataFrame(
        {
            "at": [fmt.parse_time(at(i)) for i in range(3)],
            "actor": ["fixer", "responder", "fixer"],
            "action": ["merge", "verified", "refuse_action"],
            "incident": ["inc-1", "inc-1", "inc-2"],
            "outcome": ["done", "done", "refused"],
            "reason": ["checks passed", "3 healthy windows", "cool-down"],
            "inputs": ["{}", "{}", '{"service": "cart"}'],
        }
    )
    assert audit_q.filter_audit(df, actors=["fixer"]).height == 2
    assert audit_q.filter_audit(df, incident="inc-2")["action"].to_list() == ["refuse_action"]
    assert audit_q.filter_audit(df, text="CART").height == 1
    assert audit_q.filter_audit(df, outcomes=["done"], actions=["verified"]).height == 1


def test_backtest_reports_and_totals(tmp_path: Path) -> None:
    folder = tmp_path / "backtests" / "run1"
    folder.mkdir(parents=True)
    report = {
        "recordings": [
            {
                "recording": "a.jsonl.gz",
                "faults": [
                    {
                        "scenario": "oom",
                        "culprit": "checkout",
                        "detected": True,
                        "ttd_s": 30.0,
                        "incidents": ["i1"],
                        "culprit_in_services": True,
                    },
                    {
                        "scenario": "errors",
                        "culprit": "cart",
                        "detected": True,
                        "ttd_s": 50.0,
                        "incidents": ["i2"],
                        "culprit_in_services": False,
                    },
                    {
                        "scenario": "latency",
                        "culprit": "inventory",
                        "detected": False,
                        "ttd_s": None,
                        "incidents": [],
                        "culprit_in_services": False,
                    },
                ],
                "false_incidents": ["i9"],
            }
        ]
    }
    (folder / "report.json").write_text(json.dumps(report))
    (folder / "incidents.jsonl").write_text('{"id": "i1"}\n{"id": "i1"}\n{"id": "i2"}\n')
    (tmp_path / "backtests" / "broken").mkdir()
    (tmp_path / "backtests" / "broken" / "report.json").write_text("{not json")
    (b,) = backtests_q.backtests(tmp_path)
    assert b["name"] == "run1" and b["incidents"] == 2
    faults = backtests_q.backtest_faults([b])
    assert faults.height == 3 and faults["false_incidents"].to_list() == [1, 1, 1]
    totals = backtests_q.backtest_totals(faults)
    assert totals["recall"] == pytest.approx(2 / 3)
    assert totals["ttd_median_s"] == 40.0
    assert totals["localization"] == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------------- waterfall


def _span_row(
    sid: str,
    parent: str,
    service: str,
    op: str,
    start: int,
    end: int,
    *,
    error: bool = False,
    kind: int = 2,
) -> dict[str, Any]:
    return {
        "trace_id": "a" * 32,
        "span_id": sid,
        "parent_span_id": parent,
        "service": service,
        "service_version": "",
        "operation": op,
        "kind": kind,
        "status_code": 2 if error else 0,
        "http_status": 500 if error else 200,
        "rpc_grpc_status": -1,
        "start_ns": start * 1_000_000,
        "end_ns": end * 1_000_000,
        "duration_ns": (end - start) * 1_000_000,
        "is_error": error,
        "events": "",
    }


def test_waterfall_orders_the_tree_and_marks_failures_and_the_critical_path() -> None:
    spans = pl.DataFrame(
        [
            _span_row(
                "0000000000000003", "0000000000000001", "payment", "POST /pay", 20, 90, error=True
            ),
            _span_row("0000000000000001", "", "frontend", "GET /checkout", 0, 100),
            _span_row("0000000000000002", "0000000000000001", "cart", "GET /cart", 5, 15),
        ]
    ).with_columns(pl.col("kind").cast(pl.Int8), pl.col("status_code").cast(pl.Int8))
    rows = wf.waterfall_frame(spans)
    assert rows["service"].to_list() == ["frontend", "cart", "payment"]
    assert rows["depth"].to_list() == [0, 1, 1]
    assert rows["start_ms"].to_list() == [0.0, 5.0, 20.0]
    by = {r["service"]: r for r in rows.to_dicts()}
    assert by["payment"]["failing"] and by["payment"]["marker"] == "failing"
    # Jaeger's critical path: back from the last-finishing child (payment, 20-90 ms), then the
    # child that finished before it started (cart, 5-15 ms); the rest is frontend's own time.
    assert by["payment"]["critical_ms"] == pytest.approx(70.0)
    assert by["cart"]["critical_ms"] == pytest.approx(10.0)
    assert by["frontend"]["critical_ms"] == pytest.approx(20.0)
    assert by["payment"]["marker"] == "failing" and by["cart"]["marker"] == "critical path"
    s = wf.waterfall_summary(rows)
    assert s == {"spans": 3, "services": 3, "duration_ms": 100.0, "failing": 1, "critical": 3}
    assert wf.waterfall_frame(pl.DataFrame()).is_empty()
    wf.waterfall_chart(rows).to_dict()  # a valid Vega-Lite spec


# ------------------------------------------------------------------------------- seeded (replay)


def test_seeded_incidents_diagnosis_and_fix(seeded: Seeded) -> None:
    store = store_q.open_store(seeded.state)
    rows = incidents_q.incidents(store)
    assert sorted(r["id"] for r in rows) == seeded.incident_ids
    resolved = incidents_q.incident(store, seeded.resolved_id)
    assert resolved is not None and resolved["state"] == "resolved"
    assert seeded.culprit in resolved["services"]
    assert [r["id"] for r in incidents_q.open_incidents(rows)] == seeded.open_ids
    diag = incidents_q.diagnosis(store, seeded.resolved_id)
    assert incidents_q.candidates_frame(diag)["service"][0] == seeded.culprit == "checkout"
    (pr,) = incidents_q.pull_requests(store, seeded.resolved_id)
    assert pr["state"] == "merged" and pr["action"] == seeded.pr_action
    assert '-    newTag: "1.4.3"' in pr["diff"] and '+    newTag: "1.4.2"' in pr["diff"]
    whats = [i["what"] for i in incidents_q.timeline(store, seeded.resolved_id)]
    for step in (
        "opened",
        "diagnosed",
        "pull request opened",
        "merged",
        "deployed",
        "verified",
        "resolved",
    ):
        assert step in whats, step
    md = memory_q.postmortem_markdown(store, seeded.state, seeded.resolved_id)
    assert md is not None and seeded.resolved_id in md and "memory_leak" in md


def test_seeded_anomaly_series_and_exemplar_waterfall(seeded: Seeded) -> None:
    store = store_q.open_store(seeded.state)
    inc = incidents_q.incident(store, seeded.resolved_id)
    assert inc is not None
    anomalies = incidents_q.incident_anomalies(store, inc["anomaly_ids"])
    # The leak's anomalies lead; the OOM kill's failed checkouts (frontend errors, the journey's
    # drop) may join the same incident, as they do at the weekly shape's traffic.
    assert anomalies and anomalies[0]["service"] == "checkout"
    assert {"time_to_exhaustion", "utilization"} <= {
        a["signal"] for a in anomalies if a.get("service") == "checkout"
    }
    series = incidents_q.anomaly_series(store, anomalies[0])
    assert set(series["phase"]) == {"before onset", "after onset"}
    traces = incidents_q.exemplar_traces(store, inc, anomalies)
    spans = incidents_q.trace_spans(seeded.state / "spans", traces[0], around=inc["opened_at"])
    assert spans.height > 1 and set(spans["trace_id"]) == {traces[0]}
    rows = wf.waterfall_frame(spans)
    assert rows.height == spans.height and rows["critical"].any()
    # the critical-path times add up to the root span's duration
    root = rows.filter(pl.col("depth") == 0)
    assert root.height == 1
    assert rows["critical_ms"].sum() == pytest.approx(root["duration_ms"][0], rel=1e-6)
    assert incidents_q.trace_spans(seeded.state / "spans", "0" * 32).is_empty()


def test_seeded_overview_numbers(seeded: Seeded) -> None:
    store = store_q.open_store(seeded.state)
    df = signals_q.load_signals(store, minutes=None)
    assert df.height == seeded.signal_count
    shown = set(signals_q.service_series(df)["service"])
    assert {"cart", "checkout", "frontend", "payment"} <= shown <= set(seeded.services)
    assert not signals_q.conversion_series(df).is_empty()
    assert "checkout / memory" in set(signals_q.saturation_series(df)["series"])
    health = overview_q.pipeline_health(store, df)
    assert health["signals"] == seeded.signal_count and health["deadletters"] == 0
    slos, _ = overview_q.slo_specs({})
    status = overview_q.slo_status(overview_q.slo_rows(store, 60), slos)
    cart = next(r for r in status if r.slo == "availability" and r.subject == "cart")
    # the errors scenario (cart throws after a deploy) is burning cart's availability budget
    assert cart.burn_short > 1.0 and cart.status in ("burning", "breach")


def test_seeded_memory_audit_chaos_backtests(seeded: Seeded) -> None:
    store = store_q.open_store(seeded.state)
    found = memory_q.search_memory(seeded.state, "checkout memory leak after a deploy")
    assert found and found[0]["incident_id"] == seeded.resolved_id
    (outcome,) = memory_q.fix_outcomes(store)
    assert outcome["action"] == seeded.pr_action and outcome["worked"] == 1
    assert outcome["verdict"] == "preferred"
    audit = audit_q.audit_frame(store)
    assert set(audit["action"]) == set(seeded.actions)
    assert audit_q.filter_audit(audit, actors=["oncall@example.com"])["action"].to_list() == [
        "approved"
    ]
    info = chaos_lab.manifests(seeded.state)
    assert info["docs"]["checkout"]["version"] == "1.4.2"  # the merged fix is on main
    assert info["commits"][0]["subject"].startswith("Merge sre/")
    names = {s["name"] for s in chaos_lab.scenarios()}
    assert {"oom", "errors", "latency"} <= names
    reports = backtests_q.backtests(seeded.state)
    assert sorted(b["name"] for b in reports) == sorted(seeded.backtests)
    totals = backtests_q.backtest_totals(backtests_q.backtest_faults(reports))
    assert totals["faults"] == 2 and totals["recall"] == 1.0 and totals["localization"] == 1.0
