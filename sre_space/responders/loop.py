"""The responders on live incidents: Brain, Fixer, Memory and the tracker, off the dataflow's thread.

Scout writes incidents into the SQLite store (`incidents`: the latest state per id). A
`ResponderLoop` polls the store: every tick it starts one persisted `Responder` run per newly
opened incident (idempotent by incident id: progress lives in the `progress` table), passes state
changes from Scout on (`observe`: a recovery before any change ends the run without a change), and
advances every active run (`run`): diagnose -> remediate -> deploy -> verify -> post-mortem.

Time is event time: `now` is the newest `window_end` in the `signals` table, never the wall clock,
so an accelerated demo verifies and times out in simulated minutes. Verification asks Scout: an
incident whose signals are back within baseline is `recovered` in the store.

Entry points: `start_responders_thread(settings)` for the embedded demo, `run_responders(settings,
stop_event)` for any thread, and `add_arguments` / `run` for `sre-space responders`, which runs
the loop against a state folder next to a dataflow in another process (docker compose).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from sinks.archive.reader import scan_spans
from sinks.brain.engine import analyze, incident_windows
from sinks.brain.narrate import NarrationBudget, NarrationConfig, NarrationResult, narrate
from sinks.brain.redact import redact_strings
from sinks.fixer.audit import AuditLog
from sinks.fixer.catalog import ActionRequest
from sinks.fixer.factory import FixerParts, build_fixer
from sinks.fixer.reconciler import CommandReconciler, Reconciler
from sinks.fixer.shop_reconciler import ShopReconciler
from sinks.memory.memory import Memory
from sinks.store.sqlite import Store
from sre_space.records import AuditAction, Diagnosis, Incident, SignalWindow
from sre_space.responders.lifecycle import LifecycleTracker, Publish, kafka_publisher
from sre_space.responders.machine import HealthSample, Progress, Responder, ResponderSteps
from sre_space.settings import Settings, load_settings
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339, rfc3339_to_ns

HEALTHY_STATES = frozenset({"recovered", "resolved"})
FINAL_STATES = frozenset({"recovered", "resolved", "escalated"})

Log = Callable[[str], None]


@dataclass
class TickReport:
    """What one tick did (for logs and tests)."""

    now: str | None = None
    started: list[str] = field(default_factory=list)
    advanced: dict[str, str] = field(default_factory=dict)  # incident id -> step after the tick
    deferred: list[str] = field(default_factory=list)  # waiting for the span archive
    errors: dict[str, str] = field(default_factory=dict)


def clean(diagnosis: Diagnosis) -> Diagnosis:
    """The diagnosis with secrets scrubbed from every text: evidence quotes telemetry and commit
    messages, and it is stored, shown, put in pull requests and post-mortems."""
    return Diagnosis.from_dict(redact_strings(diagnosis.to_dict()))


def commits_for_brain(repo_path: Path) -> list[dict[str, Any]]:
    """GitOps history of `main` as the Brain's change evidence: `{sha, at (ns), message, files}`.

    Read with `git log` here rather than through `chaos.gitops`: flows do not import the shop.
    """
    if not (repo_path / ".git").exists():
        return []
    proc = subprocess.run(
        ["git", "-C", str(repo_path), "log", "--format=%x1e%H%x1f%ct%x1f%s", "--name-only", "main"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"},
    )
    if proc.returncode != 0:
        return []
    commits: list[dict[str, Any]] = []
    for chunk in proc.stdout.split("\x1e")[1:]:
        head, _, rest = chunk.partition("\n")
        sha, ts, subject = head.split("\x1f", 2)
        files = [line for line in rest.splitlines() if line.strip()]
        commits.append({"sha": sha, "at": int(ts) * NS_PER_S, "message": subject, "files": files})
    return commits


class ResponderLoop:
    """Polls the store and drives one persisted responder run per incident."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        *,
        reconciler: Reconciler | None = None,
        policy_path: str | Path | None = None,
        memory: Memory | None = None,
        emit: Callable[[AuditAction], None] | None = None,
        publish: Publish | None = None,
        archive_margin_s: float = 60.0,
        diagnose_wait_s: float = 900.0,
        rediagnose_s: float = 60.0,
        backfill_s: float = 3600.0,
        max_loop_errors: int = 10,
        log: Log | None = None,
    ) -> None:
        self.settings = settings
        if emit is None and publish is not None:
            # Every audit action also goes to `sre.actions` when a publisher is given.
            topic = settings.actions_topic
            emit = lambda action: publish(topic, action)  # noqa: E731
        self.state_dir = settings.state_dir
        self.store = store or Store(settings.state_path("sre.db"))
        self.log = log or (lambda line: print(f"responders: {line}", flush=True))
        self.memory = memory or Memory.from_settings(settings, store=self.store)
        # A policy file replaces the packaged default (SRE_POLICY in the environment).
        policy = policy_path or os.environ.get("SRE_POLICY") or None
        self.parts: FixerParts = build_fixer(
            settings, self.store, policy_path=policy, prefer=self._prefer, emit=emit
        )
        self.reconciler: Reconciler = reconciler or ShopReconciler(self.state_dir)
        self.audit = AuditLog(self.store, actor="responders", emit=emit)
        steps = ResponderSteps(
            diagnose=self._diagnose,
            remediate=self.parts.fixer.remediate,
            revert=self.parts.fixer.revert,
            health=self._health,
            postmortem=self.memory.postmortem_step,
            narrate=self._narrate if settings.openai_api_key else None,
        )
        # The LLM only narrates; a slow or failing endpoint must not hold the loop for long.
        self.narration = replace(NarrationConfig.from_settings(settings), timeout_s=10.0)
        self._budgets: dict[str, NarrationBudget] = {}
        # Lifecycle states the responder sets come back as incident events (store, sre.incidents).
        tracker = LifecycleTracker(
            self.parts.tracker, self.store, self.event_now, publish, settings.incidents_topic
        )
        self.responder = Responder(
            self.store,
            steps,
            tracker,  # type: ignore[arg-type]
            self.reconciler,
            verification=self.parts.policy.config.verification,
            audit=AuditLog(self.store, actor="responder", emit=emit),
        )
        self.archive_margin_ns = int(archive_margin_s * NS_PER_S)
        self.diagnose_wait_ns = int(diagnose_wait_s * NS_PER_S)
        self.rediagnose_ns = int(rediagnose_s * NS_PER_S)
        # Diagnoses made by the loop's own look-ahead, handed to the responder's diagnose step.
        self._ready: dict[str, Diagnosis | None] = {}
        self._last_try: dict[str, int] = {}
        self.backfill_ns = int(backfill_s * NS_PER_S)
        self.max_loop_errors = max_loop_errors
        self._loop_errors: dict[str, int] = {}
        # The incident snapshot each run last saw, so that only real changes are observed.
        self._seen: dict[str, tuple[str, int, str]] = {}
        # Event time of the tick in progress (None between ticks): an accelerated shop waits for
        # it, so that the Brain's and the Fixer's wall time does not pass as event time.
        self.busy_at_ns: int | None = None

    # --- event time ---------------------------------------------------------------------------

    def event_now(self) -> str | None:
        """The newest `window_end` in the signals table (None before the first window)."""
        # Rows are ordered by window start; windows of different kinds may differ in length, so
        # the newest few are looked at rather than just one.
        rows = self.store.query("signals", limit=50, newest_first=True)
        ends = [str(r["window_end"]) for r in rows if r.get("window_end")]
        return max(ends, key=rfc3339_to_ns) if ends else None

    # --- the tick -----------------------------------------------------------------------------

    def tick(self) -> TickReport:
        """Start, observe and advance every incident once; never raises for one incident."""
        report = TickReport(now=self.event_now())
        if report.now is None:
            return report
        now = report.now
        now_ns = rfc3339_to_ns(now)
        self.busy_at_ns = now_ns
        try:
            rows = sorted(self.store.query("incidents"), key=lambda r: str(r.get("opened_at", "")))
            for row in rows:
                incident = Incident.from_dict(row)
                try:
                    step = self._handle(incident, now, now_ns, report)
                except Exception as exc:  # one incident's failure must not stop the rest
                    self._loop_error(incident, now, exc, report)
                    continue
                if step is not None:
                    report.advanced[incident.id] = step
        finally:
            self.busy_at_ns = None
        return report

    def _handle(self, incident: Incident, now: str, now_ns: int, report: TickReport) -> str | None:
        p = self.responder.get(incident.id)
        if p is None:
            if now_ns - incident.updated_at > self.backfill_ns:
                return None  # history from before the responders ran: nothing to act on now
            p = self.responder.start(incident, now)
            report.started.append(incident.id)
            self.log(f"{incident.id}: started ({incident.state}: {incident.summary[:80]})")
        snapshot = (incident.state, incident.updated_at, incident.event)
        if self._seen.get(incident.id) != snapshot:
            observed = self.responder.observe(incident, now)
            self._seen[incident.id] = snapshot
            p = observed or p
        if p.step == "done":
            return None
        if self._loop_errors.get(incident.id, 0) >= self.max_loop_errors:
            return None  # a person has it now (escalated by _loop_error)
        if p.step == "diagnose" and not self._diagnosis_ready(incident, now, now_ns):
            report.deferred.append(incident.id)
            return None
        before = p.step
        p = self._run(incident.id, now)
        if p.step != before:
            self.log(f"{incident.id}: {before} -> {p.step} at {now}")
        return p.step

    def _run(self, incident_id: str, now: str, max_steps: int = 10) -> Progress:
        """Like `Responder.run`, with event time read again before each step.

        A step can take a while (git, GitHub, an LLM, waiting for the deploy); in an accelerated
        demo that is minutes of event time, and a verification deadline computed from the tick's
        stale `now` would be short by that much.
        """
        p = self.responder.advance(incident_id, now)
        for _ in range(max_steps - 1):
            if p.step == "done" or p.status == "waiting":
                break
            latest = self.event_now() or now
            now = max(now, latest, key=rfc3339_to_ns)
            p = self.responder.advance(incident_id, now)
        return p

    def _loop_error(
        self, incident: Incident, now: str, exc: BaseException, report: TickReport
    ) -> None:
        n = self._loop_errors.get(incident.id, 0) + 1
        self._loop_errors[incident.id] = n
        text = f"{type(exc).__name__}: {exc}"
        report.errors[incident.id] = text
        self.log(f"{incident.id}: error ({n}/{self.max_loop_errors}): {text}")
        self.audit.record(
            at=now,
            action="responder_error",
            reason=text[:500],
            incident_id=incident.id,
            key=f"loop-error:{n}",
            inputs={"attempt": n, "trace": traceback.format_exc(limit=3)[-1500:]},
            outcome="failed",
        )
        if n == self.max_loop_errors:
            # The same step keeps crashing (not a forge error the responder retries itself):
            # hand the incident to a person rather than retrying forever.
            self.parts.tracker.escalate(incident.id, f"responder keeps failing: {text}", at=now)

    # --- Brain --------------------------------------------------------------------------------

    def _archive_end_ns(self, start_ns: int, end_ns: int) -> int | None:
        frame = scan_spans(self.state_dir / "spans", start_ns, end_ns)
        if not frame.collect_schema().names():
            return None
        value = frame.select(pl.col("end_ns").max()).collect().item()
        return None if value is None else int(value)

    def _archive_ready(self, incident: Incident, now_ns: int) -> bool:
        """Whether the span archive (flushed in batches) covers the incident's onset yet.

        Diagnosing before the spans are on disk would abstain for lack of data; waiting is
        bounded so that an archive that is off or stuck does not hold the incident forever.
        """
        opened = incident.opened_at
        if now_ns - opened >= self.diagnose_wait_ns:
            return True
        end = self._archive_end_ns(incident_windows(opened, now_ns)[0][0], now_ns + NS_PER_S)
        return end is not None and end >= opened + self.archive_margin_ns

    def _diagnosis_ready(self, incident: Incident, now: str, now_ns: int) -> bool:
        """Whether the diagnose step should run now.

        An incident often opens on an early symptom (memory climbing towards its limit) before
        the traces show anything; a Brain that abstains then is right, but acting on that would
        escalate every incident that is caught early. So while the Brain is not sure, it is asked
        again every `rediagnose_s` of event time, up to `diagnose_wait_s` after the incident
        opened; then the responder goes ahead with whatever it has (abstained: a person).
        """
        if incident.id in self._ready:
            return True
        opened = incident.opened_at
        out_of_time = now_ns - opened >= self.diagnose_wait_ns
        last = self._last_try.get(incident.id)
        if not out_of_time and last is not None and now_ns - last < self.rediagnose_ns:
            return False
        if not out_of_time and not self._archive_ready(incident, now_ns):
            return False
        self._last_try[incident.id] = now_ns
        diagnosis = self._brain(incident, now)
        sure = diagnosis is not None and not diagnosis.abstained and bool(diagnosis.candidates)
        if sure or out_of_time or incident.state in FINAL_STATES:
            self._ready[incident.id] = diagnosis
            return True
        self.audit.record(
            at=now,
            action="diagnosis_deferred",
            reason="the Brain is not sure yet; asking again with more data",
            incident_id=incident.id,
            key=f"defer:{now}",
            inputs={"summary": (diagnosis.summary if diagnosis else "no spans")[:300]},
            outcome="deferred",
        )
        return False

    def _diagnose(self, incident: Incident) -> Diagnosis | None:
        """The responder's diagnose step: the look-ahead's answer, or the Brain now."""
        if incident.id in self._ready:
            return self._ready.pop(incident.id)
        return self._brain(incident, self.event_now())

    def _brain(self, incident: Incident, now: str | None) -> Diagnosis | None:
        """The Brain on the archived spans around the incident; stored in `diagnoses`."""
        opened = incident.opened_at
        end = rfc3339_to_ns(now) if now else opened + NS_PER_S
        if incident.recovered_at is not None:
            end = min(end, incident.recovered_at)
        _, baseline = incident_windows(opened, end)
        archived = self._archive_end_ns(baseline[0], end + NS_PER_S)
        if archived is None:
            self.log(f"{incident.id}: no archived spans around the incident; no diagnosis")
            return None
        window, baseline = incident_windows(opened, min(end, archived + 1))
        end = window[1]
        spans = scan_spans(self.state_dir / "spans", baseline[0], end).collect()
        metrics = [
            SignalWindow.from_dict(r)
            for r in self.store.query(
                "signals", since=ns_to_rfc3339(baseline[0]), until=ns_to_rfc3339(end)
            )
            if r.get("kind") == "metric"
        ]
        commits = commits_for_brain(self.state_dir / "gitops")

        def run(similar: list[dict[str, Any]]) -> Diagnosis:
            return analyze(
                spans,
                window,
                baseline,
                metrics=metrics,
                commits=commits,
                similar=similar,
                incident_id=incident.id,
                onset_ns=opened,
            ).diagnosis

        diagnosis = clean(run([]))
        # Memory is asked with the first answer (services, fault class, evidence); when it knows
        # similar incidents, the ranking is redone with their outcomes (worked first, failed out).
        similar = self.memory.similar_for_brain(diagnosis) if diagnosis.candidates else []
        if similar:
            diagnosis = clean(run(similar))
        top = diagnosis.candidates[0].service if diagnosis.candidates else ""
        # What Memory returned is kept with the diagnosis: drills and post-mortems report it.
        doc = {**diagnosis.to_dict(), "similar": similar}
        self.store.upsert(
            "diagnoses", incident.id, doc, ts=ns_to_rfc3339(incident.opened_at), key=top
        )
        self.log(f"{incident.id}: diagnosis: {diagnosis.summary.splitlines()[0][:160]}")
        return diagnosis

    def _narrate(self, diagnosis: Diagnosis) -> NarrationResult:
        """The LLM's narrative of a diagnosis, within the incident's own budget."""
        budget = self._budgets.setdefault(diagnosis.incident_id, NarrationBudget())
        services = sorted({c.service for c in diagnosis.candidates})
        return narrate(diagnosis, self.narration, known_services=services, budget=budget)

    # --- Memory for the Fixer -----------------------------------------------------------------

    def _prefer(self, incident: Incident, requests: list[ActionRequest]) -> list[ActionRequest]:
        """Memory's order: actions that worked for this fingerprint first, failed ones dropped."""
        ranked = self.memory.rank_actions(incident.fingerprint, [r.action for r in requests])
        out: list[ActionRequest] = []
        for action in ranked:
            out.extend(r for r in requests if r.action == action and r not in out)
        return out

    # --- verification -------------------------------------------------------------------------

    def _health(self, incident: Incident, now: str) -> HealthSample | None:
        """Scout's verdict on the incident at event time `now`: recovered means within baseline."""
        row = self.store.get("incidents", incident.id)
        if row is None:
            return None
        state = str(row.get("state", ""))
        healthy = state in HEALTHY_STATES
        detail = f"Scout: incident {state}" + (
            f" since {row['recovered_at']}" if healthy and row.get("recovered_at") else ""
        )
        return HealthSample(window_end=now, healthy=healthy, detail=detail)

    # --- running ------------------------------------------------------------------------------

    def run_forever(self, stop_event: threading.Event, poll_s: float = 1.0) -> None:
        """Tick every `poll_s` seconds of wall time until `stop_event` is set."""
        while not stop_event.is_set():
            try:
                self.tick()
            except Exception as exc:  # the store may be mid-migration; keep going
                self.log(f"tick failed: {type(exc).__name__}: {exc}")
            stop_event.wait(poll_s)

    def close(self) -> None:
        """Release the store handle."""
        self.store.close()


def run_responders(
    settings: Settings,
    stop_event: threading.Event,
    *,
    poll_s: float = 1.0,
    **kwargs: Any,
) -> None:
    """Run the responder loop in this thread until `stop_event` is set."""
    loop = ResponderLoop(settings, **kwargs)
    try:
        loop.run_forever(stop_event, poll_s)
    finally:
        loop.close()


def start_responders_thread(
    settings: Settings, *, poll_s: float = 1.0, **kwargs: Any
) -> tuple[threading.Thread, threading.Event]:
    """Start the responder loop on a daemon thread; set the event to stop it, then join."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_responders,
        args=(settings, stop),
        kwargs={"poll_s": poll_s, **kwargs},
        name="responders",
        daemon=True,
    )
    thread.start()
    return thread, stop


# --- `sre-space responders` -------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sre-space responders`."""
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between ticks")
    parser.add_argument(
        "--policy", help="remediation policy YAML (default: SRE_POLICY or built-in)"
    )
    parser.add_argument(
        "--deploy-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the shop to run a merged commit",
    )
    parser.add_argument(
        "--deploy-command",
        help="deploy a merged commit by running this command ('{sha}' is replaced; exit 0 = "
        "deployed), e.g. 'argocd app sync shop --revision {sha}'; default: wait for the demo shop",
    )
    parser.add_argument("--once", action="store_true", help="run one tick and exit")
    parser.add_argument(
        "--kafka",
        action="store_true",
        help="also publish to sre.actions and sre.incidents (KAFKA_BOOTSTRAP_SERVERS)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the responders against the state folder (`--state` / SRE_STATE_DIR) until Ctrl-C."""
    settings = load_settings()
    reconciler: Reconciler = (
        CommandReconciler(shlex.split(args.deploy_command), timeout_s=args.deploy_timeout)
        if args.deploy_command
        else ShopReconciler(settings.state_dir, timeout_s=args.deploy_timeout)
    )
    # With a broker configured, audit actions and lifecycle events are published too.
    publish = kafka_publisher(settings.kafka_bootstrap_servers) if args.kafka else None
    loop = ResponderLoop(settings, reconciler=reconciler, policy_path=args.policy, publish=publish)
    print(f"SRE-Space responders on {settings.state_dir.resolve()}", flush=True)
    try:
        if args.once:
            report = loop.tick()
            print(report, flush=True)
            return 0
        loop.run_forever(threading.Event(), args.poll)
    except KeyboardInterrupt:
        print("\nstopping", file=sys.stderr)
    finally:
        loop.close()
    return 0
