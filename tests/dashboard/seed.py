"""A realistic state folder for the dashboard tests, built with the project's own writers.

`build_state(state, work)` records two chaos scenarios in-process (`chaos.recorder.record`), one
after the other in event time, and for each:

1. replays the recording through the real flow (`flows.replay.replay`) into
   `<state>/backtests/<scenario>-seed<n>/`, with the span archive in `<state>/spans/`;
2. loads the signals and dead letters into `<state>/sre.db` with the flow's own row mapping
   (`sinks.outputs.store_sink.record_row`);
3. takes Scout's anomalies and incident events from the replay's `anomalies.jsonl` /
   `incidents.jsonl` (or, if the replay does not write them, runs `operators.scout.judge.Scout`
   over the windows itself) into the `anomalies`, `incidents` (latest event) and `incident_events`
   tables;
4. scores the replay against the labels (`operators.scout.detect.scoring`) into `report.json`.

Then the oom incident goes through the whole loop: the GitOps repository is the recording's own
history (cloned from its bundle to `<state>/gitops`), the Brain diagnoses it from the span archive
(`sinks.brain.engine.analyze`), the Fixer (`sinks.fixer.fixer.Fixer` on a `LocalForge`)
opens the pull request, a person approves it, the Fixer merges it, the deploy and verification are
audited (`AuditLog`), the lifecycle moves to resolved (`operators.scout.incidents.lifecycle.apply_state`)
and Memory writes the post-mortem (`sinks.memory.memory.Memory.learn`: file, store row, ChromaDB).
The errors incident is left open, as Scout opened it.

Everything runs on event time, so the same seeds give the same ids on every run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from chaos import SITE_CONFIG
from chaos.recorder import record
from chaos.shop import DEFAULT_EPOCH_NS
from flows.replay import replay
from operators.scout.detect.config import load_detection, load_slos
from operators.scout.detect.scoring import score_recording, score_suite
from operators.scout.incidents.config import load_incidents
from operators.scout.incidents.correlator import journey_services
from operators.scout.incidents.lifecycle import apply_state
from operators.scout.judge import Scout
from sinks.archive.reader import scan_spans
from sinks.outputs.store_sink import record_row
from sinks.store.sqlite import Store
from sre_space.records import (
    ANOMALY_SCHEMA,
    Anomaly,
    DeadLetter,
    Diagnosis,
    Incident,
    SignalWindow,
    read_jsonl,
)
from sre_space.settings import load_pipeline_config
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339, rfc3339_to_ns

SCENARIO = "oom"
SEED = 1
DURATION_S = 600.0
ONSET_S = 180.0
INTENSITY = 3.0
SECOND_SCENARIO = "errors"
SECOND_DURATION_S = 360.0
SECOND_ONSET_S = 180.0


@dataclass(frozen=True)
class Seeded:
    """What the seeded state folder holds, for the tests' assertions."""

    state: Path
    labels: dict[str, Any]
    incident_ids: list[str]
    resolved_id: str
    open_ids: list[str]
    anomaly_ids: list[str]
    services: list[str]
    culprit: str
    top_candidate: str
    pr_number: int | None
    pr_action: str
    pr_state: str
    signal_count: int
    span_count: int
    exemplar_trace: str
    postmortem_title: str
    backtests: list[str]
    actions: list[str] = field(default_factory=list)


def _incident_row(store: Store, inc: Incident) -> None:
    # The latest event is the incident's current state; every event is kept for the timeline.
    payload = inc.to_dict()
    first = store.get("incidents", inc.id)
    if first is not None:
        payload["opened_at"] = first.get("opened_at", payload["opened_at"])
    store.upsert("incidents", inc.id, payload, ts=payload["opened_at"], key=inc.state)
    updated = ns_to_rfc3339(inc.updated_at)
    eid = f"{inc.id}|{inc.event}|{updated}"
    store.upsert("incident_events", eid, inc.to_dict(), ts=updated, key=inc.id)


def _advance(store: Store, incident: Incident, state: str, at: int, note: str) -> Incident:
    """Move the incident through its lifecycle (as the responder does) and store the event."""
    moved = apply_state(incident, state, at, note)
    _incident_row(store, moved)
    return moved


def _edges(spans: pl.DataFrame) -> list[tuple[str, str]]:
    """Caller -> callee services from parent links, as the flow learns them."""
    parents = spans.select(
        "trace_id", pl.col("span_id").alias("parent_span_id"), pl.col("service").alias("caller")
    )
    joined = spans.join(parents, on=["trace_id", "parent_span_id"], how="inner")
    pairs = joined.filter(pl.col("caller") != pl.col("service")).select("caller", "service")
    return sorted({(a, b) for a, b in pairs.unique().iter_rows()})


def _scout(
    signals: list[SignalWindow], edges: list[tuple[str, str]], extra: dict[str, Any], journeys: Any
) -> tuple[list[Anomaly], list[Incident]]:
    scout = Scout(
        load_detection(extra), load_slos(extra), load_incidents(extra), journey_services(journeys)
    )
    by_end: dict[int, list[SignalWindow]] = defaultdict(list)
    for s in signals:
        by_end[s.window_end].append(s)
    anomalies: list[Anomaly] = []
    events: list[Incident] = []
    for i, end in enumerate(sorted(by_end)):
        out = scout.on_window(end, by_end[end], edges if i == 0 else ())
        anomalies += [d.item for d in out.detections if isinstance(d.item, Anomaly)]
        events += out.incidents
    return anomalies, events


def _anomalies(path: Path) -> list[Anomaly]:
    """The Anomaly records of a detections file (which also holds cleared and change events)."""
    found: dict[str, Anomaly] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        data = json.loads(line) if line.strip() else {}
        if data.get("schema") == ANOMALY_SCHEMA:
            found[data["id"]] = Anomaly.from_dict(data)
    return sorted(found.values(), key=lambda a: (a.onset, a.id))


@dataclass(frozen=True)
class _Replayed:
    name: str
    labels: dict[str, Any]
    signals: list[SignalWindow]
    anomalies: list[Anomaly]
    events: list[Incident]
    spans: pl.DataFrame
    out: Path
    recording: Path


def _replay_one(
    state: Path, work: Path, store: Store, scenario: str, seed: int, epoch_ns: int, **opts: Any
) -> _Replayed:
    """Record one scenario, replay it into `<state>/backtests/<name>/`, load the store."""
    name = f"{scenario}-seed{seed}"
    rec = work / f"{name}.jsonl.gz"
    labels = record(scenario, seed, opts.pop("duration_s"), rec, epoch_ns=epoch_ns, **opts)
    config = load_pipeline_config(SITE_CONFIG)  # the shop's journey, objectives, attributes
    out = state / "backtests" / name
    files = replay([rec], out, config, archive=state / "spans")
    shutil.copy(Path(f"{rec}.labels.json"), out / "labels.json")
    signals = read_jsonl(str(files["signals"]), SignalWindow)
    dead = read_jsonl(str(files["deadletters"]), DeadLetter)
    rows: dict[str, list[tuple[str, dict[str, Any], str, str]]] = defaultdict(list)
    for r in [*signals, *dead]:
        table, rid, payload, ts, key = record_row(r)
        rows[table].append((rid, payload, ts, key))
    for table, batch in rows.items():
        store.upsert_many(table, batch)

    start_ns, stop_ns = rfc3339_to_ns(labels["start"]), rfc3339_to_ns(labels["stop"])
    spans = scan_spans(state / "spans", start_ns, stop_ns + 60 * NS_PER_S).collect()
    anomalies_file, incidents_file = out / "anomalies.jsonl", out / "incidents.jsonl"
    if incidents_file.exists():
        # Scout inside the replay wrote them: use its output as it is.
        anomalies = _anomalies(anomalies_file)
        events = read_jsonl(str(incidents_file), Incident)
    else:
        anomalies, events = _scout(signals, _edges(spans), config.extra, config.journeys)
        anomalies_file.write_text("".join(a.to_json() + "\n" for a in anomalies))
        incidents_file.write_text("".join(e.to_json() + "\n" for e in events))
    store.upsert_many(
        "anomalies",
        [(a.id, a.to_dict(), ns_to_rfc3339(a.onset), a.service or a.cuj or "") for a in anomalies],
    )
    for ev in events:
        _incident_row(store, ev)
    report = score_suite(
        [score_recording(events, labels, start=start_ns, end=stop_ns, name=rec.name)]
    )
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return _Replayed(name, labels, signals, anomalies, events, spans, out, rec)


def build_state(state: Path, work: Path) -> Seeded:
    """Build the seeded state folder under `state` (scratch files under `work`).

    Two recordings, one after the other in event time: `oom` (checkout leaks after a deploy; the
    whole loop runs: diagnosis, an approved pull request merged, deployed, verified, post-mortem)
    and `errors` (cart throws after a deploy; its incident is left as Scout opened it).
    """
    state.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    store = Store(state / "sre.db")
    first = _replay_one(
        state,
        work,
        store,
        SCENARIO,
        SEED,
        DEFAULT_EPOCH_NS,
        duration_s=DURATION_S,
        onset_s=ONSET_S,
        intensity=INTENSITY,
    )
    second = _replay_one(
        state,
        work,
        store,
        SECOND_SCENARIO,
        SEED + 1,
        rfc3339_to_ns(first.labels["stop"]),
        duration_s=SECOND_DURATION_S,
        onset_s=SECOND_ONSET_S,
        intensity=2.0,
    )
    if not first.events:
        raise RuntimeError("the seeded oom replay produced no incident; the tests need one")

    # The GitOps repository is the oom recording's own history, so the fix applies to it.
    gitops = state / "gitops"
    if gitops.exists():
        shutil.rmtree(gitops)
    bundle = Path(f"{first.recording}.gitops.bundle")
    subprocess.run(
        ["git", "clone", "-q", "--branch", "main", str(bundle), str(gitops)],
        check=True,
        capture_output=True,
    )

    incident = Incident.from_dict(store.get("incidents", first.events[0].id) or {})
    incident = _respond(state, store, incident, first.anomalies, first.spans, first.labels)

    diag = store.get("diagnoses", incident.id) or {}
    cands = diag.get("candidates") or [{}]
    pr = next(iter(store.query("pull_requests", key=incident.id)), {})
    pm = store.get("postmortems", incident.id) or {}
    spans = pl.concat([first.spans, second.spans], how="diagonal_relaxed")
    mine = [a for a in first.anomalies if a.id in incident.anomaly_ids]
    exemplar = next((t for a in mine for t in a.exemplar_trace_ids), "") or str(
        first.spans.filter(pl.col("is_error"))["trace_id"].first() or ""
    )
    actions = sorted({r["action"] for r in store.query("actions")})
    signal_rows = store.count("signals")
    store.close()
    events = [*first.events, *second.events]
    signals = [*first.signals, *second.signals]
    return Seeded(
        state=state,
        labels=first.labels,
        incident_ids=sorted({e.id for e in events}),
        resolved_id=incident.id,
        open_ids=sorted({e.id for e in second.events}),
        anomaly_ids=[a.id for a in [*first.anomalies, *second.anomalies]],
        services=sorted({s.service for s in signals if s.kind == "span" and s.service}),
        culprit=str(first.labels["culprit"]["service"]),
        top_candidate=str(cands[0].get("service", "")),
        pr_number=pr.get("number"),
        pr_action=str(pr.get("action", "")),
        pr_state=str(pr.get("state", "")),
        signal_count=signal_rows,
        span_count=spans.height,
        exemplar_trace=exemplar,
        postmortem_title=str(pm.get("title", "")),
        backtests=[first.name, second.name],
        actions=actions,
    )


def store_actions(state: Path) -> list[dict[str, Any]]:
    """Every audit row of the seeded store."""
    store = Store(state / "sre.db")
    try:
        return store.query("actions")
    finally:
        store.close()


def _respond(
    state: Path,
    store: Store,
    incident: Incident,
    anomalies: list[Anomaly],
    spans: pl.DataFrame,
    labels: dict[str, Any],
) -> Incident:
    """Brain, Fixer and Memory on the first incident, the way the responder chains them."""
    from sinks.brain.engine import analyze
    from sinks.fixer.audit import AuditLog
    from sinks.fixer.fixer import Fixer
    from sinks.fixer.forge_local import LocalForge
    from sinks.fixer.policy import DEFAULT_POLICY_PATH, Policy, PolicyConfig
    from sinks.memory.gather import gather
    from sinks.memory.index import PostMortemIndex, chroma_client
    from sinks.memory.memory import Memory

    mine = [a for a in anomalies if a.id in incident.anomaly_ids]
    onset = min([a.onset for a in mine] + [incident.opened_at])
    opened = incident.opened_at
    # The Brain looks at the incident from its onset to a few minutes in, as it would on a retry.
    window = (onset, max(opened, onset + 180 * NS_PER_S))
    metrics = store.query(
        "signals",
        since=ns_to_rfc3339(onset - 600 * NS_PER_S),
        until=ns_to_rfc3339(window[1] + 60 * NS_PER_S),
    )
    analysis = analyze(
        spans,
        window,
        metrics=[SignalWindow.from_dict(m) for m in metrics if m.get("kind") == "metric"],
        commits=labels.get("changes", []),
        incident_id=incident.id,
        onset_ns=onset,
    )
    diagnosis: Diagnosis = analysis.diagnosis
    # The responder picks the incident up after Scout's last event for it, so its own events
    # follow Scout's on the timeline.
    t0 = incident.updated_at

    def at(seconds: int) -> int:
        return t0 + seconds * NS_PER_S

    store.upsert(
        "diagnoses", incident.id, diagnosis.to_dict(), ts=ns_to_rfc3339(at(10)), key=incident.id
    )
    audit = AuditLog(store, actor="responder")
    audit.record(
        at=at(10),
        action="diagnose",
        reason=diagnosis.summary.splitlines()[0] if diagnosis.summary else "diagnosed",
        incident_id=incident.id,
        key="responder:diagnose",
        inputs={"candidates": len(diagnosis.candidates)},
    )
    current = _advance(store, incident, "diagnosed", at(10), "root cause found")

    forge = LocalForge(state / "gitops", store)
    # The seeded story has a person approve the fix, whichever action the Brain picks: the policy
    # puts the culprit among the services whose every change needs approval.
    policy = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    policy["approval_services"] = [*policy["approval_services"], diagnosis.candidates[0].service]
    fixer = Fixer(forge, store, Policy(PolicyConfig(**policy)))
    remedy = fixer.remediate(current, diagnosis, at(30))
    current = _advance(store, current, "mitigating", at(30), remedy.reason)
    if remedy.status == "pending" and remedy.pr is not None:
        # The policy wants a person for this action: the on-call approves it, the Fixer merges.
        forge.approve(remedy.pr.id, "oncall@example.com", at(150))
        audit.record(
            at=at(150),
            action="approved",
            reason="approved by oncall@example.com",
            incident_id=incident.id,
            key="responder:approve",
            actor="oncall@example.com",
            inputs={"pr": remedy.pr.id},
        )
        remedy = fixer.remediate(current, diagnosis, at(160))

    result = "resolved" if remedy.status == "merged" else "no_change"
    if remedy.status == "merged":
        audit.record(
            at=at(190),
            action="deployed",
            reason=f"reconciler applied {str(remedy.merge_sha)[:12]}",
            incident_id=incident.id,
            key="responder:deploy",
            inputs={"commit": remedy.merge_sha},
        )
        current = _advance(store, current, "verifying", at(190), "deployed")
        audit.record(
            at=at(250),
            action="verified",
            reason="signals within baseline for 3 consecutive windows",
            incident_id=incident.id,
            key="responder:verify",
            inputs={"healthy_windows": 3},
        )
    final = "resolved" if result == "resolved" else "escalated"
    current = _advance(store, current, final, at(250), remedy.reason)

    index = PostMortemIndex(chroma_client(state))
    memory = Memory(state, store, index)
    inputs = gather(store, current, {"result": result, "detail": remedy.reason})
    memory.learn(
        inputs.incident,
        inputs.anomalies,
        inputs.diagnosis,
        inputs.remediation,
        inputs.audit,
        inputs.signals,
    )
    return current
