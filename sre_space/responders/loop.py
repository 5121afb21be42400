"""The responder loop on live incidents: polls the store and drives one persisted run per incident.

Scout writes incidents into the SQLite store (`incidents`: the latest state per id). Every tick
the `ResponderLoop` starts one persisted `Responder` run (`machine`) per newly opened incident
(idempotent by incident id: progress lives in the `progress` table), passes state changes from
Scout on (`observe`: a recovery before any change ends the run without a change), and advances
every active run: diagnose -> remediate -> deploy -> verify -> post-mortem. The loop builds the
machine with its steps (`steps`: Brain, narration, Scout's verdict; the Fixer; Memory) and holds
the Brain's diagnose step back until the Brain is sure or out of time.

Time is event time: `now` is the newest `window_end` in the `signals` table, never the wall clock,
so an accelerated demo verifies and times out in simulated minutes. Verification asks Scout: an
incident whose signals are back within baseline is `recovered` in the store.

`sre-space responders` (`add_arguments`, `run`) runs the loop against a state folder next to a
dataflow in another process (docker compose); the rig (`sre_space.harness.rig`) runs
`run_forever` on a thread of its own.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sinks.fixer.audit import AuditLog
from sinks.fixer.factory import Deployer, FixerParts, build_deployer, build_fixer
from sinks.fixer.reconciler import Reconciler
from sinks.memory.memory import Memory
from sinks.store.sqlite import Store
from sre_space.records import AuditAction, Incident
from sre_space.responders.lifecycle import LifecycleTracker, Publish, kafka_publisher
from sre_space.responders.machine import Progress, Responder, ResponderSteps
from sre_space.responders.steps import BrainStep, memory_preference, narrator
from sre_space.responders.verify import IncidentHealth
from sre_space.settings import Settings, load_settings
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339, rfc3339_to_ns

Log = Callable[[str], None]


@dataclass
class TickReport:
    """What one tick did (for logs and tests)."""

    now: int | None = None  # event time of the tick (ns)
    started: list[str] = field(default_factory=list)
    advanced: dict[str, str] = field(default_factory=dict)  # incident id -> step after the tick
    deferred: list[str] = field(default_factory=list)  # waiting for the span archive
    errors: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """The tick in a few lines for a person (`sre-space responders --once`)."""
        if self.now is None:
            return "no signal windows in the store yet: nothing to act on"
        lines = [f"tick at {ns_to_rfc3339(self.now)} (the newest signal window's end)"]
        lines += [f"  {iid}: started" for iid in self.started]
        lines += [f"  {iid}: now at {step}" for iid, step in self.advanced.items()]
        lines += [f"  {iid}: diagnosis deferred (more data first)" for iid in self.deferred]
        lines += [f"  {iid}: error: {error}" for iid, error in self.errors.items()]
        if len(lines) == 1:
            lines.append("  no incident to act on")
        return "\n".join(lines)


class ResponderLoop:
    """Polls the store and drives one persisted responder run per incident."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        *,
        deployer: Deployer | None = None,
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
        self.store = store or Store(settings.paths.db)
        self.log = log or (lambda line: print(f"responders: {line}", flush=True))
        self.memory = memory or Memory.from_settings(settings, store=self.store)
        # A policy file replaces the packaged default (SRE_POLICY in the environment).
        policy = policy_path or os.environ.get("SRE_POLICY") or None
        self.parts: FixerParts = build_fixer(
            settings,
            self.store,
            policy_path=policy,
            prefer=memory_preference(self.memory),
            emit=emit,
        )
        # The `deploy:` section decides by default: Argo CD / Flux watched through the telemetry.
        self.deployer = deployer or build_deployer(settings, self.store)
        self.reconciler: Reconciler = self.deployer.reconciler
        self.audit = AuditLog(self.store, actor="responders", emit=emit)
        self.brain = BrainStep(
            settings,
            self.store,
            self.memory,
            self.audit,
            self.event_now,
            self.log,
            archive_margin_s=archive_margin_s,
            diagnose_wait_s=diagnose_wait_s,
            rediagnose_s=rediagnose_s,
        )
        steps = ResponderSteps(
            diagnose=self.brain.diagnose,
            remediate=self.parts.fixer.remediate,
            revert=self.parts.fixer.revert,
            health=IncidentHealth(self.store),
            postmortem=self.memory.postmortem_step,
            narrate=narrator(settings, self.brain.services_of),
        )
        # Lifecycle states the responder sets come back as incident events (store, sre.incidents).
        self.tracker = LifecycleTracker(
            self.parts.tracker, self.store, self.event_now, publish, settings.incidents_topic
        )
        self.responder = Responder(
            self.store,
            steps,
            self.tracker,  # type: ignore[arg-type]
            self.reconciler,
            verification=self.parts.policy.config.verification,
            audit=AuditLog(self.store, actor="responder", emit=emit),
            watch=self.deployer.watch,
            rollout_deadline_s=self.deployer.rollout_deadline_s,
        )
        self.backfill_ns = int(backfill_s * NS_PER_S)
        self.max_loop_errors = max_loop_errors
        self._loop_errors: dict[str, int] = {}
        # The incident snapshot each run last saw, so that only real changes are observed.
        self._seen: dict[str, tuple[str, int, str]] = {}
        # Event time of the tick in progress (None between ticks): an accelerated shop waits for
        # it, so that the Brain's and the Fixer's wall time does not pass as event time.
        self.busy_at_ns: int | None = None

    # --- event time ---------------------------------------------------------------------------

    def event_now(self) -> int | None:
        """The newest `window_end` in the signals table, ns (None before the first window)."""
        # Rows are ordered by window start; windows of different kinds may differ in length, so
        # the newest few are looked at rather than just one.
        rows = self.store.query("signals", limit=50, newest_first=True)
        ends = [rfc3339_to_ns(str(r["window_end"])) for r in rows if r.get("window_end")]
        return max(ends) if ends else None

    # --- the tick -----------------------------------------------------------------------------

    def tick(self) -> TickReport:
        """Start, observe and advance every incident once; never raises for one incident."""
        report = TickReport(now=self.event_now())
        if report.now is None:
            return report
        now = report.now
        self.busy_at_ns = now
        try:
            rows = sorted(self.store.query("incidents"), key=lambda r: str(r.get("opened_at", "")))
            for row in rows:
                incident = Incident.from_dict(row)
                try:
                    step = self._handle(incident, now, report)
                except Exception as exc:  # one incident's failure must not stop the rest
                    self._loop_error(incident, now, exc, report)
                    continue
                if step is not None:
                    report.advanced[incident.id] = step
        finally:
            self.busy_at_ns = None
        return report

    def _handle(self, incident: Incident, now: int, report: TickReport) -> str | None:
        p = self.responder.get(incident.id)
        if p is None:
            if now - incident.updated_at > self.backfill_ns:
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
        if p.step == "diagnose" and not self.brain.ready(incident, now):
            report.deferred.append(incident.id)
            return None
        before = p.step
        p = self._run(incident.id, now)
        if p.step != before:
            self.log(f"{incident.id}: {before} -> {p.step} at {ns_to_rfc3339(now)}")
        return p.step

    def _run(self, incident_id: str, now: int, max_steps: int = 10) -> Progress:
        """Like `Responder.run`, with event time read again before each step.

        A step can take a while (git, GitHub, an LLM, waiting for the deploy); in an accelerated
        demo that is minutes of event time, and a verification deadline computed from the tick's
        stale `now` would be short by that much.
        """
        p = self.responder.advance(incident_id, now)
        for _ in range(max_steps - 1):
            if p.step == "done" or p.status == "waiting":
                break
            latest = self.event_now()
            now = max(now, latest) if latest is not None else now
            p = self.responder.advance(incident_id, now)
        return p

    def _loop_error(
        self, incident: Incident, now: int, exc: BaseException, report: TickReport
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
            self.tracker.escalate(incident.id, f"responder keeps failing: {text}", at=now)

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
        help="seconds a deploy command (or the shop) may take to run a merged commit",
    )
    parser.add_argument(
        "--deploy-command",
        help="deploy a merged commit by running this command ('{sha}' is replaced; exit 0 = "
        "deployed), e.g. 'argocd app sync shop --revision {sha}'; default: the deploy section",
    )
    parser.add_argument(
        "--reconciler",
        choices=("auto", "gitops", "command", "shop"),
        help="how merges are deployed (default: the deploy section; auto = the command if one"
        " is given, else gitops: Argo CD / Flux apply main and the telemetry confirms it)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="run one tick, print what it did and exit (1 if an incident's step failed)",
    )
    parser.add_argument(
        "--kafka",
        action="store_true",
        help="also publish to sre.actions and sre.incidents (KAFKA_BOOTSTRAP_SERVERS)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the responders against the state folder (`--state` / SRE_STATE_DIR) until Ctrl-C, or
    for one tick (`--once`)."""
    settings = load_settings()
    store = Store(settings.paths.db)
    deployer = build_deployer(
        settings,
        store,
        command=shlex.split(args.deploy_command or ""),
        mode=args.reconciler,
        timeout_s=args.deploy_timeout,
    )
    # With a broker configured, audit actions and lifecycle events are published too.
    publish = kafka_publisher(settings.kafka_bootstrap_servers) if args.kafka else None
    loop = ResponderLoop(
        settings, store, deployer=deployer, policy_path=args.policy, publish=publish
    )
    print(
        f"SRE-Space responders on {settings.state_dir.resolve()}, deploying by {deployer.mode}",
        flush=True,
    )
    try:
        if args.once:
            report = loop.tick()
            print(report.describe(), flush=True)
            return 1 if report.errors else 0
        loop.run_forever(threading.Event(), args.poll)
    except KeyboardInterrupt:
        print("\nstopping", file=sys.stderr)
    finally:
        loop.close()
    return 0
