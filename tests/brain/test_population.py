"""Population diagnosis on the seeded synthetic shop: every fault class x 3 seeds, spans-only cases,
healthy traffic, abstention, attribute pinpointing and memory-informed remediations."""

from __future__ import annotations

import polars as pl
import pytest

from sinks.brain.config import DiagnosisConfig
from sinks.brain.engine import analyze
from sinks.brain.pinpoint import pinpoint
from sinks.brain.population import analyze_population
from sre_space.actions import ACTIONS
from tests.brain.synth import BASELINE, EXPECTED, INCIDENT, generate

SEEDS = (1, 2, 3)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fault", sorted(EXPECTED))
def test_top1_culprit_and_fault_class(fault: str, seed: int) -> None:
    shop = generate(fault, seed)
    result = analyze(shop.spans, INCIDENT, BASELINE, metrics=shop.metrics, commits=shop.commits)
    d = result.diagnosis
    service, fault_class = EXPECTED[fault]
    assert not d.abstained, d.summary
    top = d.candidates[0]
    assert (top.service, top.fault_class) == (service, fault_class), d.summary
    assert top.actions and set(top.action_names) <= set(ACTIONS)
    assert (top.evidence and any(e.trace_ids for e in top.evidence)) or fault in (
        "queue_lag",
        "cpu_saturation",
    )
    # Every example trace id is a real trace of the incident window.
    incident_ids = set(
        shop.spans.filter(pl.col("start_ns") >= INCIDENT[0]).get_column("trace_id").to_list()
    )
    for ev in top.evidence:
        assert set(ev.trace_ids) <= incident_ids


@pytest.mark.parametrize("fault", ["errors", "latency", "dependency_timeout", "conversion"])
def test_span_only_faults_need_no_metrics_or_commits(fault: str) -> None:
    shop = generate(fault, 7)
    d = analyze(shop.spans, INCIDENT, BASELINE).diagnosis
    assert (d.candidates[0].service, d.candidates[0].fault_class) == EXPECTED[fault], d.summary


def test_dependency_timeout_names_the_hanging_callee_not_the_caller() -> None:
    shop = generate("dependency_timeout", 2)
    d = analyze(shop.spans, INCIDENT, BASELINE).diagnosis
    assert d.candidates[0].service == "shipping"
    assert d.candidates[0].operation == "POST /quote"
    assert "callers timed out while it was still running" in d.summary


def test_conversion_names_the_flag_and_the_segment_without_any_5xx() -> None:
    shop = generate("conversion", 3)
    incident = shop.spans.filter(pl.col("start_ns") >= INCIDENT[0])
    assert not incident.filter(pl.col("service") == "payment").get_column("is_error").any()
    d = analyze(shop.spans, INCIDENT, BASELINE, commits=shop.commits).diagnosis
    top = d.candidates[0]
    assert (top.attribute, top.attribute_value) == ("feature_flag", "new_pricing_rules=on")
    assert any(
        e.kind == "attribute" and e.description.startswith("app.loyalty_level=gold")
        for e in top.evidence
    )
    assert "app.loyalty_level=gold" in d.summary
    assert top.action_names[0] == "set_feature_flag"


def test_errors_pinpoint_the_new_version_and_rollback() -> None:
    shop = generate("errors", 1)
    d = analyze(shop.spans, INCIDENT, BASELINE, commits=shop.commits).diagnosis
    top = d.candidates[0]
    assert (top.attribute, top.attribute_value) == ("service.version", "2.1.0")
    assert top.action_names[0] == "rollback_version"


@pytest.mark.parametrize("seed", SEEDS)
def test_healthy_traffic_abstains(seed: int) -> None:
    shop = generate(None, seed)
    d = analyze(
        shop.spans, INCIDENT, BASELINE, metrics=shop.metrics, commits=shop.commits
    ).diagnosis
    assert d.abstained
    assert "Escalating to a person" in d.summary


def test_thin_evidence_abstains_and_still_shows_the_best_guess() -> None:
    shop = generate("errors", 1, traces_per_window=10)
    d = analyze(shop.spans, INCIDENT, BASELINE, commits=shop.commits).diagnosis
    assert d.abstained
    assert d.summary.startswith("Not sure")
    assert d.candidates and d.candidates[0].service == "checkout"


def test_abstains_below_the_confidence_threshold() -> None:
    shop = generate("errors", 1)
    cfg = DiagnosisConfig(abstain_below=1.0, weight_errors=0.3)
    d = analyze(shop.spans, INCIDENT, BASELINE, cfg=cfg).diagnosis
    assert d.abstained and "below" in d.summary


def test_pinpoint_finds_the_segment_and_respects_support() -> None:
    shop = generate("conversion", 1)
    cfg = DiagnosisConfig.from_settings()  # the shop's site config (conftest)
    _report, inc, base = analyze_population(shop.spans, INCIDENT, BASELINE, cfg)
    found = pinpoint(inc, base, service="payment", target="failure", cfg=cfg)
    assert found[0].attribute == "app.loyalty_level" and found[0].value == "gold"
    assert found[0].risk_ratio > 10 and found[0].share_of_hits > 0.9
    strict = DiagnosisConfig(pinpoint_min_support=10_000)
    assert pinpoint(inc, base, service="payment", target="failure", cfg=strict) == []


def test_origin_counts_are_per_trace_and_exclude_dependent_failures() -> None:
    shop = generate("dependency_timeout", 1)
    report, _inc, _base = analyze_population(shop.spans, INCIDENT, BASELINE)
    top = report.origins.row(0, named=True)
    assert (top["blame_service"], top["locus_operation"]) == ("shipping", "POST /quote")
    assert top["timeout_share"] == 1.0
    assert top["inc_traces"] <= report.incident_traces


def test_memory_of_a_failed_fix_reorders_remediations() -> None:
    shop = generate("oom", 1)
    similar = [
        {"fault_class": "oom", "action": "raise_memory_limit", "outcome": "worked"},
        {"fault_class": "memory_leak", "action": "rollback_version", "outcome": "failed"},
    ]
    d = analyze(
        shop.spans, INCIDENT, BASELINE, metrics=shop.metrics, commits=shop.commits, similar=similar
    ).diagnosis
    # The rollback failed before and is dropped; the deploy's own commit is still a different undo
    # to try before more memory.
    assert d.candidates[0].action_names == ["revert_commit", "raise_memory_limit", "restart"]
    worked = [{"fault_class": "memory_leak", "action": "raise_memory_limit", "outcome": "worked"}]
    d = analyze(
        shop.spans, INCIDENT, BASELINE, metrics=shop.metrics, commits=shop.commits, similar=worked
    ).diagnosis
    assert d.candidates[0].action_names[0] == "raise_memory_limit"


def test_diagnosis_is_deterministic_and_serialisable() -> None:
    shop = generate("oom", 5)
    a = analyze(shop.spans, INCIDENT, BASELINE, metrics=shop.metrics, commits=shop.commits)
    b = analyze(shop.spans, INCIDENT, BASELINE, metrics=shop.metrics, commits=shop.commits)
    assert a.diagnosis.to_json() == b.diagnosis.to_json()
    assert '"schema":"sre.diagnosis/v1"' in a.diagnosis.to_json()


def test_spans_delivered_twice_give_the_diagnosis_of_spans_delivered_once() -> None:
    # At-least-once delivery: the incident window's requests all arrive a second time (an
    # exporter's retry). Kept twice, every parent-child join would multiply.
    shop = generate("latency", 3)
    once = analyze(shop.spans, INCIDENT, BASELINE).diagnosis
    again = shop.spans.filter(pl.col("start_ns") >= INCIDENT[0])
    twice = analyze(pl.concat([shop.spans, again]), INCIDENT, BASELINE).diagnosis
    assert again.height > 1000
    assert twice.to_json() == once.to_json()


def test_actions_follow_the_evidence_of_load_and_timeouts() -> None:
    hang = generate("dependency_timeout", 1)
    top = analyze(hang.spans, INCIDENT, BASELINE).diagnosis.candidates[0]
    # The stuck service restarts; its caller (from the call graph, not the prose) gets a breaker.
    assert [(a.action, a.service) for a in top.actions[:3]] == [
        ("restart", "shipping"),
        ("enable_circuit_breaker", "checkout"),
        ("raise_timeout", "checkout"),
    ]
    lag = generate("queue_lag", 1)
    top = analyze(lag.spans, INCIDENT, BASELINE, metrics=lag.metrics).diagnosis.candidates[0]
    scale = top.actions[0]
    assert scale.action == "scale_replicas"
    # Arrivals outrun the consumers and a backlog waits: demand is well over their capacity.
    assert float(scale.params["utilization"]) > 1.5
    cited = {e.id: e.kind for e in top.evidence}
    assert "resource_lag" in {cited[i] for i in scale.evidence}


def test_trace_level_prefixes_are_the_sites_choice() -> None:
    from sinks.brain.population import _fill_trace_level

    spans = pl.DataFrame(
        {
            "trace_id": ["t1", "t1", "t2"],
            "tenant.tier": ["gold", "", ""],
            "http.route": ["/pay", "", ""],
        }
    )
    attrs = ("tenant.tier", "http.route")
    default = _fill_trace_level(spans, DiagnosisConfig(pinpoint_attributes=attrs))
    assert default.get_column("tenant.tier").to_list() == ["gold", "", ""]
    site = DiagnosisConfig(pinpoint_attributes=attrs, trace_level_prefixes=("tenant.",))
    filled = _fill_trace_level(spans, site)
    # The request's tier reaches its other span, not another trace; a route stays per span.
    assert filled.get_column("tenant.tier").to_list() == ["gold", "gold", ""]
    assert filled.get_column("http.route").to_list() == ["/pay", "", ""]
    with pytest.raises(ValueError, match="trace_level_prefix"):
        DiagnosisConfig.from_mapping({"trace_level_prefix": ["tenant."]})
