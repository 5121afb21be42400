"""Score diagnoses against chaos recording labels: top-1 / top-3 culprit, fault class, remediation.

Used by the chaos scoring test and by backtests (`sre-space replay --labels`). Labels are the chaos
recorder's `FILE.labels.json` (schema `sre.chaos.labels/v1`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sre_space.records import Diagnosis
from sre_space.timeutil import rfc3339_to_ns

Window = tuple[int, int]

# The chaos shop's label spellings (its scenarios' `fault_class`) -> the Brain's fault class. The
# scorer's side of the answer key: the Brain never reads labels, so it never needs these names.
LABEL_FAULT_CLASSES: dict[str, str] = {
    "oom": "memory_leak",
    "memory": "memory_leak",
    "conversion": "business_rule",
    "business_logic": "business_rule",
    "latency": "db_latency",
    "errors": "error_regression",
    "error_rate": "error_regression",
    "bad_deploy": "error_regression",
    "config_drift": "config_pool_exhaustion",
    "config_change": "config_pool_exhaustion",
    "pool_exhaustion": "config_pool_exhaustion",
    "saturation": "cpu_saturation",
}


def label_fault_class(name: str) -> str:
    """A label's fault class (or scenario name) -> the Brain's class it should be diagnosed as."""
    key = name.strip().lower()
    return LABEL_FAULT_CLASSES.get(key, key)


def label_commits(labels: dict[str, Any]) -> list[dict[str, Any]]:
    """The GitOps commits a recording's labels list (the history a live Brain would read from git)."""
    return [
        {
            "sha": c.get("commit") or c.get("sha"),
            "at": c.get("time") or c.get("at"),
            "message": c.get("subject") or c.get("message") or "",
            "files": list(c.get("files") or []),
            "services": list(c.get("services") or []),
        }
        for c in labels.get("changes", [])
    ]


def label_windows(labels: dict[str, Any]) -> tuple[Window, Window]:
    """(incident, baseline): from the onset to the fault's end, and from the recording's start to the
    onset."""
    if not labels.get("onset"):
        message = (
            f"labels of {labels.get('recording', '?')} have no onset (a fault-free recording?): "
            "pass the windows explicitly"
        )
        raise ValueError(message)
    start = rfc3339_to_ns(labels["start"])
    onset = rfc3339_to_ns(labels["onset"])
    end = rfc3339_to_ns(labels.get("end") or labels["stop"])
    return (onset, end), (start, onset)


def score_diagnosis(diagnosis: Diagnosis, labels: dict[str, Any]) -> dict[str, Any]:
    """One row of the scoring table for one recording."""
    culprit = str((labels.get("culprit") or {}).get("service") or "")
    truth_class = label_fault_class(str(labels.get("fault_class", "")))
    services = [c.service for c in diagnosis.candidates]
    top = diagnosis.candidates[0] if diagnosis.candidates else None
    expected_action = str((labels.get("remediation") or {}).get("action") or "")
    return {
        "scenario": labels.get("scenario"),
        "seed": labels.get("seed"),
        "culprit": culprit,
        "fault_class": truth_class,
        "predicted": top.service if top else None,
        "predicted_class": top.fault_class if top else None,
        "top1": bool(services[:1] == [culprit]),
        "top3": culprit in services[:3],
        "class_ok": top is not None and top.fault_class == truth_class,
        "remediation_ok": top is not None and top.action_names[:1] == [expected_action],
        "abstained": diagnosis.abstained,
    }


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Rates over the rows: top1, top3, class, remediation, abstained."""
    n = len(rows)

    def rate(key: str) -> float:
        return round(sum(1 for r in rows if r[key]) / n, 4) if n else 0.0

    return {
        "cases": n,
        "top1": rate("top1"),
        "top3": rate("top3"),
        "fault_class": rate("class_ok"),
        "remediation": rate("remediation_ok"),
        "abstained": rate("abstained"),
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of the rows (for the closing note and the test's failure message)."""
    lines = [
        "scenario            seed  culprit          predicted        class                    top1 top3 class remed"
    ]
    for r in rows:
        lines.append(
            f"{r['scenario']!s:<19} {r['seed']!s:>4}  {r['culprit']:<16} {r['predicted']!s:<16} "
            f"{r['predicted_class']!s:<24} {'Y' if r['top1'] else 'N':>4} {'Y' if r['top3'] else 'N':>4} "
            f"{'Y' if r['class_ok'] else 'N':>5} {'Y' if r['remediation_ok'] else 'N':>5}"
        )
    return "\n".join(lines)
