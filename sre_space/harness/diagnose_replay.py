"""The Brain over a replay: one diagnosis per incident, from the recording's own spans.

Each incident is diagnosed on a window from a minute before Scout opened it to its recovery or
the end of the recording, against the ten minutes before that window (`incident_windows`, as the
live responders do): healthy minutes neither dilute the incident window nor go missing from the
baseline.
Metrics come from the replay's own signals; GitOps commits from the caller (a live Brain reads them
from git; a backtest takes them from the recording's labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from operators.scout.detect.scoring import final_incidents
from sinks.brain.config import DiagnosisConfig
from sinks.brain.engine import analyze, incident_windows
from sinks.brain.loading import BRAIN_ATTRIBUTES, load_spans
from sinks.brain.scoring import score_diagnosis, summarize
from sre_space.records import Diagnosis, Incident, SignalWindow, read_jsonl
from sre_space.settings import PipelineConfig, env_config_paths, load_pipeline_config


def diagnose_replay(
    recordings: Sequence[str | Path],
    folder: str | Path,
    commits: Sequence[dict[str, Any]] = (),
    config: PipelineConfig | None = None,
) -> list[Diagnosis]:
    """Diagnose every incident of the replay in `folder` on Scout's incident windows, as the live
    responders do; writes `folder/diagnoses.jsonl`.

    The spans carry the `selected_attributes` of `config`, the one the replay ran with, and the
    Brain reads its `diagnosis:` section (else the defaults merged with SRE_CONFIG).
    """
    pipeline = config or load_pipeline_config(*env_config_paths())
    cfg = DiagnosisConfig.from_mapping(pipeline.extra.get("diagnosis"))
    folder = Path(folder)
    incidents = final_incidents(read_jsonl(str(folder / "incidents.jsonl"), Incident))
    diagnoses: list[Diagnosis] = []
    if incidents:
        # The replay dead-lettered what it could not read; the Brain works on the rest.
        attributes = None if config is None else span_attributes(config)
        spans = load_spans(recordings, attributes, strict=False)
        end_of_data = int(spans["end_ns"].cast(int).max() or 0) + 1  # type: ignore[arg-type]
        metrics = [
            s for s in read_jsonl(str(folder / "signals.jsonl"), SignalWindow) if s.kind == "metric"
        ]
        for incident in incidents:
            opened = incident.opened_at
            end = incident.recovered_at if incident.recovered_at is not None else end_of_data
            window, baseline = incident_windows(opened, end)
            analysis = analyze(
                spans,
                window,
                baseline,
                metrics=metrics,
                commits=commits,
                incident_id=incident.id,
                onset_ns=opened,
                cfg=cfg,
            )
            diagnoses.append(analysis.diagnosis)
    (folder / "diagnoses.jsonl").write_text(
        "".join(d.to_json() + "\n" for d in diagnoses), encoding="utf-8"
    )
    return diagnoses


def span_attributes(config: PipelineConfig) -> tuple[str, ...]:
    """The span attribute columns the Brain reads: the config's selection plus its own."""
    selected = tuple(config.signals.selected_attributes)
    return (*selected, *(a for a in BRAIN_ATTRIBUTES if a not in selected))


def score_fault_diagnoses(
    result: dict[str, Any], diagnoses: Sequence[Diagnosis], labels: dict[str, Any]
) -> None:
    """Attach to each detected fault of a scored recording the Brain's score on its first incident."""
    by_incident = {d.incident_id: d for d in diagnoses}
    for fault in result["faults"]:
        first = next((by_incident[i] for i in fault["incidents"] if i in by_incident), None)
        if first is not None:
            fault["diagnosis"] = score_diagnosis(first, labels)


def summarize_diagnoses(report: dict[str, Any]) -> None:
    """Add top-1 / top-3 localization and fault-class accuracy over every scored fault."""
    rows = [f["diagnosis"] for r in report["recordings"] for f in r["faults"] if "diagnosis" in f]
    report["diagnosis"] = {**summarize(rows), "rows": rows} if rows else {"cases": 0}


def diagnosis_table(report: dict[str, Any]) -> str:
    """The Brain's line of a backtest report: localization and fault-class accuracy."""
    d = report.get("diagnosis") or {}
    if not d.get("cases"):
        return "diagnosis: no detected fault to diagnose"
    return (
        f"diagnosis: {d['cases']} cases, top-1 {d['top1']:.0%}, top-3 {d['top3']:.0%}, "
        f"fault class {d['fault_class']:.0%}, first remediation {d['remediation']:.0%}, "
        f"abstained {d['abstained']:.0%}"
    )
