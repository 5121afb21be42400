"""Post-mortems built from data only: the incident, its anomalies, the diagnosis, the remediation,
the audit log and the signal windows of the incident's keys.

Every number in the Markdown is computed here from those records (no LLM, no wall clock), so the same
inputs always give the same text, and a test can recompute each figure from the windows it came from.
How each figure is computed:

- impact interval: from the earliest anomaly onset (the incident's `opened_at` when there is none) to
  the incident's `recovered_at`, else the remediation's verification time, else `updated_at`;
- a window is "in the impact" when it overlaps that interval;
- failed requests: sum of `errors` of the span windows in the impact whose (service, operation) is
  an anomalous span key; when no span key is anomalous, of every span window given;
- CUJ conversions lost: sum over the CUJ windows in the impact of (baseline - observed conversion) x
  started, where the baseline is the CUJ conversion anomaly's `expected`, else completed / started of
  the windows before the impact; the net sum is floored at zero (noise cancels, a loss is never negative);
- error budget spent per SLO: bad events in the impact / ((1 - objective) x expected events in the SLO
  period), the traffic rate being extrapolated from every window of the SLO's keys given; bad events
  are counted as Scout's SLO burn counts them (errors, slow requests, unfinished journeys).
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import Any

from operators.scout.detect import slo
from sre_space.records import (
    Anomaly,
    AuditAction,
    Candidate,
    Diagnosis,
    Evidence,
    Incident,
    Record,
    SignalWindow,
)
from sre_space.timeutil import NS_PER_S, ns_to_datetime, rfc3339_to_ns

POSTMORTEM_SCHEMA = "sre.postmortem/v1"
REMEDIATION_SCHEMA = "sre.remediation-outcome/v1"

# Fix outcomes as the Fixer reports them, plus the two cases where there was no fix.
OUTCOMES = ("verified", "merged", "reverted", "escalated", "none")
WORKED = "verified"
FAILED = frozenset({"reverted"})

_MAX_DIFF_CHARS = 6000


# --------------------------------------------------------------------------------------------------
# Inputs that records.py does not (yet) have


@dataclass(frozen=True, slots=True)
class Remediation(Record):
    """What the Fixer did for one incident and how it ended (the post-mortem's resolution input)."""

    action: str
    service: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    pr_id: str | None = None
    pr_url: str | None = None
    commit_sha: str | None = None
    diff: str = ""
    opened_at: str | None = None
    merged: bool = False
    merged_at: str | None = None
    verified: bool | None = None
    verified_at: str | None = None
    verification: str = ""
    reverted: bool = False
    reverted_at: str | None = None
    revert_pr_url: str | None = None
    escalated: bool = False
    schema: str = REMEDIATION_SCHEMA

    @property
    def outcome(self) -> str:
        """`reverted`, `escalated`, `verified`, `merged` or `none`, worst first."""
        if self.reverted:
            return "reverted"
        if self.escalated:
            return "escalated"
        if self.verified:
            return "verified"
        if self.merged:
            return "merged"
        return "none"


@dataclass(frozen=True, slots=True)
class SLO:
    """One service-level objective, with the same meaning as the `slos:` section Scout alerts on.

    Bad events: `availability` -> errors of the matching span windows; `latency` -> requests slower
    than `threshold_ms`, estimated from the window quantiles; `conversion` -> journeys of `cuj` that
    started and did not complete. Services and operations are glob patterns; span windows count only
    for the listed span kinds (a window without a span kind always counts).
    """

    name: str
    objective: float
    type: str = "availability"
    services: tuple[str, ...] = ("*",)
    operations: tuple[str, ...] = ("*",)
    span_kinds: tuple[str, ...] = ("server",)
    threshold_ms: float | None = None
    cuj: str | None = None
    period_days: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 < self.objective < 1.0:
            raise ValueError(f"SLO {self.name}: objective must be in (0, 1), got {self.objective}")
        if self.type not in ("availability", "latency", "conversion"):
            raise ValueError(
                f"SLO {self.name}: type must be availability, latency or conversion, got {self.type!r}"
            )
        if self.type == "latency" and self.threshold_ms is None:
            raise ValueError(f"SLO {self.name}: a latency SLO needs threshold_ms")
        if self.type == "conversion" and not self.cuj:
            raise ValueError(f"SLO {self.name}: a conversion SLO needs cuj (the journey name)")

    @classmethod
    def from_spec(cls, name: str, spec: Any, *, period_days: float = 30.0) -> SLO:
        """From an object shaped like the `slos.objectives.<name>` config entry (type, objective...)."""
        return cls(
            name=name,
            objective=float(spec.objective),
            type=str(spec.type),
            services=tuple(getattr(spec, "services", ("*",))),
            operations=tuple(getattr(spec, "operations", ("*",))),
            span_kinds=tuple(getattr(spec, "span_kinds", ("server",))),
            threshold_ms=getattr(spec, "threshold_ms", None),
            cuj=getattr(spec, "cuj", None),
            period_days=period_days,
        )

    def matches(self, w: SignalWindow) -> bool:
        """Whether a window counts towards this SLO."""
        if self.type == "conversion":
            return w.kind == "cuj" and w.cuj == self.cuj
        if w.kind != "span" or not w.service:
            return False
        if not any(fnmatch.fnmatchcase(w.service, p) for p in self.services):
            return False
        if not any(fnmatch.fnmatchcase(w.operation or "", p) for p in self.operations):
            return False
        if w.span_kind is not None:
            return slo.normalize_span_kind(w.span_kind) in {
                slo.normalize_span_kind(k) for k in self.span_kinds
            }
        return True

    def events(self, w: SignalWindow) -> int:
        """All events of a matching window (requests, or journeys started)."""
        return (w.started or 0) if self.type == "conversion" else w.count

    def bad(self, w: SignalWindow) -> float:
        """Bad events of a matching window."""
        if self.type == "conversion":
            started = w.started or 0
            return float(started - min(w.completed or 0, started))
        if self.type == "availability":
            return float(min(w.errors, w.count))
        assert self.threshold_ms is not None
        return w.count * share_over_threshold(w, self.threshold_ms)


def share_over_threshold(w: SignalWindow, threshold_ms: float) -> float:
    """Estimated share of a window's requests slower than the threshold (Scout's estimator, so the
    post-mortem's budget and Scout's burn rate never disagree)."""
    return slo.share_over_threshold(w.p50_ms, w.p95_ms, w.p99_ms, w.max_ms, threshold_ms)


@dataclass(frozen=True, slots=True)
class SimilarIncident(Record):
    """A past incident found in memory, with how similar it is and how its fix ended."""

    incident_id: str
    similarity: float
    fault_class: str = ""
    service: str = ""
    services: list[str] = field(default_factory=list)
    fingerprint: str = ""
    action: str = ""
    outcome: str = "none"
    resolved_at: str = ""
    title: str = ""
    link: str = ""

    def for_brain(self) -> dict[str, Any]:
        """The dict the Brain's ranking takes: outcome `worked` / `failed` / as recorded."""
        verdict = {WORKED: "worked", **dict.fromkeys(FAILED, "failed")}.get(
            self.outcome, self.outcome
        )
        return {
            "incident_id": self.incident_id,
            "fault_class": self.fault_class,
            "service": self.service,
            "action": self.action,
            "outcome": verdict,
            "similarity": self.similarity,
        }

    def to_evidence(self) -> Evidence:
        """The Brain's view: an Evidence whose `incident` value is the similarity."""
        fix = (
            f"fixed by {self.action}: {self.outcome}" if self.action else f"outcome {self.outcome}"
        )
        where = ", ".join(self.services) or "unknown service"
        return Evidence(
            kind="similar_incident",
            description=(
                f"past incident {self.incident_id} ({self.fault_class or 'unclassified'} on {where}; "
                f"{fix}); similarity {self.similarity:.2f}"
            ),
            incident=round(self.similarity, 4),
        )


@dataclass(frozen=True, slots=True)
class BudgetSpent(Record):
    """Error budget one incident spent against one SLO."""

    slo: str
    objective: float
    bad_events: float
    budget_events: float
    spent_pct: float
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class Impact(Record):
    """The impact figures, each computed from the signal windows (see the module docstring)."""

    start: str
    end: str
    duration_s: float
    requests: int
    failed_requests: int
    conversions_lost: float | None
    conversion_baseline: float | None
    conversion_observed: float | None
    cuj: str | None
    error_budget: list[BudgetSpent]
    ongoing: bool


@dataclass(frozen=True, slots=True)
class PostMortem(Record):
    """A post-mortem: the rendered Markdown plus the facts it was built from, for store and index."""

    incident_id: str
    fingerprint: str
    title: str
    severity: str
    state: str
    services: list[str]
    fault_class: str
    culprit: str
    action: str
    outcome: str
    opened_at: str
    onset: str
    resolved_at: str
    duration_s: float
    requests: int
    failed_requests: int
    conversions_lost: float | None
    error_budget: list[dict[str, Any]]
    time_to_detect_s: float
    time_to_mitigate_s: float | None
    pr_url: str | None
    markdown: str
    digest: str
    similar: list[dict[str, Any]] = field(default_factory=list)
    prose: str = "deterministic"
    prose_note: str = ""
    schema: str = POSTMORTEM_SCHEMA


# --------------------------------------------------------------------------------------------------
# Formatting: one place, so the numbers check and the tests see the same spelling


def fmt_time(ts: str) -> str:
    """RFC 3339 to `YYYY-MM-DDTHH:MM:SSZ` (UTC, seconds)."""
    return ns_to_datetime(rfc3339_to_ns(ts)).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def _cell(text: Any) -> str:
    """Table-cell safe text: untrusted strings (span attributes, reasons) cannot break the table."""
    s = str(text).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return s if len(s) <= 300 else s[:297] + "..."


def _ns(ts: str) -> int:
    return rfc3339_to_ns(ts)


# --------------------------------------------------------------------------------------------------
# Impact: pure functions over the windows, also what the tests call to recompute


def impact_interval(
    incident: Incident, anomalies: Sequence[Anomaly], remediation: Remediation | None
) -> tuple[str, str, bool]:
    """(start, end, ongoing): earliest onset to recovery (see the module docstring)."""
    start = min((a.onset for a in anomalies), key=_ns, default=incident.opened_at)
    if _ns(incident.opened_at) < _ns(start):
        start = incident.opened_at
    if incident.recovered_at:
        return start, incident.recovered_at, False
    if remediation is not None and remediation.verified and remediation.verified_at:
        return start, remediation.verified_at, False
    return start, incident.updated_at, incident.state not in ("resolved", "recovered")


def in_interval(w: SignalWindow, start: str, end: str) -> bool:
    """Whether a window overlaps [start, end)."""
    return _ns(w.window_start) < _ns(end) and _ns(w.window_end) > _ns(start)


def affected_span_keys(anomalies: Sequence[Anomaly]) -> set[tuple[str, str]]:
    """(service, operation) of every anomalous span key."""
    return {
        (a.service, a.operation)
        for a in anomalies
        if a.kind == "span" and a.service is not None and a.operation is not None
    }


def failed_requests(
    windows: Sequence[SignalWindow], anomalies: Sequence[Anomaly], start: str, end: str
) -> tuple[int, int]:
    """(requests, failed requests) of the affected span keys over the impact interval."""
    keys = affected_span_keys(anomalies)
    total = failed = 0
    for w in windows:
        if w.kind != "span" or not in_interval(w, start, end):
            continue
        if keys and (w.service, w.operation) not in keys:
            continue
        total += w.count
        failed += w.errors
    return total, failed


def conversions_lost(
    windows: Sequence[SignalWindow], anomalies: Sequence[Anomaly], start: str, end: str
) -> tuple[str | None, float | None, float | None, float | None]:
    """(cuj, conversions lost, baseline, observed) for the most affected CUJ; Nones when no CUJ."""
    best: tuple[str | None, float | None, float | None, float | None] = (None, None, None, None)
    for cuj in sorted({w.cuj for w in windows if w.kind == "cuj" and w.cuj}):
        series = [w for w in windows if w.kind == "cuj" and w.cuj == cuj]
        expected = [
            a.expected
            for a in anomalies
            if a.kind == "cuj" and a.cuj == cuj and a.signal == "conversion"
        ]
        if expected:
            baseline = expected[0]
        else:
            before = [w for w in series if _ns(w.window_end) <= _ns(start) and w.started]
            started = sum(w.started or 0 for w in before)
            if not started:
                continue
            baseline = sum(w.completed or 0 for w in before) / started
        during = [
            w
            for w in series
            if in_interval(w, start, end) and w.started and w.conversion is not None
        ]
        if not during:
            continue
        lost = sum((baseline - (w.conversion or 0.0)) * (w.started or 0) for w in during)
        started_during = sum(w.started or 0 for w in during)
        observed = sum((w.conversion or 0.0) * (w.started or 0) for w in during) / started_during
        lost = max(0.0, lost)
        if best[1] is None or lost > best[1]:
            best = (cuj, lost, baseline, observed)
    return best


def budget_spent(
    slo: SLO, windows: Sequence[SignalWindow], start: str, end: str
) -> BudgetSpent | None:
    """Error budget spent by the impact against one SLO; None when no window matches it."""
    mine = [w for w in windows if slo.matches(w)]
    if not mine:
        return None
    span_s = (
        max(_ns(w.window_end) for w in mine) - min(_ns(w.window_start) for w in mine)
    ) / NS_PER_S
    if span_s <= 0:
        return None
    rate = sum(slo.events(w) for w in mine) / span_s
    budget = (1.0 - slo.objective) * rate * slo.period_days * 86_400
    bad = sum(slo.bad(w) for w in mine if in_interval(w, start, end))
    spent = 100.0 * bad / budget if budget > 0 else 0.0
    return BudgetSpent(
        slo=slo.name,
        objective=slo.objective,
        bad_events=bad,
        budget_events=budget,
        spent_pct=spent,
        estimated=slo.type == "latency",
    )


def compute_impact(
    incident: Incident,
    anomalies: Sequence[Anomaly],
    remediation: Remediation | None,
    windows: Sequence[SignalWindow],
    slos: Sequence[SLO] = (),
) -> Impact:
    """Every impact figure of the post-mortem."""
    start, end, ongoing = impact_interval(incident, anomalies, remediation)
    requests, failed = failed_requests(windows, anomalies, start, end)
    cuj, lost, baseline, observed = conversions_lost(windows, anomalies, start, end)
    budgets = [b for b in (budget_spent(s, windows, start, end) for s in slos) if b is not None]
    return Impact(
        start=start,
        end=end,
        duration_s=(_ns(end) - _ns(start)) / NS_PER_S,
        requests=requests,
        failed_requests=failed,
        conversions_lost=lost,
        conversion_baseline=baseline,
        conversion_observed=observed,
        cuj=cuj,
        error_budget=budgets,
        ongoing=ongoing,
    )


def first_restart(windows: Sequence[SignalWindow]) -> str | None:
    """Start of the first window where a restart counter went up, or None."""
    by_key: dict[tuple[str, str, str], list[SignalWindow]] = {}
    for w in windows:
        if w.kind == "metric" and w.metric and "restart" in w.metric and w.value is not None:
            by_key.setdefault(w.key, []).append(w)
    firsts = []
    for series in by_key.values():
        series.sort(key=lambda w: _ns(w.window_start))
        for prev, cur in itertools.pairwise(series):
            if (cur.value or 0) > (prev.value or 0):
                firsts.append(cur.window_start)
                break
    return min(firsts, key=_ns, default=None)


# --------------------------------------------------------------------------------------------------
# Retrieval text


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
            if c.remediations:
                parts.append("remediations: " + " ".join(_words(r) for r in c.remediations))
    if remediation is not None:
        parts.append(f"action {remediation.action} {_words(remediation.action)}")
    return "\n".join(p for p in parts if p)


# --------------------------------------------------------------------------------------------------
# Sections


def _top(diagnosis: Diagnosis | None) -> Candidate | None:
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
        + (f" Detected as: {_cell(incident.summary.strip())}." if incident.summary.strip() else ""),
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


def _impact_section(impact: Impact, slos: Sequence[SLO]) -> str:
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
                lines.append(f"| {_cell(s.name)} | {fmt_pct(s.objective)} | no signal | - | - |")
                continue
            est = " (estimated from quantiles)" if b.estimated else ""
            lines.append(
                f"| {_cell(s.name)} | {fmt_pct(s.objective)} | {fmt_num(b.bad_events)}{est} | "
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
        for a in sorted(anomalies, key=lambda a: (_ns(a.onset), a.id)):
            key = "/".join(x for x in (a.service, a.operation or a.cuj or a.metric) if x)
            traces = ", ".join(f"`{t}`" for t in a.exemplar_trace_ids[:3]) or "-"
            lines.append(
                f"| {fmt_time(a.onset)} | {_cell(a.detector)} | {_cell(a.signal)} | {_cell(key)} | "
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
    return f"- {_cell(e.kind)}: {_cell(e.description)}{shift}{traces}"


def _root_cause(diagnosis: Diagnosis | None) -> str:
    if diagnosis is None:
        return "No diagnosis was recorded for this incident."
    top = _top(diagnosis)
    if top is None:
        return (
            f"The Brain abstained: {_cell(diagnosis.summary or 'no candidate was strong enough')}."
        )
    where = f"`{top.service}`" + (f" operation `{top.operation}`" if top.operation else "")
    if top.attribute:
        where += f" where `{top.attribute}` = `{top.attribute_value}`"
    lines = [
        f"**{top.fault_class}** in {where} (score {fmt_num(top.score)}, confidence {fmt_pct(top.confidence)}).",
    ]
    if diagnosis.summary:
        lines += ["", f"Diagnosis: {_cell(diagnosis.summary)}"]
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
                f"| {_cell(c.service)} | {_cell(c.fault_class)} | {fmt_num(c.score)} | {fmt_pct(c.confidence)} |"
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
    if rem.merged and rem.merged_at:
        detect = f", {fmt_duration((_ns(rem.merged_at) - _ns(incident.opened_at)) / NS_PER_S)} after detection"
        lines.append(
            f"Merged at {fmt_time(rem.merged_at)}: time to mitigate {fmt_duration(ttm_s or 0.0)} from onset{detect}."
        )
    elif not rem.merged:
        lines.append("The pull request was not merged.")
    if rem.verified is True:
        when = f" at {fmt_time(rem.verified_at)}" if rem.verified_at else ""
        lines.append(
            f"Verification passed{when}: {_cell(rem.verification or 'signals recovered')}."
        )
    elif rem.verified is False:
        when = f" at {fmt_time(rem.verified_at)}" if rem.verified_at else ""
        lines.append(
            f"Verification failed{when}: {_cell(rem.verification or 'signals did not recover')}."
        )
    if rem.reverted:
        when = f" at {fmt_time(rem.reverted_at)}" if rem.reverted_at else ""
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
    for a in sorted(audit, key=lambda a: (_ns(a.at), a.actor, a.action)):
        rows.append(
            f"| {fmt_time(a.at)} | {_cell(a.actor)} | {_cell(a.action)} | {_cell(a.outcome)} | {_cell(a.reason)} |"
        )
    if not impact.ongoing:
        rows.append(f"| {fmt_time(impact.end)} | signals | recovered | - | impact ends |")
    return "\n".join(rows)


@dataclass(frozen=True, slots=True)
class _Facts:
    incident: Incident
    impact: Impact
    top: Candidate | None
    diagnosis: Diagnosis | None
    rem: Remediation | None
    outcome: str
    ttd_s: float
    restart_at: str | None
    anomalies: Sequence[Anomaly]
    similar: Sequence[SimilarIncident]
    detect_target_s: float


def _went_well(f: _Facts) -> list[str]:
    out = []
    if f.ttd_s <= f.detect_target_s:
        out.append(
            f"Detected {fmt_duration(f.ttd_s)} after onset, within the {fmt_duration(f.detect_target_s)} target."
        )
    if f.restart_at is not None and _ns(f.incident.opened_at) <= _ns(f.restart_at):
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


def _went_badly(f: _Facts) -> list[str]:
    out = []
    if f.ttd_s > f.detect_target_s:
        out.append(
            f"Detection took {fmt_duration(f.ttd_s)}, over the {fmt_duration(f.detect_target_s)} target."
        )
    if f.restart_at is not None and _ns(f.restart_at) < _ns(f.incident.opened_at):
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


def _action_items(f: _Facts) -> list[str]:
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
    if f.restart_at is not None and _ns(f.restart_at) < _ns(f.incident.opened_at):
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
        when = f", resolved {fmt_time(s.resolved_at)}" if s.resolved_at else ""
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


# --------------------------------------------------------------------------------------------------


def build_postmortem(
    incident: Incident,
    anomalies: Sequence[Anomaly],
    diagnosis: Diagnosis | None,
    remediation: Remediation | None,
    audit: Sequence[AuditAction],
    signals: Sequence[SignalWindow],
    *,
    slos: Sequence[SLO] = (),
    similar: Sequence[SimilarIncident] = (),
    detect_target_s: float = 120.0,
) -> PostMortem:
    """The post-mortem of one incident, from data only (deterministic: same inputs, same text).

    `signals` are the windows of the incident's keys, including a few before the onset (the CUJ
    baseline and the SLO traffic rate come from them). `similar` are past incidents from the index
    (the caller excludes this incident). `slos` are the objectives the error budget is spent against.
    """
    impact = compute_impact(incident, anomalies, remediation, signals, slos)
    top = _top(diagnosis)
    outcome = (
        remediation.outcome
        if remediation is not None
        else ("escalated" if incident.state == "escalated" else "none")
    )
    ttd_s = max(0.0, (_ns(incident.opened_at) - _ns(impact.start)) / NS_PER_S)
    ttm_s = None
    if remediation is not None and remediation.merged and remediation.merged_at:
        ttm_s = (_ns(remediation.merged_at) - _ns(impact.start)) / NS_PER_S
    facts = _Facts(
        incident=incident,
        impact=impact,
        top=top,
        diagnosis=diagnosis,
        rem=remediation,
        outcome=outcome,
        ttd_s=ttd_s,
        restart_at=first_restart(signals),
        anomalies=anomalies,
        similar=similar,
        detect_target_s=detect_target_s,
    )
    fault = top.fault_class if top else "unclassified"
    culprit = top.service if top else (incident.services[0] if incident.services else "")
    title = f"{fault} in {culprit}" if top else (incident.summary.strip() or "undiagnosed incident")
    title = _cell(f"{incident.id}: {title}")
    markdown = _template().substitute(
        title=title,
        summary=_summary(incident, impact, top, remediation, outcome),
        impact=_impact_section(impact, slos),
        detection=_detection(incident, anomalies, impact, ttd_s),
        root_cause=_root_cause(diagnosis),
        resolution=_resolution(remediation, incident, impact, ttm_s),
        timeline=_timeline(audit, impact),
        went_well=_bullets(_went_well(facts)),
        went_badly=_bullets(_went_badly(facts)),
        action_items=_bullets(_action_items(facts)),
        similar=_similar(similar),
        schema=POSTMORTEM_SCHEMA,
    )
    markdown = re.sub(r"\n{3,}", "\n\n", markdown).strip() + "\n"
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
