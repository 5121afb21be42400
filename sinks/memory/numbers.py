"""Number and id preservation: an LLM may polish a post-mortem's prose, never its facts.

The deterministic Markdown is the source of truth. `protected_tokens` extracts every token that
carries a fact: numbers (counts, percentages, durations like `4m`), timestamps, clock times, ids
(incident ids, trace ids, commit shas, versions, anything with a digit), pull-request numbers (`#12`)
and URLs. A rewrite is accepted only when it holds exactly the same such tokens, as many times, in the
same sections, with table rows unchanged (nothing lost, nothing changed, nothing new), and every
heading survives; otherwise the deterministic text is kept and the reason is reported.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

# Order matters: the first alternative that matches at a position wins, so the longer, more
# specific shapes (URLs, timestamps) come before the generic word-with-a-digit.
_TOKEN = re.compile(
    r"""
    (?P<url>https?://[^\s)\]>|`"']+)
  | (?P<ts>\d{4}-\d{2}-\d{2}(?:[T\ ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?)
  | (?P<clock>(?<![\w:])\d{1,2}:\d{2}(?::\d{2})?(?![\w:]))
  | (?P<pr>\#\d+)
  | (?P<word>[A-Za-z0-9_](?:[A-Za-z0-9_.,\-]*[A-Za-z0-9_%])?)
    """,
    re.VERBOSE,
)
_NUMBER = re.compile(r"-?[\d.,]+%?")
_HEX_RUN = re.compile(r"(?<![a-z])[0-9a-f]{12,}(?![a-z])")


@dataclass(frozen=True, slots=True)
class Token:
    """One protected token and what kind it is (number, id, timestamp, clock, pr, url)."""

    text: str
    kind: str


def protected_tokens(text: str) -> list[Token]:
    """Every fact-bearing token of a text, in order (see the module docstring)."""
    out = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "word"
        tok = m.group(0)
        if kind == "url":
            tok = tok.rstrip(".,;:")
        elif kind == "word":
            # Ids are hex: one without a digit (rare, but `inc-` + 16 hex can be all letters) is
            # still an id, recognised by its long hex run.
            if not any(ch.isdigit() for ch in tok) and not _HEX_RUN.search(tok):
                continue
            # Leading minus signs are part of the number; the word pattern cannot start with one.
            start = m.start()
            if (
                start > 0
                and text[start - 1] == "-"
                and (start < 2 or not text[start - 2].isalnum())
            ):
                tok = "-" + tok
            kind = "number" if _NUMBER.fullmatch(tok) else "id"
        out.append(Token(tok, kind))
    return out


def _headings(text: str) -> list[str]:
    return [
        ln.strip() for ln in text.splitlines() if ln.lstrip().startswith("#") and " " in ln.strip()
    ]


def _sections(text: str) -> dict[str, Counter[str]]:
    """Protected tokens counted per `## ` section (the text before the first one is `""`)."""
    out: dict[str, Counter[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("## "):
            current = line.strip()
        out.setdefault(current, Counter()).update(t.text for t in protected_tokens(line))
    return out


def _table_rows(text: str) -> Counter[tuple[str, ...]]:
    """The ordered protected tokens of every table row that has any."""
    rows: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            seq = tuple(t.text for t in protected_tokens(line))
            if seq:
                rows[seq] += 1
    return rows


@dataclass(frozen=True, slots=True)
class ProseCheck:
    """The verdict on a rewrite: accepted or not, why, and which tokens were lost or added."""

    accepted: bool
    reason: str
    missing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    missing_headings: list[str] = field(default_factory=list)


def check_rewrite(original: str, rewrite: str) -> ProseCheck:
    """Whether `rewrite` keeps every number, id and timestamp of `original` and adds none.

    Tokens are compared as counts, not as a set, so that changing one of two mentions of a figure
    is caught; per section, so a figure cannot move to another section; and table rows keep their
    figures in order, so that two cells cannot be swapped. Reordering inside a prose paragraph is
    allowed (that is what rewording does).
    """
    if not rewrite.strip():
        return ProseCheck(False, "the rewrite is empty")
    before = Counter(t.text for t in protected_tokens(original))
    after = Counter(t.text for t in protected_tokens(rewrite))
    missing = sorted((before - after).elements())
    added = sorted((after - before).elements())
    after_headings = set(_headings(rewrite))
    lost_headings = [h for h in _headings(original) if h not in after_headings]
    reasons = []
    if missing:
        reasons.append(f"{len(missing)} number(s)/id(s) lost or changed: {', '.join(missing[:10])}")
    if added:
        reasons.append(f"{len(added)} new number(s)/id(s): {', '.join(added[:10])}")
    if lost_headings:
        reasons.append(f"{len(lost_headings)} heading(s) lost: {', '.join(lost_headings[:5])}")
    if not reasons:
        s_before, s_after = _sections(original), _sections(rewrite)
        moved = [h or "(top)" for h in s_before if s_before[h] != s_after.get(h, Counter())]
        if moved:
            reasons.append(f"numbers moved between sections: {', '.join(moved[:5])}")
        rows_lost = _table_rows(original) - _table_rows(rewrite)
        if rows_lost:
            sample = " / ".join(" ".join(r) for r in list(rows_lost)[:3])
            reasons.append(f"{sum(rows_lost.values())} table row(s) changed: {sample}")
    if reasons:
        return ProseCheck(False, "; ".join(reasons), missing, added, lost_headings)
    return ProseCheck(True, f"all {sum(before.values())} numbers, ids and timestamps kept")


@dataclass(frozen=True, slots=True)
class ProseResult:
    """The text to use (the rewrite if accepted, else the original) and the check behind it."""

    text: str
    accepted: bool
    reason: str
    check: ProseCheck | None = None


def prompt() -> str:
    """The system prompt for the prose rewrite (kept in a file next to this module)."""
    return (
        resources.files("sinks.memory")
        .joinpath("improve_prose_prompt.md")
        .read_text(encoding="utf-8")
    )


def _unfence(text: str) -> str:
    """Drop one outer ```markdown fence that chat models like to wrap whole documents in."""
    m = re.fullmatch(r"\s*```(?:markdown|md)?\s*\n(.*)\n```\s*", text, re.DOTALL)
    return m.group(1) if m else text


def improve_prose(markdown: str, client: Any, model: str, *, timeout: float = 60.0) -> ProseResult:
    """Ask an OpenAI-compatible chat model to polish the prose; keep it only if the facts survive.

    `client` is an `openai.OpenAI` (or compatible) client. Any failure (network, refusal, empty or
    altered answer) keeps the deterministic Markdown and says why: the post-mortem never depends on
    the LLM being up or right.
    """
    try:
        response = client.chat.completions.create(
            model=model,
            temperature=0,
            messages=[
                {"role": "system", "content": prompt()},
                {"role": "user", "content": markdown},
            ],
            timeout=timeout,
        )
        content = response.choices[0].message.content or ""
    except Exception as exc:  # any client failure means "keep the deterministic text"
        return ProseResult(markdown, False, f"LLM call failed: {type(exc).__name__}: {exc}")
    rewrite = _unfence(content).strip() + "\n"
    check = check_rewrite(markdown, rewrite)
    if not check.accepted:
        return ProseResult(markdown, False, f"rewrite rejected: {check.reason}", check)
    return ProseResult(rewrite, True, f"rewrite accepted: {check.reason}", check)
