"""`sre-space drill SCENARIO|all`: a fire drill of the whole loop in accelerated simulated time.

A drill runs the rig (`sre_space.harness.rig`: the shop, the dataflow, the responders) over a state folder,
lets the shop run clean traffic while Scout learns its baselines, injects the scenario through the
chaos control channel, and follows the incident until the responders are done with it (resolved
or escalated) or the drill's simulated time runs out. It writes `OUT/drill.json`: the incidents,
time to detect, the Brain's top candidates, the action and its pull request, merged or not,
verified or reverted, time to mitigate, the post-mortem and what Memory recalled.

Drills in one state folder form a history: each starts an hour of event time after the newest
data already there, on the same GitOps repository, store and Memory, so a later drill is diagnosed
and fixed with the earlier ones' post-mortems. `sre-space drill all` runs every scenario in turn
in one state folder and prints a table: a game day as a command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from chaos import control
from chaos.scenarios import Injection, registry
from chaos.shop import DEFAULT_EPOCH_NS
from operators.scout.detect.scoring import score_recording
from sinks.brain.scoring import score_diagnosis
from sinks.store.sqlite import Store
from sre_space.harness.demo import KAFKA_SCRIPT, start_local_broker
from sre_space.harness.rig import KAFKA_TOPICS, Rig, RigOptions, run_rig, topics_of
from sre_space.harness.site import shop_config_files
from sre_space.paths import StatePaths, state_dir
from sre_space.records import Diagnosis, Incident, action_names
from sre_space.settings import Settings, load_settings
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339, rfc3339_to_ns

SCHEMA = "sre-space.drill/1"
GAP_NS = 3600 * NS_PER_S  # event time between the newest data in the state folder and a new drill


Log = Callable[[str], None]


@dataclass
class DrillConfig:
    """One drill. Times are simulated seconds unless named otherwise."""

    scenario: str
    out: Path
    state: Path
    seed: int = 1
    intensity: float = 1.0
    speed: float = 240.0
    warmup_s: float = 12 * 60  # clean traffic first: Scout's and the Brain's baselines
    after_s: float = 40 * 60  # how long after the injection the drill waits for an outcome
    kafka: str | None = None
    policy: Path | None = None
    reconciler: Literal["shop", "gitops"] = "shop"
    wall_guard_s: float = 900.0  # only stops a run that hangs; no result depends on wall time
    log: Log = field(default=lambda line: None)


def next_epoch_ns(state: Path) -> int:
    """Where a new drill starts in event time: an hour after the newest data in `state`.

    A drill's data ends by its shop's stop (`until` in the index), wherever its outcome came:
    the next drill then starts at the same moment in every run, not after a wall-clock end.
    """
    newest = 0
    index = StatePaths(state).drills
    if index.exists():
        for line in index.read_text(encoding="utf-8").splitlines():
            if line.strip():
                ran = json.loads(line)
                newest = max(newest, rfc3339_to_ns(ran.get("until") or ran["end"]))
    db = StatePaths(state).db
    if db.exists():
        with Store(db) as store:
            rows = store.query("signals", limit=50, newest_first=True)
            ends = [rfc3339_to_ns(r["window_end"]) for r in rows if r.get("window_end")]
            newest = max([newest, *ends])
    if not newest:
        return DEFAULT_EPOCH_NS
    start = newest + GAP_NS
    return start - start % (60 * NS_PER_S) + 60 * NS_PER_S


def drill_settings(cfg: DrillConfig, epoch_ns: int) -> Settings:
    """The state folder's settings; through Kafka, topics of this drill's own."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    # The shop's site file, then the user's SRE_CONFIG files.
    overrides: dict[str, Any] = {"state_dir": cfg.state, "config": shop_config_files()}
    if cfg.kafka:
        # A broker outlives drills; fresh topics keep one drill from reading another's traffic.
        prefix = f"drill-{cfg.scenario}-{cfg.seed}-{uuid.uuid4().hex[:8]}"
        overrides["KAFKA_BOOTSTRAP_SERVERS"] = cfg.kafka
        for name in KAFKA_TOPICS:
            overrides[f"{name}_topic"] = f"{prefix}.{name}"
    return load_settings(**overrides)


def label_of(injection: Injection, seed: int) -> dict[str, Any]:
    """The injection as a backtest label (what `score_recording` and `score_diagnosis` take)."""
    return {
        "scenario": injection.scenario,
        "seed": seed,
        "fault_class": injection.fault_class,
        "culprit": injection.culprit(),
        "onset": ns_to_rfc3339(injection.onset_ns),
        "end": None,
        "remediation": injection.remediation,
        "alternatives": injection.alternatives,
    }


def _incidents(store: Store) -> list[Incident]:
    return sorted(
        (Incident.from_dict(r) for r in store.query("incidents")), key=lambda i: i.opened_at
    )


def _scored(store: Store, label: dict[str, Any], start_ns: int, end_ns: int) -> dict[str, Any]:
    incidents = [i for i in _incidents(store) if i.opened_at >= start_ns]
    return score_recording(incidents, label, start=start_ns, end=end_ns)


def primary_incident(store: Store, label: dict[str, Any], fault: dict[str, Any]) -> str | None:
    """The fault's incident: the first matching one naming the culprit, else the first matching."""
    ids = fault["incidents"]
    culprit = (label.get("culprit") or {}).get("service")
    for iid in ids:
        row = store.get("incidents", iid)
        if row is not None and culprit in row.get("services", []):
            return str(iid)
    return str(ids[0]) if ids else None


def _wait_for_injection(rig: Rig, scenario: str, cfg: DrillConfig) -> Injection:
    # Scheduled in event time, not sent once the warm-up has passed on the wall clock: the fault
    # starts at the same tick of the same seeded traffic in every run.
    at_ns = rig.epoch_ns + int(cfg.warmup_s * NS_PER_S)
    command = {"cmd": "inject", "scenario": scenario, "intensity": cfg.intensity, "at_ns": at_ns}
    deadline = time.monotonic() + cfg.wall_guard_s
    while rig.sim_s() <= 0:  # the shop reads commands sent after it started, not before
        _check(rig, deadline, "the shop never started")
        time.sleep(0.1)
    control.send(cfg.state, command)
    while True:
        found = [i for i in list(rig.shop.injections.values()) if i.scenario == scenario]
        if found:
            return found[-1]
        _check(rig, deadline, "the shop never applied the injection")
        time.sleep(0.1)


def _check(rig: Rig, deadline: float, what: str) -> None:
    if not rig.alive() or rig.errors:
        raise RuntimeError(f"{what}: the loop stopped ({rig.errors[:1]})")
    if time.monotonic() > deadline:
        raise TimeoutError(f"{what} (wall guard)")


def _follow(rig: Rig, label: dict[str, Any], cfg: DrillConfig, onset_ns: int) -> None:
    """Wait until the fault's incident is done, the simulated time is up, or the loop ended."""
    store = rig.store
    deadline = time.monotonic() + cfg.wall_guard_s
    give_up_ns = onset_ns + int(cfg.after_s * NS_PER_S)
    try:
        while rig.alive() and time.monotonic() < deadline:
            fault = _scored(store, label, rig.epoch_ns, rig.shop.now_ns)["faults"][0]
            iid = primary_incident(store, label, fault)
            progress = store.get("progress", iid) if iid else None
            if progress is not None and progress["step"] == "done":
                return
            if rig.shop.now_ns > give_up_ns:
                return
            time.sleep(0.5)
    finally:
        store.close()


def _end_faults(rig: Rig, cfg: DrillConfig) -> None:
    """End the drill's injections (as `python -m chaos stop` does): a fault the responders left in
    place (a fix awaiting approval, an escalation) must not leak into the next drill."""
    control.send(cfg.state, {"cmd": "clear"})
    deadline = time.monotonic() + 60.0
    while rig.shop.injections and rig.shop_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    if rig.shop.injections and not rig.shop_running():
        # The shop reached its duration before it read the command: end them here (its thread is
        # gone, so nothing else touches the shop).
        rig.shop.clear()


def _rel_s(at: int | None, onset_ns: int) -> float | None:
    return None if at is None else round((at - onset_ns) / NS_PER_S, 1)


def report(
    store: Store, label: dict[str, Any], cfg: DrillConfig, epoch_ns: int, end_ns: int
) -> dict[str, Any]:
    """drill.json: what the loop did about the injected fault, from the state folder's store."""
    onset_ns = rfc3339_to_ns(label["onset"])
    scored = _scored(store, label, epoch_ns, end_ns)
    fault = scored["faults"][0]
    iid = primary_incident(store, label, fault)
    incident = store.get("incidents", iid) if iid else None
    progress = (store.get("progress", iid) if iid else None) or {}
    diagnosis = store.get("diagnoses", iid) if iid else None
    prs = store.query("pull_requests", key=iid) if iid else []
    events = [Incident.from_dict(e) for e in store.query("incident_events", key=iid)] if iid else []
    outcome = (progress.get("data") or {}).get("outcome") or {}
    # Each verification window's verdict: why a fix was judged to work, or was reverted.
    verification = [
        {
            "at": a.get("at"),
            "healthy": (a.get("inputs") or {}).get("healthy"),
            "why": a.get("reason"),
        }
        for a in (store.query("actions", key=iid) if iid else [])
        if a.get("action") == "verify_window"
    ]
    events.sort(key=lambda e: e.updated_at)
    timeline = [
        {"event": e.event, "at": ns_to_rfc3339(e.updated_at), "t_s": _rel_s(e.updated_at, onset_ns)}
        for e in events
    ]
    resolved_at = next((e.updated_at for e in events if e.event == "resolved"), None)
    recovered_at = incident.get("recovered_at") if incident else None
    recovered_ns = rfc3339_to_ns(recovered_at) if recovered_at else None
    result = outcome.get("result")
    if recovered_ns is None and result == "resolved":
        # Resolved with only demand still abnormal (Scout never calls that recovered): the
        # harm ended where the verification's final run of healthy windows began.
        recovered_ns = healthy_since((progress.get("data") or {}).get("windows") or {})
    pm = StatePaths(cfg.state).postmortems / f"{iid}.md"
    candidates = (diagnosis or {}).get("candidates", [])
    return {
        "schema": SCHEMA,
        "scenario": label["scenario"],
        "seed": cfg.seed,
        "intensity": cfg.intensity,
        "transport": "kafka" if cfg.kafka else "queue",
        "state": str(cfg.state.resolve()),
        "start": ns_to_rfc3339(epoch_ns),
        "end": ns_to_rfc3339(end_ns),
        "onset": label["onset"],
        "culprit": label["culprit"],
        "fault_class": label["fault_class"],
        "expected_remediation": label["remediation"],
        "detected": fault["detected"],
        "time_to_detect_s": fault["ttd_s"],
        "incident_ids": fault["incidents"],
        "false_incident_ids": scored["false_incidents"],
        "incident": {
            "id": iid,
            "state": incident.get("state"),
            "services": incident.get("services"),
            "severity": incident.get("severity"),
            "opened_at": incident.get("opened_at"),
            "recovered_at": recovered_at,
        }
        if incident
        else None,
        "diagnosis": {
            "abstained": diagnosis.get("abstained"),
            "summary": (diagnosis.get("summary") or "").splitlines()[:1],
            "top": [
                {
                    "service": c.get("service"),
                    "fault_class": c.get("fault_class"),
                    "score": c.get("score"),
                    "actions": action_names(c)[:3],
                }
                for c in candidates[:3]
            ],
            "score": score_diagnosis_dict(diagnosis, label),
        }
        if diagnosis
        else None,
        "pull_requests": [
            {
                "id": pr.get("id"),
                "action": (pr.get("change") or {}).get("action"),
                "service": (pr.get("change") or {}).get("service"),
                "change": (pr.get("change") or {}).get("after"),
                "state": pr.get("state"),
                "merged": bool(pr.get("merge_sha")),
                "merge_sha": pr.get("merge_sha"),
                "revert_sha": pr.get("revert_sha"),
            }
            for pr in prs
        ],
        "responder_step": progress.get("step"),
        "outcome": result,
        "outcome_detail": outcome.get("detail"),
        "verified": result == "resolved",
        "reverted": any(pr.get("revert_sha") for pr in prs),
        "resolved": incident is not None and incident.get("state") == "resolved",
        "escalated": incident is not None and incident.get("state") == "escalated",
        "time_to_mitigate_s": _rel_s(recovered_ns, onset_ns) if result == "resolved" else None,
        "time_to_resolve_s": _rel_s(resolved_at, onset_ns),
        "timeline": timeline,
        "verification": verification,
        "postmortem": str(pm) if pm.exists() else None,
        "similar": (diagnosis or {}).get("similar", []),
    }


def healthy_since(windows: dict[str, bool]) -> int | None:
    """The first window of the final run of healthy verification windows (None: none)."""
    since = None
    for end in sorted(windows, key=rfc3339_to_ns):
        since = (since or rfc3339_to_ns(end)) if windows[end] else None
    return since


def score_diagnosis_dict(diagnosis: dict[str, Any], label: dict[str, Any]) -> dict[str, Any]:
    """The Brain's answer scored against the injection (top-1, top-3, class, remediation)."""
    row = score_diagnosis(Diagnosis.from_dict(diagnosis), label)
    return {k: row[k] for k in ("top1", "top3", "class_ok", "remediation_ok")}


def run_drill(cfg: DrillConfig) -> dict[str, Any]:
    """Run one drill and write `cfg.out/drill.json`; returns its content."""
    if cfg.scenario not in registry():
        raise ValueError(f"unknown scenario {cfg.scenario!r}; one of {sorted(registry())} or all")
    cfg.state.mkdir(parents=True, exist_ok=True)
    epoch_ns = next_epoch_ns(cfg.state)
    settings = drill_settings(cfg, epoch_ns)
    # The shop stops by itself a little after the drill's last chance of an outcome.
    duration_s = cfg.warmup_s + cfg.after_s + 120
    options = RigOptions(
        seed=cfg.seed,
        speed=cfg.speed,
        epoch_ns=epoch_ns,
        duration_s=duration_s,
        kafka=cfg.kafka,
        policy_path=cfg.policy,
        reconciler=cfg.reconciler,
        log=cfg.log,
    )
    wall0 = time.monotonic()
    with run_rig(settings, options) as rig:
        injection = _wait_for_injection(rig, cfg.scenario, cfg)
        onset_s = (injection.onset_ns - rig.epoch_ns) / NS_PER_S
        cfg.log(f"drill: injected {cfg.scenario} into {injection.service} at {onset_s:.0f} s")
        label = label_of(injection, cfg.seed)
        _follow(rig, label, cfg, injection.onset_ns)
        end_ns = rig.shop.now_ns
        _end_faults(rig, cfg)
    with Store(settings.paths.db) as store:
        result = report(store, label, cfg, epoch_ns, end_ns)
    if result["outcome_detail"] and result["outcome"] != "resolved":
        cfg.log(f"drill: {result['outcome']}: {result['outcome_detail']}")
    if cfg.kafka:
        result["kafka"] = {
            "bootstrap": cfg.kafka,
            "topics": topics_of(settings),
        }
    result["simulated_s"] = round((end_ns - epoch_ns) / NS_PER_S, 1)
    result["wall_s"] = round(time.monotonic() - wall0, 1)
    (cfg.out / "drill.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    index = settings.paths.drills
    index.parent.mkdir(parents=True, exist_ok=True)
    with index.open("a", encoding="utf-8") as fh:
        line = {"scenario": cfg.scenario, "seed": cfg.seed, "start": result["start"]}
        line |= {"end": result["end"], "out": str(cfg.out.resolve())}
        line["until"] = ns_to_rfc3339(epoch_ns + int(duration_s * NS_PER_S))
        fh.write(json.dumps(line) + "\n")
    return result


def run_all(cfg: DrillConfig, scenarios: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every scenario in turn in one state folder (later drills learn from earlier ones)."""
    results = []
    for name in scenarios or sorted(registry()):
        results.append(run_drill(replace(cfg, scenario=name, out=cfg.out / name)))
        print(table(results[-1:], header=len(results) == 1), flush=True)
    (cfg.out / "drills.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


COLUMNS = "scenario          detect  ttd_s  brain(top-1)        action               pr        outcome    ttm_s  recalled"


def table(results: Sequence[dict[str, Any]], header: bool = True) -> str:
    """One line per drill (the game day's table)."""
    lines = [COLUMNS] if header else []
    for r in results:
        top = ((r.get("diagnosis") or {}).get("top") or [{}])[0]
        pr = (r.get("pull_requests") or [{}])[0]
        pr_state = pr.get("state") or "-"
        lines.append(
            f"{r['scenario']:<17} {'yes' if r['detected'] else 'NO':<7} "
            f"{_num(r['time_to_detect_s']):>5}  "
            f"{(top.get('service') or '-') + '/' + (top.get('fault_class') or '-'):<19.19} "
            f"{pr.get('action') or '-':<20.20} {pr_state:<9} {_outcome(r):<10} "
            f"{_num(r['time_to_mitigate_s']):>5}  {len(r.get('similar') or [])}"
        )
    return "\n".join(lines)


def _outcome(r: dict[str, Any]) -> str:
    """The responders' result, or the step they were still at (e.g. a PR awaiting approval)."""
    if r.get("outcome"):
        return str(r["outcome"])
    return f"at {r['responder_step']}" if r.get("responder_step") else "-"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sre-space drill`."""
    parser.add_argument("scenario", help="a chaos scenario (python -m chaos list) or 'all'")
    parser.add_argument("--out", required=True, help="folder for drill.json (one per scenario)")
    parser.add_argument("--seed", type=int, default=1, help="the shop's random seed")
    parser.add_argument(
        "--state",
        default=argparse.SUPPRESS,
        help="state folder; drills already in it are remembered (default: SRE_STATE_DIR, ./state)",
    )
    parser.add_argument("--intensity", type=float, default=1.0, help="fault intensity")
    parser.add_argument("--speed", type=float, default=240.0, help="simulated seconds per second")
    parser.add_argument("--policy", help="remediation policy YAML (default: built-in)")
    parser.add_argument(
        "--kafka",
        action="store_true",
        help="through Kafka: KAFKA_BOOTSTRAP_SERVERS, or a local broker started for the drill",
    )
    parser.add_argument(
        "--reconciler",
        choices=("shop", "gitops"),
        default="shop",
        help="shop: the shop reports the commit it runs; gitops: as under Argo CD / Flux, the"
        " responders wait until the telemetry shows each merged change",
    )
    parser.add_argument("--verbose", action="store_true", help="print the loop's log")


def run(args: argparse.Namespace) -> int:
    """`sre-space drill`: one scenario or all; prints the table, writes drill.json."""
    state = state_dir(getattr(args, "state", None))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or None
    started = False
    if args.kafka and bootstrap is None:
        bootstrap, started = start_local_broker(), True
    cfg = DrillConfig(
        scenario=args.scenario,
        out=Path(args.out),
        state=state,
        seed=args.seed,
        intensity=args.intensity,
        speed=args.speed,
        kafka=bootstrap if args.kafka else None,
        policy=Path(args.policy) if args.policy else None,
        reconciler=args.reconciler,
        log=(lambda line: print(line, flush=True)) if args.verbose else (lambda line: None),
    )
    try:
        if args.scenario == "all":
            run_all(cfg)
        else:
            print(table([run_drill(cfg)]), flush=True)
            print(f"wrote {cfg.out / 'drill.json'}", flush=True)
    finally:
        if started:
            subprocess.run(["bash", str(KAFKA_SCRIPT), "down"], check=False)
    return 0
