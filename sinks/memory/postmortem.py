"""Post-mortems built from data only: the incident, its anomalies, the diagnosis, the remediation,
the audit log and the signal windows of the incident's keys.

Every number in the Markdown is computed from those records (no LLM, no wall clock; see `impact`), so
the same inputs always give the same text, and a test can recompute each figure from the windows it
came from. `render` writes the Markdown; `incident_digest` is the text Memory indexes it by.
"""

from __future__ import annotations

from collections.abc import Sequence

from operators.scout.detect.budget import Slo
from sinks.memory.impact import compute_impact, first_restart
from sinks.memory.records import PostMortem, Remediation, SimilarIncident
from sinks.memory.render import Facts, cell, render_markdown, top_candidate
from sre_space.records import Anomaly, AuditAction, Diagnosis, Incident, SignalWindow
from sre_space.timeutil import NS_PER_S

# What a post-mortem is built from, in `build_postmortem`'s (and `Memory.learn`'s) order.
PostMortemInputs = tuple[
    Incident,
    Sequence[Anomaly],
    Diagnosis | None,
    Remediation | None,
    Sequence[AuditAction],
    Sequence[SignalWindow],
]


def _words(ident: str) -> str:
    return ident.replace("_", " ")


def incident_digest(
    incident: Incident | None,
    anomalies: Sequence[Anomaly] = (),
    diagnosis: Diagnosis | None = None,
    remediation: Remediation | None = None,
) -> str:
    """The text a post-mortem is indexed by and a new incident is searched with.

    Only what describes the kind of problem: services, signals, fault class, evidence, the fix. The
    Markdown's boilerplate and its numbers are left out, as they are the same (or random) for all.
    """
    parts: list[str] = []
    if incident is not None:
        parts.append("services: " + " ".join(incident.services))
        if incident.summary:
            parts.append(incident.summary)
    for a in anomalies:
        key = a.operation or a.cuj or a.metric or ""
        parts.append(f"{a.detector} {a.signal} {a.kind} {a.service or ''} {key} {a.detail}".strip())
    if diagnosis is not None:
        if diagnosis.summary:
            parts.append(diagnosis.summary)
        for c in diagnosis.candidates[:1]:
            parts.append(f"fault {c.fault_class} {_words(c.fault_class)} in {c.service}")
            if c.operation:
                parts.append(c.operation)
            if c.attribute:
                parts.append(f"{c.attribute} {c.attribute_value or ''}")
            for e in c.evidence:
                parts.append(f"{_words(e.kind)}: {e.description}")
            if c.actions:
                parts.append("remediations: " + " ".join(_words(a) for a in c.action_names))
    if remediation is not None:
        parts.append(f"action {remediation.action} {_words(remediation.action)}")
    return "\n".join(p for p in parts if p)


def build_postmortem(
    incident: Incident,
    anomalies: Sequence[Anomaly],
    diagnosis: Diagnosis | None,
    remediation: Remediation | None,
    audit: Sequence[AuditAction],
    signals: Sequence[SignalWindow],
    *,
    slos: Sequence[Slo] = (),
    similar: Sequence[SimilarIncident] = (),
    detect_target_s: float = 120.0,
) -> PostMortem:
    """The post-mortem of one incident, from data only (deterministic: same inputs, same text).

    `signals` are the windows of the incident's keys, including a few before the onset (the CUJ
    baseline and the SLO traffic rate come from them). `similar` are past incidents from the index
    (the caller excludes this incident). `slos` are the objectives the error budget is spent against.
    """
    impact = compute_impact(incident, anomalies, remediation, signals, slos)
    top = top_candidate(diagnosis)
    outcome = (
        remediation.outcome
        if remediation is not None
        else ("escalated" if incident.state == "escalated" else "none")
    )
    ttd_s = max(0.0, (incident.opened_at - impact.start) / NS_PER_S)
    ttm_s = None
    if remediation is not None and remediation.merged and remediation.merged_at is not None:
        ttm_s = (remediation.merged_at - impact.start) / NS_PER_S
    facts = Facts(
        incident=incident,
        impact=impact,
        top=top,
        diagnosis=diagnosis,
        rem=remediation,
        outcome=outcome,
        ttd_s=ttd_s,
        ttm_s=ttm_s,
        restart_at=first_restart(signals),
        anomalies=anomalies,
        audit=audit,
        similar=similar,
        slos=slos,
        detect_target_s=detect_target_s,
    )
    fault = top.fault_class if top else "unclassified"
    culprit = top.service if top else (incident.services[0] if incident.services else "")
    title = f"{fault} in {culprit}" if top else (incident.summary.strip() or "undiagnosed incident")
    title = cell(f"{incident.id}: {title}")
    markdown = render_markdown(facts, title)
    return PostMortem(
        incident_id=incident.id,
        fingerprint=incident.fingerprint,
        title=title,
        severity=incident.severity,
        state=incident.state,
        services=list(incident.services),
        fault_class=fault,
        culprit=culprit,
        action=remediation.action if remediation else "",
        outcome=outcome,
        opened_at=incident.opened_at,
        onset=impact.start,
        resolved_at=impact.end,
        duration_s=impact.duration_s,
        requests=impact.requests,
        failed_requests=impact.failed_requests,
        conversions_lost=impact.conversions_lost,
        error_budget=[b.to_dict() for b in impact.error_budget],
        time_to_detect_s=ttd_s,
        time_to_mitigate_s=ttm_s,
        pr_url=remediation.pr_url if remediation else None,
        markdown=markdown,
        digest=incident_digest(incident, anomalies, diagnosis, remediation),
        similar=[s.to_dict() for s in similar],
    )
