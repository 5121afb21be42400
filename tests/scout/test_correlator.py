"""Correlation: one incident per problem through the call graph; flapping, reopening, silences."""

from __future__ import annotations

import random

import pytest

from operators.scout.detect.events import ChangeEvent, Detection
from operators.scout.incidents.config import IncidentsConfig, load_incidents
from operators.scout.incidents.correlator import Correlator, journey_services
from operators.scout.incidents.lifecycle import InvalidTransition, apply_state
from sre_space.records import Incident
from sre_space.timeutil import ns_to_rfc3339
from tests.scout.helpers import anomaly, cleared
from tests.scout.synth import EDGES, JOURNEYS, at, window_bounds


def _run(c: Correlator, script: dict[int, list[Detection]], n: int) -> list[Incident]:
    out: list[Incident] = []
    for i in range(n):
        out += c.process(window_bounds(i)[1], script.get(i, []), EDGES)
    return out


def _events(out: list[Incident]) -> list[tuple[str, str]]:
    return [(e.event, e.id) for e in out]


def test_caller_errors_and_callee_saturation_are_one_incident() -> None:
    c = Correlator(IncidentsConfig(), JOURNEYS)
    script = {
        1: [anomaly(1, "checkout", "error_rate")],
        2: [
            anomaly(
                2,
                "payment",
                "utilization",
                detector="baseline",
                kind="metric",
                metric_name="memory",
            )
        ],
    }
    out = _run(c, script, 4)
    assert [e.event for e in out] == ["opened", "updated"]
    assert out[0].id == out[1].id
    assert out[1].services == ["checkout", "payment"]
    # payment is called by checkout: it is the root; the classes are errors and saturation
    assert out[1].fingerprint == "payment/errors,saturation"
    assert out[1].severity == "minor"


def test_unrelated_symptoms_are_two_incidents() -> None:
    c = Correlator(IncidentsConfig(), JOURNEYS)
    script = {
        1: [anomaly(1, "payment", "error_rate")],
        2: [anomaly(2, "recommendation", "p95_ms", detector="baseline")],  # a sibling branch
    }
    out = _run(c, script, 4)
    assert [e.event for e in out] == ["opened", "opened"]
    assert out[0].id != out[1].id


def test_journey_anomaly_joins_the_incident_of_a_service_it_reaches() -> None:
    c = Correlator(IncidentsConfig(), JOURNEYS)
    script = {
        1: [anomaly(1, "database", "p95_ms", detector="baseline")],
        2: [anomaly(2, None, "conversion", kind="cuj", cuj_name="checkout")],
        3: [anomaly(3, None, "value", kind="pipeline", metric_name="watermark_delay_s")],
    }
    out = _run(c, script, 5)
    assert [e.event for e in out] == ["opened", "updated", "opened"]
    assert out[1].id == out[0].id and "payment" in out[1].services
    assert out[2].services == ["sre-space"]


def test_flapping_does_not_open_a_new_incident_and_return_reopens() -> None:
    cfg = IncidentsConfig(recovery=30, cooldown=900)
    c = Correlator(cfg, JOURNEYS)
    a1 = anomaly(1, "payment", id="a1")
    a2 = anomaly(6, "payment", id="a2")
    a3 = anomaly(40, "payment", "p95_ms", id="a3", detector="baseline")
    script = {
        1: [a1],
        4: [cleared(4, "a1")],
        6: [a2],  # back before recovery: same incident, nothing new to say
        9: [cleared(9, "a2")],
        40: [a3],  # back after recovery, within the cool-down: reopens
    }
    out = _run(c, script, 45)
    events = [e.event for e in out]
    assert events == ["opened", "recovered", "reopened"]
    assert len({e.id for e in out}) == 1
    rec = out[1]
    assert rec.recovered_at == window_bounds(9)[1]  # the last clear
    assert rec.updated_at == window_bounds(12)[1]  # 30 s later
    assert out[2].recovered_at is None and out[2].state == "open"
    assert out[2].anomaly_ids == ["a1", "a2", "a3"]


def test_after_the_cooldown_a_new_incident_opens() -> None:
    c = Correlator(IncidentsConfig(recovery=30, cooldown=120), JOURNEYS)
    script = {1: [anomaly(1, "payment", id="a1")], 2: [cleared(2, "a1")]}
    script[30] = [anomaly(30, "payment", id="a2")]
    out = _run(c, script, 32)
    assert [e.event for e in out] == ["opened", "recovered", "opened"]
    assert out[0].id != out[2].id
    assert c.snapshot()["incidents"].keys() == {out[2].id}  # the old one was pruned


def test_silence_and_maintenance_suppress() -> None:
    cfg = load_incidents(
        {
            "incidents": {
                "silences": [{"service": "recommendation", "signal": "p9*"}],
                "maintenance": [
                    {
                        "services": ["payment"],
                        "starts": ns_to_rfc3339(at(0)),
                        "ends": ns_to_rfc3339(at(10)),
                    }
                ],
            }
        }
    )
    c = Correlator(cfg, JOURNEYS)
    script = {
        1: [
            anomaly(1, "recommendation", "p95_ms", id="silenced"),
            anomaly(1, "payment", id="maint"),
        ],
        3: [cleared(3, "maint"), cleared(3, "silenced")],
        12: [anomaly(12, "payment", id="after")],
        13: [anomaly(13, "recommendation", "error_rate", id="not-silenced")],
    }
    out = _run(c, script, 15)
    assert [(e.event, e.anomaly_ids) for e in out] == [
        ("opened", ["after"]),
        ("opened", ["not-silenced"]),
    ]


def test_severity_comes_from_slo_burn() -> None:
    c = Correlator(IncidentsConfig(), JOURNEYS)
    script = {
        1: [
            anomaly(
                1, "payment", "slo:availability", id="t", detector="slo_burn", severity="ticket"
            )
        ],
        3: [anomaly(3, "checkout", "error_rate", id="b")],
        5: [
            anomaly(5, "payment", "slo:availability", id="t", detector="slo_burn", severity="page")
        ],
    }
    out = _run(c, script, 7)
    # the ticket alone opens nothing; it joins the first linked incident and sets its severity
    assert [(e.event, e.severity) for e in out] == [("opened", "major"), ("updated", "critical")]
    assert out[0].anomaly_ids == ["b", "t"]
    # a baseline anomaly does not raise severity, whatever its score
    c2 = Correlator(IncidentsConfig(), JOURNEYS)
    out2 = _run(c2, {1: [anomaly(1, "payment", id="x")]}, 2)
    assert out2[0].severity == "minor"


def _info(i: int, service: str, id: str, severity: str = "info") -> Detection:
    return anomaly(
        i,
        service,
        "value",
        id=id,
        detector="forecast",
        kind="metric",
        metric_name="m",
        severity=severity,
    )


def test_an_info_metric_change_joins_incidents_but_opens_none_alone() -> None:
    c = Correlator(IncidentsConfig(), JOURNEYS)
    script = {
        1: [_info(1, "payment", "i")],
        3: [anomaly(3, "checkout", "error_rate", id="b")],
        4: [_info(4, "recommendation", "j")],  # a sibling: linked to nothing open
        6: [cleared(6, "j")],  # cleared while waiting: forgotten
        9: [anomaly(9, "recommendation", "error_rate", id="r")],
    }
    out = _run(c, script, 11)
    # the info change waited and joined the first incident it links to
    assert [(e.event, e.anomaly_ids) for e in out] == [("opened", ["b", "i"]), ("opened", ["r"])]
    # alone, it opens nothing; re-emitted as a warning (a point past the bar), it opens one
    c2 = Correlator(IncidentsConfig(), JOURNEYS)
    out2 = _run(c2, {1: [_info(1, "payment", "i")], 4: [_info(4, "payment", "i", "warning")]}, 6)
    assert [(e.event, e.opened_at) for e in out2] == [("opened", window_bounds(4)[1])]
    # info_opens: it pages alone
    c3 = Correlator(IncidentsConfig(info_opens=True), JOURNEYS)
    assert [e.event for e in _run(c3, {1: [_info(1, "payment", "i")]}, 3)] == ["opened"]


def test_slo_anomalies_do_not_hold_an_incident_open() -> None:
    c = Correlator(IncidentsConfig(recovery=20), JOURNEYS)
    script = {
        1: [
            anomaly(1, "payment", id="b"),
            anomaly(1, "payment", "slo:availability", id="s", detector="slo_burn", severity="page"),
        ],
        3: [cleared(3, "b")],
    }
    out = _run(c, script, 8)
    # both open one incident at the page's severity; the baseline anomaly's clear alone recovers it
    assert [(e.event, e.severity) for e in out] == [
        ("opened", "critical"),
        ("recovered", "critical"),
    ]


def test_a_new_symptom_of_a_linked_service_after_recovery_is_a_new_incident() -> None:
    cfg = IncidentsConfig(recovery=30, cooldown=900)
    c = Correlator(cfg, JOURNEYS)
    script = {
        1: [anomaly(1, "payment", "p95_ms", id="slow", detector="baseline")],
        4: [cleared(4, "slow")],
        # checkout calls payment: linked, but errors are not what the payment incident had
        40: [anomaly(40, "checkout", "error_rate", id="errs")],
    }
    out = _run(c, script, 42)
    assert [e.event for e in out] == ["opened", "recovered", "opened"]
    assert out[2].id != out[0].id and out[2].services == ["checkout"]
    # the same symptom class on a linked service is the problem come back
    c = Correlator(cfg, JOURNEYS)
    script[40] = [anomaly(40, "checkout", "p95_ms", id="slow-caller", detector="baseline")]
    out = _run(c, script, 42)
    assert [e.event for e in out] == ["opened", "recovered", "reopened"]


def test_later_states_and_transitions() -> None:
    c = Correlator(IncidentsConfig(), JOURNEYS)
    (opened,) = _run(c, {1: [anomaly(1, "payment")]}, 2)
    t = window_bounds(3)[1]
    assert [e.event for e in c.set_state(opened.id, "diagnosed", t, "payment v1.1 leaks")] == [
        "diagnosed"
    ]
    assert c.set_state(opened.id, "diagnosed", t) == []  # a redelivery changes nothing
    assert c.set_state("inc-unknown", "diagnosed", t) == []
    with pytest.raises(InvalidTransition, match="'diagnosed' to 'verifying'"):
        c.set_state(opened.id, "verifying", t)
    for state in ("mitigating", "verifying", "resolved"):
        (ev,) = c.set_state(opened.id, state, t)
        assert ev.state == state
    # resolved: a return within the cool-down reopens
    (re,) = c.process(window_bounds(5)[1], [anomaly(5, "payment", id="again")], EDGES)
    assert (re.event, re.id) == ("reopened", opened.id)
    assert apply_state(re, "escalated", t).state == "escalated"


def test_order_within_a_window_does_not_matter_and_ids_are_deterministic() -> None:
    dets = [
        anomaly(1, "checkout", "error_rate"),
        anomaly(1, "payment", "p95_ms", detector="baseline"),
        anomaly(1, "recommendation", "p95_ms", detector="baseline"),
        Detection(
            window_bounds(1)[1],
            ChangeEvent(
                id="chg-1", change="deploy", service="payment", at=window_bounds(1)[1], after="1.1"
            ),
        ),
    ]
    outs = []
    for seed in range(4):
        shuffled = list(dets)
        random.Random(seed).shuffle(shuffled)
        c = Correlator(IncidentsConfig(), JOURNEYS)
        outs.append(c.process(window_bounds(1)[1], shuffled, EDGES))
    assert all(o == outs[0] for o in outs)
    # checkout and payment (linked) open one incident together; recommendation its own
    assert [(e.event, e.services) for e in outs[0]] == [
        ("opened", ["checkout", "payment"]),
        ("opened", ["recommendation"]),
    ]
    assert "payment deploy 1.1" in outs[0][0].summary


def test_journey_services_from_pipeline_config() -> None:
    from chaos import SITE_CONFIG
    from sre_space.settings import load_pipeline_config

    # Journeys are a site's: none by default, the shop's from its site file.
    assert journey_services(load_pipeline_config().journeys) == {}
    services = journey_services(load_pipeline_config(SITE_CONFIG).journeys)
    assert services == {"checkout": ["cart", "checkout", "payment"]}


def test_detections_of_later_windows_wait_in_the_buffer() -> None:
    c = Correlator(IncidentsConfig(), JOURNEYS)
    c.on_detection(anomaly(5, "payment"))
    assert c.on_window(window_bounds(3)[1], EDGES) == []
    assert len(c.snapshot()["buffer"]) == 1
    (ev,) = c.on_window(window_bounds(5)[1], EDGES)
    assert ev.event == "opened" and c.snapshot()["buffer"] == []
