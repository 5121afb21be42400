"""The whole deterministic diagnosis of one incident: population analysis, resource and change
evidence, ranking, and a readable summary. No network, no LLM: this alone is a complete answer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from sinks.brain.changes import ChangeFinding, commit_changes, flag_changes, version_changes
from sinks.brain.config import DiagnosisConfig
from sinks.brain.pods import PodFinding, pod_findings
from sinks.brain.population import PopulationReport, analyze_population
from sinks.brain.rank import Ranking, rank
from sinks.brain.resources import ResourceFinding, resource_evidence
from sre_space.records import Diagnosis, SignalWindow
from sre_space.timeutil import NS_PER_S

Window = tuple[int, int]

# The incident window starts a minute before Scout opened the incident: the onset (a few windows
# of persistence earlier) is inside, and healthy minutes do not dilute it. The baseline is the
# ten minutes before that. The live responders and the backtests both use these.
LEAD_IN_NS = 60 * NS_PER_S
BASELINE_NS = 10 * 60 * NS_PER_S


def incident_windows(opened_ns: int, end_ns: int) -> tuple[Window, Window]:
    """The incident window (to `end_ns`, at least a second long) and its baseline."""
    start = opened_ns - LEAD_IN_NS
    return (start, max(end_ns, opened_ns + NS_PER_S)), (start - BASELINE_NS, start)


@dataclass(frozen=True, slots=True)
class Analysis:
    """The diagnosis plus what it was built from (for the narrator, the store and debugging)."""

    diagnosis: Diagnosis
    report: PopulationReport
    resources: dict[str, list[ResourceFinding]]
    changes: list[ChangeFinding]
    ranking: Ranking
    pods: tuple[PodFinding, ...] = ()


def default_baseline(window: Window) -> Window:
    """The window of the same length just before the incident window."""
    length = window[1] - window[0]
    return (window[0] - length, window[0])


def analyze(
    spans: pl.DataFrame,
    window: Window,
    baseline: Window | None = None,
    *,
    metrics: Iterable[SignalWindow | dict[str, Any]] | pl.DataFrame = (),
    commits: Iterable[dict[str, Any]] = (),
    similar: Sequence[dict[str, Any]] = (),
    incident_id: str = "",
    onset_ns: int | None = None,
    cfg: DiagnosisConfig | None = None,
) -> Analysis:
    """Diagnose the incident window [start_ns, end_ns) of `spans` against `baseline`.

    `metrics`: SignalWindow records or metric-sample dicts (see `resources`); `commits`: GitOps
    commits as dicts (see `changes`); `similar`: past incidents from Memory; `cfg`: the
    thresholds, by default the pipeline config's `diagnosis:` section. Returns the Diagnosis
    (candidates ranked, or abstained) and the evidence it was built from.
    """
    # Without an explicit config: the pipeline config's `diagnosis:` section (defaults + SRE_CONFIG).
    cfg = (cfg or DiagnosisConfig.from_settings()).validate()
    baseline = baseline or default_baseline(window)
    onset = window[0] if onset_ns is None else onset_ns
    report, inc, base = analyze_population(spans, window, baseline, cfg)
    metrics = metrics if isinstance(metrics, pl.DataFrame) else list(metrics)
    resources = resource_evidence(metrics, window, baseline, cfg)
    pods = pod_findings(metrics, report, inc, base, window, baseline, cfg)
    changes = (
        commit_changes(commits, onset, window[1], cfg)
        + version_changes(inc, base, since_ns=onset - round(cfg.change_lookback_s * NS_PER_S))
        + flag_changes(inc, base)
    )
    ranking = rank(report, inc, base, resources, changes, cfg, similar, pods)
    diagnosis = Diagnosis(
        incident_id=incident_id,
        window_start=window[0],
        window_end=window[1],
        baseline_start=report.baseline[0],
        baseline_end=report.baseline[1],
        candidates=ranking.candidates,
        abstained=ranking.abstained,
        summary=summarize(ranking, report),
    )
    return Analysis(diagnosis, report, resources, changes, ranking, tuple(pods))


def diagnose(
    spans: pl.DataFrame, window: Window, baseline: Window | None = None, **kwargs: Any
) -> Diagnosis:
    """Just the Diagnosis of `analyze`."""
    return analyze(spans, window, baseline, **kwargs).diagnosis


def summarize(ranking: Ranking, report: PopulationReport) -> str:
    """The deterministic, human-readable summary: the answer with its numbers, or why it abstains."""
    lines: list[str] = []
    head = (
        f"{report.incident_traces} traces in the incident window, {report.baseline_traces} in the "
        f"baseline; failing traces {report.failing_trace_rate_baseline:.1%} -> "
        f"{report.failing_trace_rate_incident:.1%}; mean end-to-end "
        f"{report.e2e_baseline_ms:.1f} -> {report.e2e_incident_ms:.1f} ms. "
        f"Baseline: {report.baseline_used}."
    )
    if not ranking.candidates:
        return f"Not sure: {ranking.reason}. Escalating to a person. {head}"
    top = ranking.candidates[0]
    where = f"{top.service}" + (f" '{top.operation}'" if top.operation else "")
    if ranking.abstained:
        lines.append(
            f"Not sure ({ranking.reason}): the best guess is {where} ({top.fault_class}), but the "
            "evidence is too thin to act on. Escalating to a person."
        )
    else:
        lines.append(
            f"Root cause: {where}, fault class {top.fault_class} (confidence {ranking.confidence:.2f})."
        )
    if top.attribute:
        lines.append(f"Implicated: {top.attribute}={top.attribute_value}.")
    segments = [
        ev.description.split(" carries ")[0]
        for ev in top.evidence
        if ev.kind == "attribute" and not ev.description.startswith(f"{top.attribute}=")
    ]
    if segments:
        lines.append(f"Concentrated in {', '.join(segments[:2])}.")
    lines.append(head)
    lines.append("Evidence:")
    for ev in top.evidence[:8]:
        ids = f" (e.g. trace {', '.join(ev.trace_ids[:2])})" if ev.trace_ids else ""
        lines.append(f"- {ev.description}{ids}")
    if top.actions and not ranking.abstained:
        lines.append(f"Recommended remediation: {', '.join(top.action_names)}.")
    others = ranking.candidates[1:4]
    if others:
        lines.append(
            "Other candidates: "
            + "; ".join(f"{c.service} ({c.fault_class}, score {c.score:.2f})" for c in others)
            + "."
        )
    return "\n".join(lines)
