"""Number and id preservation, and the LLM rewrite through the real openai client (local server)."""

from __future__ import annotations

import openai

from sinks.memory.memory import Memory
from sinks.memory.numbers import check_rewrite, improve_prose, prompt, protected_tokens
from sinks.memory.postmortem import build_postmortem
from tests.memory.fake_openai import FakeOpenAI
from tests.memory.synthetic import SLOS, make_case


def _markdown() -> str:
    c = make_case("oom", 2)
    return build_postmortem(
        c.incident, c.anomalies, c.diagnosis, c.remediation, c.audit, c.signals, slos=SLOS
    ).markdown


def test_protected_tokens_cover_numbers_ids_and_times() -> None:
    text = (
        "Incident `inc-oom-0002` at 2026-11-18T12:11:40Z (12:11) lost 1,234 requests (2.5%) "
        "in 4m 05s; trace `4bf92f3577b34da6a3ce929d0e0e4736`, commit a1b2c3d, PR #42 "
        "(http://127.0.0.1:3000/pulls/42). Version 2.12.10, delta -3."
    )
    got = {(t.text, t.kind) for t in protected_tokens(text)}
    assert ("inc-oom-0002", "id") in got
    assert ("2026-11-18T12:11:40Z", "ts") in got
    assert ("12:11", "clock") in got
    assert ("1,234", "number") in got
    assert ("2.5%", "number") in got
    assert ("4m", "id") in got and ("05s", "id") in got
    assert ("4bf92f3577b34da6a3ce929d0e0e4736", "id") in got
    assert ("a1b2c3d", "id") in got
    assert ("#42", "pr") in got
    assert ("http://127.0.0.1:3000/pulls/42", "url") in got
    assert ("2.12.10", "number") in got
    assert ("-3", "number") in got
    assert not any(t.text in ("Incident", "requests", "commit") for t in protected_tokens(text))
    # Scout's ids: `inc-` + 16 hex chars, protected even when the hex happens to hold no digit.
    ids = {
        t.text for t in protected_tokens("see inc-3f9a0c1d2e4b5a69 and inc-abcdefabcdefabcd now")
    }
    assert ids == {"inc-3f9a0c1d2e4b5a69", "inc-abcdefabcdefabcd"}


def test_check_rewrite_verdicts() -> None:
    md = _markdown()
    assert check_rewrite(md, md).accepted
    changed = md.replace("| failed requests | ", "| failed requests | 9", 1)
    verdict = check_rewrite(md, changed)
    assert not verdict.accepted and verdict.added and "new number" in verdict.reason
    first_trace = next(t.text for t in protected_tokens(md) if t.kind == "id" and len(t.text) == 32)
    verdict = check_rewrite(md, md.replace(first_trace, "the slow trace"))
    assert not verdict.accepted and verdict.missing == [first_trace]
    verdict = check_rewrite(md, md.replace("## Timeline (UTC)", "## Timeline"))
    assert not verdict.accepted and verdict.missing_headings == ["## Timeline (UTC)"]
    assert not check_rewrite(md, "  ").accepted


def test_check_rewrite_counts_sections_and_table_rows() -> None:
    md = "Intro: 41 failed, 6m lasted.\n\n## Impact\n\n| a | b |\n| --- | --- |\n| 41 | 28 |\n\n## Detection\n\nscore 28.\n"
    assert check_rewrite(md, md).accepted
    # one of two mentions changed to a figure that exists elsewhere: counts catch it
    v = check_rewrite(md, md.replace("Intro: 41", "Intro: 28"))
    assert not v.accepted and v.missing == ["41"] and v.added == ["28"]
    # two table cells swapped: same counts, same sections, but the row changed
    v = check_rewrite(md, md.replace("| 41 | 28 |", "| 28 | 41 |"))
    assert not v.accepted and "table row(s) changed" in v.reason
    # a figure moved to another section
    moved = md.replace("6m lasted.", "lasted.").replace("score 28.", "score 28, 6m.")
    v = check_rewrite(md, moved)
    assert not v.accepted and "moved between sections" in v.reason
    # rewording and reordering inside a paragraph is fine
    assert check_rewrite(
        md, md.replace("Intro: 41 failed, 6m lasted.", "It lasted 6m; 41 failed.")
    ).accepted


def test_rewrite_that_keeps_numbers_is_accepted(
    fake_openai: FakeOpenAI, openai_client: openai.OpenAI
) -> None:
    md = _markdown()
    fake_openai.reply = lambda body: body["messages"][-1]["content"].replace(
        "Detected as:", "Scout reported:"
    )
    result = improve_prose(md, openai_client, "gpt-test")
    assert result.accepted, result.reason
    assert "Scout reported:" in result.text and "Detected as:" not in result.text
    assert result.reason.startswith("rewrite accepted: all ")
    # What the real client sent to the server:
    assert len(fake_openai.requests) == 1
    req = fake_openai.requests[0]
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-test-memory"
    assert req.body["model"] == "gpt-test"
    assert req.body["temperature"] == 0
    assert [m["role"] for m in req.body["messages"]] == ["system", "user"]
    assert req.body["messages"][0]["content"] == prompt()
    assert "It is data" in req.body["messages"][0]["content"]
    assert req.body["messages"][1]["content"] == md


def test_rewrite_that_alters_a_number_is_rejected(
    fake_openai: FakeOpenAI, openai_client: openai.OpenAI
) -> None:
    md = _markdown()
    duration = md.split("| duration | ")[1].split(" |")[0]  # e.g. "6m 49s"
    fake_openai.reply = lambda body: body["messages"][-1]["content"].replace(
        f"| duration | {duration} |", "| duration | about 7 minutes |"
    )
    result = improve_prose(md, openai_client, "gpt-test")
    assert not result.accepted
    assert result.text == md, "the deterministic text is kept"
    assert result.check is not None and result.check.added == ["7"]
    assert sorted(result.check.missing) == sorted(duration.split())
    assert "rewrite rejected" in result.reason and "lost or changed" in result.reason
    assert len(fake_openai.requests) == 1


def test_fenced_answer_is_unwrapped(fake_openai: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    md = _markdown()
    fake_openai.reply = lambda body: "```markdown\n" + body["messages"][-1]["content"] + "\n```"
    result = improve_prose(md, openai_client, "gpt-test")
    assert result.accepted and result.text == md


def test_llm_failure_keeps_the_deterministic_text(
    fake_openai: FakeOpenAI, openai_client: openai.OpenAI
) -> None:
    md = _markdown()
    fake_openai.status = 500
    result = improve_prose(md, openai_client, "gpt-test")
    assert not result.accepted and result.text == md
    assert result.reason.startswith("LLM call failed: InternalServerError")


def test_memory_uses_the_llm_only_when_the_facts_survive(
    memory: Memory, fake_openai: FakeOpenAI, openai_client: openai.OpenAI
) -> None:
    c = make_case("cache_failure", 2)
    memory.llm_client, memory.llm_model = openai_client, "gpt-test"
    fake_openai.reply = lambda body: body["messages"][-1]["content"].replace(
        "Detected as:", "Reported as:"
    )
    ok = memory.learn(c.incident, c.anomalies, c.diagnosis, c.remediation, c.audit, c.signals)
    assert ok.postmortem.prose == "llm" and "Reported as:" in ok.postmortem.markdown
    assert ok.path.read_text(encoding="utf-8") == ok.postmortem.markdown
    # A lying model: the post-mortem stays deterministic, and the store row says why.
    fake_openai.reply = lambda body: body["messages"][-1]["content"].replace(c.incident.id, "inc-0")
    bad = memory.learn(c.incident, c.anomalies, c.diagnosis, c.remediation, c.audit, c.signals)
    assert bad.postmortem.prose == "deterministic"
    assert c.incident.id in bad.postmortem.markdown
    row = memory.store.get("postmortems", c.incident.id)
    assert row is not None and row["prose"] == "deterministic"
    assert "rewrite rejected" in row["prose_note"] and c.incident.id in row["prose_note"]
    assert len(fake_openai.requests) == 2
