"""Backtest scoring: incidents from a replay against the recording's ground-truth labels.

A label (the chaos suite's `FILE.labels.json`) is a dict with `scenario`, `seed`, `culprit`
(`{"service": ...}`), `fault_class`, `onset`, `end` and `remediation`; a list of such dicts
describes several faults, and an empty list (or `None`, or a label without `onset`) a clean
recording. An incident matches a fault when it opened between `onset - pre_slack` and
`end + post_slack`. Per fault: detected or not, time to detect (first matching incident's
`opened_at` minus `onset`), how many incidents it produced, whether the culprit is among their
services. Per recording: incidents matching no fault are false; clean traffic is the recording
time outside every fault's matching interval. Everything is plain data; `render_table` prints it.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sre_space.records import Incident
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339, rfc3339_to_ns

PRE_SLACK_S = 30.0
POST_SLACK_S = 300.0


def final_incidents(events: Iterable[Incident]) -> list[Incident]:
    """One incident per id: its last event, with the first `opened_at` kept; oldest first."""
    out: dict[str, Incident] = {}
    for ev in events:
        first = out.get(ev.id)
        out[ev.id] = ev if first is None else dataclasses.replace(ev, opened_at=first.opened_at)
    return [out[k] for k in sorted(out, key=lambda i: (out[i].opened_at, i))]


def _labels(
    labels: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
) -> list[tuple[dict[str, Any], int, int | None]]:
    """The faults among the labels, each with its onset and end (ns, None: open-ended) parsed."""
    if labels is None:
        return []
    items = [labels] if isinstance(labels, Mapping) else list(labels)
    return [
        (
            dict(lab),
            rfc3339_to_ns(lab["onset"]),
            rfc3339_to_ns(lab["end"]) if lab.get("end") else None,
        )
        for lab in items
        if lab.get("onset")
    ]


def score_recording(
    incidents: Iterable[Incident],
    labels: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    *,
    start: int,
    end: int,
    name: str = "",
    pre_slack_s: float = PRE_SLACK_S,
    post_slack_s: float = POST_SLACK_S,
) -> dict[str, Any]:
    """Score one recording spanning [start, end) of event time (ns); returns plain data, its
    times as the labels give them or RFC 3339."""
    incs = final_incidents(incidents)
    pre, post = int(pre_slack_s * NS_PER_S), int(post_slack_s * NS_PER_S)
    matched: set[str] = set()
    faults = []
    intervals = []
    for lab, onset, lab_end in _labels(labels):
        f_end = lab_end if lab_end is not None else end
        lo, hi = onset - pre, f_end + post
        intervals.append((max(lo, start), min(hi, end)))
        hits = [i for i in incs if lo <= i.opened_at <= hi]
        matched.update(i.id for i in hits)
        culprit = (lab.get("culprit") or {}).get("service")
        first = hits[0] if hits else None
        faults.append(
            {
                "scenario": lab.get("scenario", "?"),
                "seed": lab.get("seed"),
                "fault_class": lab.get("fault_class"),
                "culprit": culprit,
                "onset": lab["onset"],
                "end": lab.get("end"),
                "detected": bool(hits),
                "ttd_s": (first.opened_at - onset) / NS_PER_S if first else None,
                "incidents": [i.id for i in hits],
                "culprit_in_services": any(culprit in i.services for i in hits),
                "severity": first.severity if first else None,
            }
        )
    false = [i.id for i in incs if i.id not in matched]
    covered = _union_length(intervals)
    clean_s = max(0.0, (end - start - covered) / NS_PER_S)
    return {
        "recording": name,
        "start": ns_to_rfc3339(start),
        "end": ns_to_rfc3339(end),
        "hours": (end - start) / NS_PER_S / 3600,
        "clean_hours": clean_s / 3600,
        "faults": faults,
        "incidents": len(incs),
        "matched_incidents": len(matched),
        "false_incidents": false,
    }


def _union_length(intervals: list[tuple[int, int]]) -> int:
    total, cur_lo, cur_hi = 0, None, None
    for lo, hi in sorted(i for i in intervals if i[1] > i[0]):
        if cur_hi is None or lo > cur_hi:
            if cur_hi is not None and cur_lo is not None:
                total += cur_hi - cur_lo
            cur_lo, cur_hi = lo, hi
        else:
            cur_hi = max(cur_hi, hi)
    if cur_hi is not None and cur_lo is not None:
        total += cur_hi - cur_lo
    return total


def score_suite(recordings: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate `score_recording` results: per scenario and in total."""
    recs = list(recordings)
    by_scenario: dict[str, list[dict[str, Any]]] = {}
    for rec in recs:
        for fault in rec["faults"]:
            by_scenario.setdefault(fault["scenario"], []).append(fault)
    scenarios = {}
    for scenario in sorted(by_scenario):
        faults = by_scenario[scenario]
        ttds = [f["ttd_s"] for f in faults if f["ttd_s"] is not None]
        scenarios[scenario] = {
            "runs": len(faults),
            "detected": sum(f["detected"] for f in faults),
            "recall": sum(f["detected"] for f in faults) / len(faults),
            "ttd_median_s": statistics.median(ttds) if ttds else None,
            "ttd_max_s": max(ttds) if ttds else None,
            "incidents_per_fault": statistics.mean(len(f["incidents"]) for f in faults),
            "culprit_hits": sum(f["culprit_in_services"] for f in faults),
        }
    all_faults = [f for fs in by_scenario.values() for f in fs]
    incidents = sum(r["incidents"] for r in recs)
    matched = sum(r["matched_incidents"] for r in recs)
    false = sum(len(r["false_incidents"]) for r in recs)
    clean_h = sum(r["clean_hours"] for r in recs)
    ttds = [f["ttd_s"] for f in all_faults if f["ttd_s"] is not None]
    detected = sum(f["detected"] for f in all_faults)
    return {
        "scenarios": scenarios,
        "totals": {
            "recordings": len(recs),
            "faults": len(all_faults),
            "detected": detected,
            "recall": detected / len(all_faults) if all_faults else None,
            "incidents": incidents,
            "matched_incidents": matched,
            "false_incidents": false,
            "clean_hours": clean_h,
            "false_per_clean_hour": false / clean_h if clean_h > 0 else None,
            "precision": matched / incidents if incidents else None,
            "ttd_median_s": statistics.median(ttds) if ttds else None,
        },
        "recordings": recs,
    }


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def render_table(report: Mapping[str, Any]) -> str:
    """A fixed-width text table of `score_suite`'s report."""
    rows = [("scenario", "runs", "detected", "ttd median", "ttd max", "inc/fault", "culprit")]
    for name, s in report["scenarios"].items():
        rows.append(
            (
                name,
                str(s["runs"]),
                f"{s['detected']}/{s['runs']}",
                _fmt(s["ttd_median_s"], "s"),
                _fmt(s["ttd_max_s"], "s"),
                _fmt(s["incidents_per_fault"], "", 2),
                f"{s['culprit_hits']}/{s['runs']}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    t = report["totals"]
    lines.append("")
    lines.append(
        f"faults {t['faults']}, detected {t['detected']} (recall {_fmt(t['recall'], '', 2)}), "
        f"median time to detect {_fmt(t['ttd_median_s'], 's')}"
    )
    lines.append(
        f"incidents {t['incidents']}, matching a fault {t['matched_incidents']} "
        f"(precision {_fmt(t['precision'], '', 2)}), false {t['false_incidents']} = "
        f"{_fmt(t['false_per_clean_hour'], '/h', 2)} over {t['clean_hours']:.2f} h of clean traffic"
    )
    return "\n".join(lines)
