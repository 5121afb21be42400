"""Pull request bodies (and other Markdown SRE-Space posts): the template, quoting and redaction.

The template lives in `pr_body.md` next to this module. Everything that came from telemetry (span
attributes, operation names, narratives) is untrusted: it is quoted as data in code spans, its HTML
comments are broken so nobody can forge SRE-Space's hidden markers, and mentions are defused. Every
rendered text passes `redact`, which removes anything that looks like a credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from string import Template

from sinks.fixer.playbook import Change
from sre_space.records import Diagnosis, Incident
from sre_space.timeutil import ns_to_rfc3339

TEMPLATE_PATH = Path(__file__).with_name("pr_body.md")
REDACTED = "[REDACTED]"

# Credential shapes: GitHub tokens, OpenAI-style keys, AWS key ids, JWTs, auth headers and
# `secret=value` pairs. Plain hex (commit and trace ids) is left alone on purpose.
_SECRET_PATTERNS: list[tuple[re.Pattern[str], bool]] = [
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b"), False),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}\b"), False),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), False),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\b"), False),
    (re.compile(r"(?i)\b(bearer|token|basic)(\s+)[A-Za-z0-9._~+/\-]{16,}=*"), True),
    # `secret=value` pairs: the name stays (it helps the reader), the value goes.
    (
        re.compile(
            r"(?i)\b((?:password|passwd|secret|api[_-]?key|access[_-]?key|token|credential)s?"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]{4,}"
        ),
        True,
    ),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with known secrets and anything shaped like a credential replaced by [REDACTED]."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern, keep_prefix in _SECRET_PATTERNS:
        if keep_prefix:
            text = pattern.sub(lambda m: "".join(m.groups()) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def quote(text: object, limit: int = 300) -> str:
    """Untrusted text as an inline code span: one line, bounded, no markers, no mentions."""
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    s = s.replace("<!--", "<!－－").replace("-->", "－－>").replace("`", "'")
    s = re.sub(r"@(?=\w)", "@\u200b", s)
    return f"`{s}`" if s else "``"


def marker(incident_id: str, step: str) -> str:
    """The hidden marker that makes a post findable again: incident id and step key."""
    return f"<!-- sre-space:incident={incident_id} step={step} -->"


def _root_cause(diagnosis: Diagnosis | None, service: str) -> tuple[str, str]:
    if diagnosis is None or diagnosis.abstained or not diagnosis.candidates:
        why = "the diagnosis abstained" if diagnosis and diagnosis.abstained else "no diagnosis"
        return f"Not established ({why}); the change targets {quote(service)}.", "- none recorded"
    top = diagnosis.candidates[0]
    lines = [
        f"{quote(top.service)} · fault class {quote(top.fault_class)} · score {top.score:.2f}"
        f" · confidence {top.confidence:.0%}"
    ]
    if top.operation:
        lines[0] += f" · operation {quote(top.operation)}"
    if top.attribute:
        lines[0] += f" · {quote(top.attribute)} = {quote(top.attribute_value or '')}"
    if diagnosis.summary:
        lines.append("")
        lines.append(f"Summary (generated): {quote(diagnosis.summary, 600)}")
    evidence = []
    for ev in top.evidence[:8]:
        nums = ""
        if ev.baseline is not None or ev.incident is not None:
            nums = f" (baseline {ev.baseline!s} → incident {ev.incident!s})"
        traces = ", ".join(quote(t, 40) for t in ev.trace_ids[:3])
        evidence.append(
            f"- {quote(ev.kind, 40)}: {quote(ev.description)}{nums}"
            + (f" — traces {traces}" if traces else "")
        )
    others = [
        f"{quote(c.service)} ({c.fault_class}, {c.score:.2f})" for c in diagnosis.candidates[1:4]
    ]
    if others:
        evidence.append(f"- other candidates: {', '.join(others)}")
    return "\n".join(lines), "\n".join(evidence) or "- none recorded"


def render_pr_body(
    *,
    incident_id: str,
    change: Change,
    incident: Incident | None = None,
    diagnosis: Diagnosis | None = None,
    incident_url: str = "",
    merge_mode: str = "auto_merge",
    healthy_windows: int = 3,
    deadline_minutes: float = 10,
    secrets: Iterable[str] = (),
    template: str | None = None,
) -> str:
    """The pull request body for a change: incident, root cause, evidence, change, recovery, rollback."""
    root, evidence = _root_cause(diagnosis, change.service)
    change_lines = ", ".join(
        f"`{k}` {change.before.get(k)!r} → {change.after[k]!r}" for k in sorted(change.after)
    )
    link = f"[{incident_id}]({incident_url})" if incident_url else f"`{incident_id}`"
    values = {
        "marker": marker(incident_id, f"pull_request:{change.action}"),
        "summary": change.summary,
        "incident_id": incident_id,
        "incident_link": link,
        "severity": incident.severity if incident else "unknown",
        "opened_at": ns_to_rfc3339(incident.opened_at) if incident else "unknown",
        "services": ", ".join(
            quote(s) for s in (incident.services if incident else [change.service])
        ),
        "merge_mode": "automatic once checks pass"
        if merge_mode == "auto_merge"
        else "needs a person's approval",
        "root_cause": root,
        "evidence": evidence,
        "path": change.path,
        "change_lines": change_lines,
        "rationale": change.rationale,
        "expected_recovery": change.expected_recovery[:1].upper() + change.expected_recovery[1:],
        "healthy_windows": str(healthy_windows),
        "deadline_minutes": f"{deadline_minutes:g}",
        "rollback": f"Revert the merge commit of this pull request on `main` ({change.undo}); the"
        " reconciler applies the reverted manifests. SRE-Space does this itself when verification"
        " fails.",
    }
    text = Template(template or TEMPLATE_PATH.read_text(encoding="utf-8")).safe_substitute(values)
    return redact(text, secrets)
