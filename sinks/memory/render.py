"""The post-mortem's Markdown: every section rendered from the facts `build_postmortem` gathered,
into `postmortem_template.md`. Numbers are spelled here only, so the numbers check and the tests see
the same spelling."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Any

from operators.scout.detect.budget import Slo
from sinks.memory.records import FAILED, POSTMORTEM_SCHEMA, Impact, Remediation, SimilarIncident
from sre_space.records import Anomaly, AuditAction, Candidate, Diagnosis, Evidence, Incident
from sre_space.timeutil import NS_PER_S, ns_to_datetime

_MAX_DIFF_CHARS = 6000


def fmt_time(ns: int) -> str:
    """Nanoseconds to `YYYY-MM-DDTHH:MM:SSZ` (UTC, seconds)."""
    return ns_to_datetime(ns).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_duration(seconds: float) -> str:
    """`1h 02m 03s`, `4m 05s` or `45s` (rounded to the second)."""
    total = round(seconds)
    sign = "-" if total < 0 else ""
    total = abs(total)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{sign}{h}h {m:02d}m {s:02d}s"
    if m:
        return f"{sign}{m}m {s:02d}s"
    return f"{sign}{s}s"


def fmt_num(x: float) -> str:
    """A measured value: thousands grouped above 1000, 2 decimals above 1, 4 below."""
    if x != x:  # NaN
        return "n/a"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 1 or ax == 0:
        return f"{x:.2f}".rstrip("0").rstrip(".")
    return f"{x:.4f}".rstrip("0").rstrip(".")


def fmt_pct(fraction: float) -> str:
    """A fraction as a percentage with 2 decimals below 1% and 1 above."""
    pct = fraction * 100
    return f"{pct:.2f}%" if abs(pct) < 1 else f"{pct:.1f}%"


def cell(text: Any) -> str:
    """Table-cell safe text: untrusted strings (span attributes, reasons) cannot break the table."""
    s = str(text).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return s if len(s) <= 300 else s[:297] + "..."


def top_candidate(diagnosis: Diagnosis | None) -> Candidate | None:
    if diagnosis is None or diagnosis.abstained or not diagnosis.candidates:
        return None
    return max(diagnosis.candidates, key=lambda c: c.score)


def _pr_ref(r: Remediation) -> str:
    label = f"PR #{r.pr_id.lstrip('#')}" if r.pr_id else "the pull request"
    return f"[{label}]({r.pr_url})" if r.pr_url else label


def _summary(
    incident: Incident, impact: Impact, top: Candidate | None, rem: Remediation | None, outcome: str
) -> str:
    where = ", ".join(f"`{s}`" for s in incident.services) or "an unknown service"
    cause = f"**{top.fault_class}** in `{top.service}`" if top else "an undiagnosed fault"
    lines = [
        f"Incident `{incident.id}` ({incident.severity}) affected {where}: {cause}."
        + (f" Detected as: {cell(incident.summary.strip())}." if incident.summary.strip() else ""),
    ]
    impact_bits = [
        f"{fmt_duration(impact.duration_s)} of impact",
        f"{impact.failed_requests:,} failed requests",
    ]
    if impact.conversions_lost is not None:
        impact_bits.append(f"{fmt_num(impact.conversions_lost)} {impact.cuj} conversions lost")
    lines.append(
        "Impact: "
        + ", ".join(impact_bits)
        + ("; still ongoing when written." if impact.ongoing else ".")
    )
    if rem is None:
        lines.append(f"No automated fix was applied; final state **{incident.state}**.")
    else:
        lines.append(
            f"Fix: `{rem.action}` on `{rem.service or (top.service if top else '?')}` via {_pr_ref(rem)}, "
            f"outcome **{outcome}**."
        )
    return "\n\n".join(lines)


def _impact_section(impact: Impact, slos: Sequence[Slo]) -> str:
    rows = [
        "| measure | value |",
        "| --- | --- |",
        f"| impact window | {fmt_time(impact.start)} to {fmt_time(impact.end)}"
        + (" (ongoing)" if impact.ongoing else "")
        + " |",
        f"| duration | {fmt_duration(impact.duration_s)} |",
        f"| requests on affected keys | {impact.requests:,} |",
    ]
    rate = f" ({fmt_pct(impact.failed_requests / impact.requests)})" if impact.requests else ""
    rows.append(f"| failed requests | {impact.failed_requests:,}{rate} |")
    if impact.conversions_lost is not None:
        assert impact.conversion_baseline is not None and impact.conversion_observed is not None
        rows.append(
            f"| {impact.cuj} conversions lost | {fmt_num(impact.conversions_lost)} (baseline "
            f"{fmt_pct(impact.conversion_baseline)}, observed {fmt_pct(impact.conversion_observed)}) |"
        )
    else:
        rows.append("| CUJ conversions lost | no CUJ signal in the impact window |")
    out = "\n".join(rows)
    if slos:
        lines = [
            "",
            "Error budget spent:",
            "",
            "| SLO | objective | bad events | budget (events per period) | spent |",
            "| --- | --- | --- | --- | --- |",
        ]
        by_name = {b.slo: b for b in impact.error_budget}
        for s in slos:
            b = by_name.get(s.name)
            if b is None:
                lines.append(f"| {cell(s.name)} | {fmt_pct(s.objective)} | no signal | - | - |")
                continue
            est = " (estimated from quantiles)" if b.estimated else ""
            lines.append(
                f"| {cell(s.name)} | {fmt_pct(s.objective)} | {fmt_num(b.bad_events)}{est} | "
                f"{fmt_num(b.budget_events)} | {fmt_num(b.spent_pct)}% |"
            )
        out += "\n" + "\n".join(lines)
    out += (
        "\n\n_Failed requests: errors of the anomalous span keys in the impact window. Conversions "
        "lost: (baseline - observed conversion) x journeys started, summed over the impact windows. "
        "Budget: bad events over the SLO period's allowance, traffic extrapolated from the windows._"
    )
    return out


def _detection(
    incident: Incident, anomalies: Sequence[Anomaly], impact: Impact, ttd_s: float
) -> str:
    detectors = sorted({a.detector for a in anomalies}) or ["(no anomaly recorded)"]
    lines = [
        f"Opened at {fmt_time(incident.opened_at)} by {', '.join(f'`{d}`' for d in detectors)}; "
        f"time to detect {fmt_duration(ttd_s)} from the first anomalous window at {fmt_time(impact.start)}.",
    ]
    if anomalies:
        lines += [
            "",
            "| onset | detector | signal | key | observed | expected | score | exemplar traces |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for a in sorted(anomalies, key=lambda a: (a.onset, a.id)):
            key = "/".join(x for x in (a.service, a.operation or a.cuj or a.metric) if x)
            traces = ", ".join(f"`{t}`" for t in a.exemplar_trace_ids[:3]) or "-"
            lines.append(
                f"| {fmt_time(a.onset)} | {cell(a.detector)} | {cell(a.signal)} | {cell(key)} | "
                f"{fmt_num(a.observed)} | {fmt_num(a.expected)} | {fmt_num(a.score)} | {traces} |"
            )
    return "\n".join(lines)


def _evidence_line(e: Evidence) -> str:
    shift = ""
    if e.baseline is not None and e.incident is not None:
        shift = f" (baseline {fmt_num(e.baseline)}, incident {fmt_num(e.incident)})"
    elif e.incident is not None:
        shift = f" (incident {fmt_num(e.incident)})"
    traces = f"; traces {', '.join(f'`{t}`' for t in e.trace_ids)}" if e.trace_ids else ""
    # Evidence descriptions may quote span attributes: untrusted text, shown as data on one line.
    return f"- {cell(e.kind)}: {cell(e.description)}{shift}{traces}"


def _root_cause(diagnosis: Diagnosis | None) -> str:
    if diagnosis is None:
        return "No diagnosis was recorded for this incident."
    top = top_candidate(diagnosis)
    if top is None:
        return (
            f"The Brain abstained: {cell(diagnosis.summary or 'no candidate was strong enough')}."
        )
    where = f"`{top.service}`" + (f" operation `{top.operation}`" if top.operation else "")
    if top.attribute:
        where += f" where `{top.attribute}` = `{top.attribute_value}`"
    lines = [
        f"**{top.fault_class}** in {where} (score {fmt_num(top.score)}, confidence {fmt_pct(top.confidence)}).",
    ]
    if diagnosis.summary:
        lines += ["", f"Diagnosis: {cell(diagnosis.summary)}"]
    lines += [
        "",
        f"Incident window {fmt_time(diagnosis.window_start)} to {fmt_time(diagnosis.window_end)}, compared "
        f"with the baseline {fmt_time(diagnosis.baseline_start)} to {fmt_time(diagnosis.baseline_end)}.",
    ]
    if top.evidence:
        lines += ["", "Evidence:", ""] + [_evidence_line(e) for e in top.evidence]
    others = [c for c in diagnosis.candidates if c is not top]
    if others:
        lines += [
            "",
            "Other candidates:",
            "",
            "| service | fault class | score | confidence |",
            "| --- | --- | --- | --- |",
        ]
        for c in sorted(others, key=lambda c: -c.score):
            lines.append(
                f"| {cell(c.service)} | {cell(c.fault_class)} | {fmt_num(c.score)} | {fmt_pct(c.confidence)} |"
            )
    if diagnosis.narrative:
        lines += ["", "Narrative (from the diagnosis):", ""]
        lines += ["> " + ln for ln in diagnosis.narrative.strip().splitlines()]
    return "\n".join(lines)


def _resolution(
    rem: Remediation | None, incident: Incident, impact: Impact, ttm_s: float | None
) -> str:
    if rem is None:
        return f"No automated remediation was applied. Final state: **{incident.state}**."
    params = ", ".join(f"`{k}` = `{v}`" for k, v in sorted(rem.params.items())) or "no parameters"
    lines = [
        f"Action `{rem.action}` on `{rem.service or '?'}` with {params}, through {_pr_ref(rem)}."
    ]
    if rem.commit_sha:
        lines.append(f"Commit `{rem.commit_sha}`.")
    if rem.merged and rem.merged_at is not None:
        detect = (
            f", {fmt_duration((rem.merged_at - incident.opened_at) / NS_PER_S)} after detection"
        )
        lines.append(
            f"Merged at {fmt_time(rem.merged_at)}: time to mitigate {fmt_duration(ttm_s or 0.0)} from onset{detect}."
        )
    elif not rem.merged:
        lines.append("The pull request was not merged.")
    if rem.verified is True:
        when = f" at {fmt_time(rem.verified_at)}" if rem.verified_at is not None else ""
        lines.append(f"Verification passed{when}: {cell(rem.verification or 'signals recovered')}.")
    elif rem.verified is False:
        when = f" at {fmt_time(rem.verified_at)}" if rem.verified_at is not None else ""
        lines.append(
            f"Verification failed{when}: {cell(rem.verification or 'signals did not recover')}."
        )
    if rem.reverted:
        when = f" at {fmt_time(rem.reverted_at)}" if rem.reverted_at is not None else ""
        via = f" ([revert]({rem.revert_pr_url}))" if rem.revert_pr_url else ""
        lines.append(f"The fix was reverted{when}{via}.")
    if rem.escalated or incident.state == "escalated":
        lines.append("The incident was escalated to a person.")
    lines.append(f"Outcome: **{rem.outcome}**.")
    lines = [f"- {ln}" for ln in lines]
    if rem.diff.strip():
        diff = rem.diff.strip()
        if len(diff) > _MAX_DIFF_CHARS:
            diff = diff[:_MAX_DIFF_CHARS] + "\n... (diff truncated)"
        # A fence longer than any backtick run inside the diff, so the diff cannot close it.
        longest = max((len(run) for run in re.findall(r"`+", diff)), default=0)
        fence = "`" * max(3, longest + 1)
        lines += ["", f"{fence}diff", diff, fence]
    return "\n".join(lines)


def _timeline(audit: Sequence[AuditAction], impact: Impact) -> str:
    rows = [
        "| time | actor | action | outcome | reason |",
        "| --- | --- | --- | --- | --- |",
        f"| {fmt_time(impact.start)} | signals | first anomalous window | - | impact starts |",
    ]
    for a in sorted(audit, key=lambda a: (a.at, a.actor, a.action)):
        rows.append(
            f"| {fmt_time(a.at)} | {cell(a.actor)} | {cell(a.action)} | {cell(a.outcome)} | {cell(a.reason)} |"
        )
    if not impact.ongoing:
        rows.append(f"| {fmt_time(impact.end)} | signals | recovered | - | impact ends |")
    return "\n".join(rows)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the sections are written from: the records and the figures `build_postmortem` derived."""

    incident: Incident
    impact: Impact
    top: Candidate | None
    diagnosis: Diagnosis | None
    rem: Remediation | None
    outcome: str
    ttd_s: float
    ttm_s: float | None
    restart_at: int | None
    anomalies: Sequence[Anomaly]
    audit: Sequence[AuditAction]
    similar: Sequence[SimilarIncident]
    slos: Sequence[Slo]
    detect_target_s: float


def _went_well(f: Facts) -> list[str]:
    out = []
    if f.ttd_s <= f.detect_target_s:
        out.append(
            f"Detected {fmt_duration(f.ttd_s)} after onset, within the {fmt_duration(f.detect_target_s)} target."
        )
    if f.restart_at is not None and f.incident.opened_at <= f.restart_at:
        out.append(f"Detected before the first restart ({fmt_time(f.restart_at)}).")
    if f.top is not None and f.top.confidence >= 0.7:
        out.append(
            f"The diagnosis named `{f.top.fault_class}` in `{f.top.service}` with {fmt_pct(f.top.confidence)} confidence."
        )
    if f.rem is not None and f.rem.verified:
        out.append(f"The fix `{f.rem.action}` was verified: the signals recovered.")
    if f.rem is not None and f.rem.merged and not f.rem.reverted and f.rem.outcome != "escalated":
        out.append("Mitigated through a reviewed, reversible GitOps change.")
    if f.impact.failed_requests == 0:
        out.append("No request failed on the affected keys.")
    return out or ["Nothing stood out as going well; see the items below."]


def _went_badly(f: Facts) -> list[str]:
    out = []
    if f.ttd_s > f.detect_target_s:
        out.append(
            f"Detection took {fmt_duration(f.ttd_s)}, over the {fmt_duration(f.detect_target_s)} target."
        )
    if f.restart_at is not None and f.restart_at < f.incident.opened_at:
        out.append(f"The first restart ({fmt_time(f.restart_at)}) came before detection.")
    if f.diagnosis is not None and f.top is None:
        out.append("The diagnosis abstained: no root-cause candidate was strong enough.")
    elif f.top is not None and f.top.confidence < 0.5:
        out.append(f"The diagnosis was uncertain ({fmt_pct(f.top.confidence)} confidence).")
    if f.rem is not None and f.rem.reverted:
        out.append(f"The fix `{f.rem.action}` did not restore the signals and was reverted.")
    if f.rem is not None and f.rem.verified is None and f.rem.merged and not f.rem.reverted:
        out.append("The fix was merged but its verification result was not recorded.")
    if f.outcome == "escalated" or f.incident.state == "escalated":
        out.append("The incident needed a person (escalated).")
    if f.rem is not None:
        repeats = [s for s in f.similar if s.action == f.rem.action and s.outcome in FAILED]
        if repeats:
            ids = ", ".join(f"`{s.incident_id}`" for s in repeats[:3])
            out.append(f"`{f.rem.action}` had already failed for a similar incident ({ids}).")
    if f.impact.failed_requests > 0:
        out.append(f"{f.impact.failed_requests:,} requests failed.")
    if f.impact.conversions_lost:
        out.append(f"{fmt_num(f.impact.conversions_lost)} {f.impact.cuj} conversions were lost.")
    if f.impact.ongoing:
        out.append("The impact had not ended when this post-mortem was written.")
    return out or ["Nothing stood out as going badly."]


# action -> follow-up when the action mitigated without removing the cause
_FOLLOW_UPS = {
    "raise_memory_limit": "Root-cause the memory growth in `{service}`{version}: a higher limit only delays the next OOM kill.",
    "restart": "Find why `{service}` needed a restart: a restart clears the symptom, not the cause.",
    "scale_replicas": "Review capacity and profile the hot path of `{service}`: more replicas cost money and may only move the bottleneck.",
    "raise_timeout": "Review the dependency's latency with its owner: a longer timeout in `{service}` spends the caller's latency budget.",
    "set_feature_flag": "Fix the behaviour behind the flag in `{service}` and test it before turning the flag back on.",
    "revert_commit": "Add validation for the configuration change reverted in `{service}` so that it cannot merge again.",
    "rollback_version": "Fix the regression in the rolled-back version of `{service}`{version} and gate its redeploy on a canary check.",
}


def _action_items(f: Facts) -> list[str]:
    out = []
    service = (f.rem.service if f.rem and f.rem.service else None) or (
        f.top.service if f.top else "?"
    )
    version = ""
    if f.rem is not None:
        v = f.rem.params.get("from_version") or f.rem.params.get("version")
        version = f" (version `{v}`)" if v else ""
    if f.rem is not None and f.rem.reverted:
        pr = f" ({_pr_ref(f.rem)})" if (f.rem.pr_id or f.rem.pr_url) else ""
        out.append(
            f"Investigate why `{f.rem.action}`{pr} did not fix `{f.top.fault_class if f.top else 'the fault'}` "
            f"in `{service}`; it is now avoided for fingerprint `{f.incident.fingerprint}`."
        )
    if f.outcome == "escalated" or f.incident.state == "escalated":
        out.append("Record the manual remediation the responder applied, so that Memory learns it.")
    if f.rem is not None and not f.rem.reverted and f.rem.action in _FOLLOW_UPS:
        out.append(_FOLLOW_UPS[f.rem.action].format(service=service, version=version))
    if f.diagnosis is not None and f.top is None:
        out.append(
            "Extend the diagnosis so that this fault is explained next time (the Brain abstained)."
        )
    if f.ttd_s > f.detect_target_s:
        detectors = ", ".join(sorted({f"`{a.detector}`" for a in f.anomalies})) or "the detectors"
        out.append(f"Tune {detectors} to detect this within {fmt_duration(f.detect_target_s)}.")
    if f.restart_at is not None and f.restart_at < f.incident.opened_at:
        out.append(
            "Alert on the saturation trend before the first restart (trend-to-limit detector)."
        )
    return out or ["No follow-up needed beyond the fix."]


def _similar(similar: Sequence[SimilarIncident]) -> str:
    if not similar:
        return "None found in memory."
    lines = []
    for s in similar:
        ref = f"[{s.incident_id}]({s.link})" if s.link else f"`{s.incident_id}`"
        fix = f"`{s.action}` -> {s.outcome}" if s.action else f"no fix, {s.outcome}"
        when = f", resolved {fmt_time(s.resolved_at)}" if s.resolved_at is not None else ""
        lines.append(
            f"- {ref}: similarity {s.similarity:.2f}, {s.fault_class or 'unclassified'} on "
            f"{', '.join(s.services) or '?'}, {fix}{when}"
        )
    return "\n".join(lines)


def _bullets(items: Iterable[str]) -> str:
    return "\n".join(f"- {i}" for i in items)


def _template() -> Template:
    text = (
        resources.files("sinks.memory")
        .joinpath("postmortem_template.md")
        .read_text(encoding="utf-8")
    )
    return Template(text)


def render_markdown(f: Facts, title: str) -> str:
    """The post-mortem's Markdown (blank runs collapsed, one final newline)."""
    markdown = _template().substitute(
        title=title,
        summary=_summary(f.incident, f.impact, f.top, f.rem, f.outcome),
        impact=_impact_section(f.impact, f.slos),
        detection=_detection(f.incident, f.anomalies, f.impact, f.ttd_s),
        root_cause=_root_cause(f.diagnosis),
        resolution=_resolution(f.rem, f.incident, f.impact, f.ttm_s),
        timeline=_timeline(f.audit, f.impact),
        went_well=_bullets(_went_well(f)),
        went_badly=_bullets(_went_badly(f)),
        action_items=_bullets(_action_items(f)),
        similar=_similar(f.similar),
        schema=POSTMORTEM_SCHEMA,
    )
    return re.sub(r"\n{3,}", "\n\n", markdown).strip() + "\n"
