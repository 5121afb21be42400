"""The one strict narration check, on the live responders' path (`responders.steps.narrator`):
a narrative naming a service of the data that the evidence does not hold, or a number the
evidence does not hold, is dropped and the deterministic summary stands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sinks.brain.engine import Analysis, analyze
from sinks.brain.narrate import unmatched_numbers
from sre_space.responders.steps import narrator
from sre_space.settings import load_settings
from tests.brain.fake_llm import FakeLLM, Reply
from tests.brain.synth import BASELINE, INCIDENT, generate

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def analysis() -> Analysis:
    shop = generate("errors", 11, traces_per_window=80)
    return analyze(shop.spans, INCIDENT, BASELINE, commits=shop.commits, incident_id="inc-7")


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    yield server
    server.close()


def _reply(a: Analysis, extra: str = "") -> str:
    top = a.diagnosis.candidates[0]
    return json.dumps(
        {
            "summary": f"{top.service} fails requests.{extra}",
            "root_cause": f"{top.service} '{top.operation}' is where failures originate.",
            "mentions": {"services": [top.service], "operations": [top.operation], "trace_ids": []},
            "next_steps": [],
        }
    )


def _narrate(a: Analysis, llm: FakeLLM, content: str) -> Any:
    llm.replies.append(Reply(content))
    settings = load_settings(openai_api_key="sk-test-local-0123", openai_base_url=llm.base_url)
    services = {a.diagnosis.incident_id: a.report.services}
    narrate = narrator(settings, lambda iid: services.get(iid, []))
    assert narrate is not None
    return narrate(a.diagnosis)


def test_live_narrative_grounded_in_the_evidence_is_kept(analysis: Analysis, llm: FakeLLM) -> None:
    result = _narrate(analysis, llm, _reply(analysis))
    assert result.status == "ok", result.reason


def test_live_narrative_naming_a_service_outside_the_evidence_is_dropped(
    analysis: Analysis, llm: FakeLLM
) -> None:
    named = {c.service for c in analysis.diagnosis.candidates}
    evidence = json.dumps(analysis.diagnosis.to_dict())
    outsider = next(s for s in analysis.report.services if s not in named and s not in evidence)
    result = _narrate(analysis, llm, _reply(analysis, f" {outsider} is also to blame."))
    assert result.status == "rejected" and outsider in result.reason
    assert result.text == analysis.diagnosis.summary


def test_live_narrative_with_a_wrong_number_is_dropped(analysis: Analysis, llm: FakeLLM) -> None:
    result = _narrate(analysis, llm, _reply(analysis, " Errors rose by 987654.3 per second."))
    assert result.status == "rejected" and "987654.3" in result.reason
    assert result.text == analysis.diagnosis.summary


def test_numbers_match_at_the_texts_precision() -> None:
    evidence = '{"e2e": 1850.94, "share": 0.129, "text": "p95 of http2 calls"}'
    assert unmatched_numbers("end-to-end 1850.9 ms, 12.9% of traces, 1851 ms", evidence) == []
    assert unmatched_numbers("end-to-end 1.9 s", evidence) == ["1.9"]
    assert unmatched_numbers("p95 over http2", evidence) == []
