"""The responder state machine: diagnose -> remediate -> deploy -> verify -> postmortem, persisted.

Each incident's progress is a row in the store's `progress` table. `advance(incident_id, now)` runs
the next step with the injected step functions and writes the result before returning; after a crash
the next `advance` re-runs the interrupted step, and because every external step (tracker, forge,
reconciler) is idempotent, nothing is duplicated. Every decision goes to the audit log with its
reason and inputs. Time is the caller's event time (`now`, ns since the epoch), never the wall
clock.

Outcomes, each recorded for Memory: `resolved` (signals back within baseline for the configured
windows), `recovered_without_change` (Scout saw them recover before any change), `reverted` (the
deploy failed or the deadline passed: the change was reverted and the incident escalated), or an
escalation without a change: `no_change` (refused, dry-run, checks failed), `approval_timeout`,
`error` (a step kept failing), `not_rolled_out` (merged, but the telemetry never showed it
running by the rollout deadline: nothing ran, so nothing is reverted).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from sinks.fixer.audit import AuditLog
from sinks.fixer.fixer import Remedy
from sinks.fixer.forge import ForgeError, ForgeResult
from sinks.fixer.policy import VerificationConfig
from sinks.fixer.reconciler import Reconciler
from sinks.fixer.rollout import Rollout, RolloutCheck, rollout_of
from sinks.fixer.tracker import IncidentTracker
from sinks.store.sqlite import Store
from sre_space.records import TIME, Diagnosis, Incident, Record
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339, rfc3339_to_ns

Step = Literal["diagnose", "remediate", "deploy", "verify", "postmortem", "done"]
STEPS: tuple[Step, ...] = ("diagnose", "remediate", "deploy", "verify", "postmortem", "done")


@dataclass(frozen=True, slots=True)
class HealthSample:
    """One verdict of the incident's signals for one window: within baseline or not."""

    window_end: int  # ns
    healthy: bool
    detail: str = ""
    # seconds a backlog needs to drain at its current rate (None: not draining, or no backlog)
    drain_eta_s: float | None = None


class Narration(Protocol):
    """What the narrator returns (`sinks.brain.narrate.NarrationResult`)."""

    @property
    def status(self) -> str: ...  # ok, disabled, rejected, error, budget_exhausted

    @property
    def text(self) -> str: ...

    @property
    def degraded(self) -> str: ...  # why the narrative was not used ("" when it was, or is off)


@dataclass(frozen=True, slots=True)
class ResponderSteps:
    """The step functions the machine runs, built by the loop (`loop`, `steps`): the Brain,
    the Fixer, Scout's verdict and Memory; the machine calls nothing else of the loop.
    `health(incident, now, applied_at)` judges the fix applied at `applied_at` (ns).

    `narrate` (optional) asks the LLM for the diagnosis' narrative; it only decorates the
    diagnosis, and when it degrades (endpoint down, slow, hostile reply) the audit log says why.
    """

    diagnose: Callable[[Incident], Diagnosis | None]
    remediate: Callable[[Incident, Diagnosis | None, int], Remedy]
    revert: Callable[[str, int, str], ForgeResult]
    health: Callable[[Incident, int, int], HealthSample | None]
    postmortem: Callable[[Incident, dict[str, Any]], str]
    narrate: Callable[[Diagnosis], Narration] | None = None


@dataclass(frozen=True, slots=True)
class Progress(Record):
    """An incident's persisted progress. `incident` and `data` are kept in their JSON form (times
    in them as RFC 3339 strings), as the `progress` row holds them."""

    incident: dict[str, Any]
    step: Step
    updated_at: int = field(metadata=TIME)
    status: Literal["active", "waiting", "done"] = "active"
    data: dict[str, Any] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def incident_id(self) -> str:
        """The incident's id."""
        return str(self.incident["id"])


class Responder:
    """Drives incidents through the steps; safe to call from one worker thread per process."""

    def __init__(
        self,
        store: Store,
        steps: ResponderSteps,
        tracker: IncidentTracker,
        reconciler: Reconciler,
        *,
        verification: VerificationConfig | None = None,
        audit: AuditLog | None = None,
        symptoms: Callable[[Incident], str] | None = None,
        max_step_attempts: int = 5,
        watch: Callable[[Rollout, int], RolloutCheck] | None = None,
        rollout_deadline_s: float = 600.0,
    ) -> None:
        self.store = store
        self.steps = steps
        self.tracker = tracker
        self.reconciler = reconciler
        self.verification = verification or VerificationConfig()
        self.audit = audit or AuditLog(store, actor="responder")
        self.symptoms = symptoms or (lambda inc: inc.summary or "(no summary)")
        self.max_step_attempts = max_step_attempts
        # With a watch, a deploy is done only once the telemetry shows the merged change running.
        self.watch = watch
        self.rollout_deadline_ns = round(rollout_deadline_s * NS_PER_S)
        self._lock = threading.RLock()

    # --- persistence --------------------------------------------------------------------------

    def get(self, incident_id: str) -> Progress | None:
        """The incident's progress, or None when it was never started."""
        data = self.store.get("progress", incident_id)
        return None if data is None else Progress.from_dict(data)

    def _save(self, progress: Progress) -> Progress:
        self.store.upsert(
            "progress",
            progress.incident_id,
            progress.to_dict(),
            ts=ns_to_rfc3339(progress.updated_at),
            key=progress.step,
        )
        return progress

    def _audit(
        self,
        p: Progress,
        now: int,
        action: str,
        reason: str,
        key: str,
        *,
        degraded: bool = False,
        **inputs: Any,
    ) -> None:
        self.audit.record(
            at=now,
            action=action,
            reason=reason,
            incident_id=p.incident_id,
            key=f"responder:{key}",
            inputs=inputs,
            outcome="degraded" if degraded else "done",
        )

    # --- entry points -------------------------------------------------------------------------

    def start(self, incident: Incident, now: int) -> Progress:
        """Begin responding to an incident (idempotent): open its issue, persist step `diagnose`."""
        with self._lock:
            existing = self.get(incident.id)
            if existing is not None:
                return existing
            self.tracker.open_issue(incident, self.symptoms(incident))
            p = Progress(incident=incident.to_dict(), step="diagnose", updated_at=now)
            self._audit(p, now, "start", f"incident {incident.state}", "start")
            return self._save(p)

    def advance(self, incident_id: str, now: int) -> Progress:
        """Run the next step of one incident and persist its result."""
        with self._lock:
            p = self.get(incident_id)
            if p is None:
                raise KeyError(f"incident {incident_id} was never started; call start() first")
            if p.step == "done":
                return p
            attempts = dict(p.attempts)
            attempts[p.step] = attempts.get(p.step, 0) + 1
            # The attempt is counted before the step runs, so a step that crashes every time
            # is noticed instead of looping forever.
            p = self._save(Progress(p.incident, p.step, now, p.status, p.data, attempts))
            handler = getattr(self, f"_step_{p.step}")
            incident = Incident.from_dict(p.incident)
            try:
                result: Progress = handler(p, incident, now)
            except ForgeError as exc:
                # git or GitHub failed after its own retries: try again on the next advance,
                # and hand the incident to a person when it keeps failing.
                result = self._step_failed(p, incident, now, str(exc))
            return self._save(result)

    def _step_failed(self, p: Progress, incident: Incident, now: int, error: str) -> Progress:
        tries = p.attempts.get(p.step, 0)
        self._audit(
            p, now, "step_error", error, f"error:{p.step}:{tries}", step=p.step, attempt=tries
        )
        if tries < self.max_step_attempts:
            return self._wait(p, now, last_error=error)
        if p.step == "postmortem":
            # Everything was decided; only posting the post-mortem failed. Escalating again would
            # overwrite the outcome and come back here: stop, the store and this log hold it.
            self._audit(
                p,
                now,
                "postmortem_not_posted",
                f"gave up posting the post-mortem after {tries} attempts: {error}",
                "postmortem-not-posted",
                degraded=True,
            )
            return Progress(p.incident, "done", now, "done", p.data, p.attempts)
        return self._escalate(
            p, incident, now, f"step {p.step} failed {tries} times: {error}", "error"
        )

    def run(self, incident_id: str, now: int, max_steps: int = 10) -> Progress:
        """Advance until the incident waits (approval, verification windows) or is done."""
        p = self.advance(incident_id, now)
        for _ in range(max_steps - 1):
            if p.step == "done" or p.status == "waiting":
                break
            p = self.advance(incident_id, now)
        return p

    def observe(self, incident: Incident, now: int) -> Progress | None:
        """An incident event from the flow: keep the snapshot; a recovery before any change ends it.

        When the incident recovers on its own while the responder is still diagnosing or waiting
        to remediate, no change is made: the outcome `recovered_without_change` goes to the
        post-mortem step. Later steps ignore recoveries: verification decides those.
        """
        with self._lock:
            p = self.get(incident.id)
            if p is None:
                return None
            recovered = incident.state in ("recovered", "resolved")
            if recovered and p.step in ("diagnose", "remediate") and not p.data.get("pr_id"):
                self._audit(
                    p, now, "recovered", f"incident {incident.state} before any change", "recovered"
                )
                outcome = {"result": "recovered_without_change", "detail": incident.state}
                p = Progress(
                    incident.to_dict(),
                    "postmortem",
                    now,
                    "active",
                    {**p.data, "outcome": outcome},
                    p.attempts,
                )
            else:
                p = Progress(incident.to_dict(), p.step, p.updated_at, p.status, p.data, p.attempts)
            return self._save(p)

    # --- steps --------------------------------------------------------------------------------

    def _next(self, p: Progress, step: Step, now: int, **data: Any) -> Progress:
        return Progress(p.incident, step, now, "active", {**p.data, **data}, p.attempts)

    def _wait(self, p: Progress, now: int, **data: Any) -> Progress:
        return Progress(p.incident, p.step, now, "waiting", {**p.data, **data}, p.attempts)

    def _narrate(self, p: Progress, diagnosis: Diagnosis, now: int) -> Diagnosis:
        """The diagnosis with the LLM's narrative when it was accepted; degradation is audited."""
        if self.steps.narrate is None:
            return diagnosis
        try:
            result = self.steps.narrate(diagnosis)
            status, degraded = result.status, result.degraded
        except Exception as exc:  # the narrative is decoration: it never stops the response
            status, degraded = "error", f"the narrator failed: {type(exc).__name__}: {exc}"
        if degraded:
            self._audit(
                p, now, "narration_degraded", degraded, "narrate", degraded=True, status=status
            )
            return diagnosis
        if status == "ok":
            self._audit(p, now, "narrated", "LLM narrative accepted", "narrate", status=status)
            return replace(diagnosis, narrative=result.text)
        return diagnosis

    def _step_diagnose(self, p: Progress, incident: Incident, now: int) -> Progress:
        diagnosis = self.steps.diagnose(incident)
        if diagnosis is not None:
            diagnosis = self._narrate(p, diagnosis, now)
            self.tracker.comment_diagnosis(diagnosis, at=now)
        self.tracker.set_state(incident.id, "diagnosed")
        top = diagnosis.candidates[0] if diagnosis and diagnosis.candidates else None
        self._audit(
            p,
            now,
            "diagnosed",
            f"top candidate {top.service} ({top.fault_class})" if top else "no candidate",
            "diagnose",
            abstained=bool(diagnosis and diagnosis.abstained),
            candidates=len(diagnosis.candidates) if diagnosis else 0,
        )
        return self._next(p, "remediate", now, diagnosis=diagnosis.to_dict() if diagnosis else None)

    def _step_remediate(self, p: Progress, incident: Incident, now: int) -> Progress:
        raw = p.data.get("diagnosis")
        diagnosis = Diagnosis.from_dict(raw) if raw else None
        remedy = self.steps.remediate(incident, diagnosis, now)
        if remedy.pr is not None:
            self.tracker.link_pull_request(remedy.pr, at=now)
        pr_data = {"pr_id": remedy.pr.id if remedy.pr else None}
        if remedy.status == "merged" and remedy.pr is not None and remedy.pr.merge_sha:
            self.tracker.set_state(incident.id, "mitigating")
            self._audit(p, now, "remediated", remedy.reason, "remediate", pr=remedy.pr.id)
            rollout = rollout_of(remedy.pr.change, now).to_dict()
            return self._next(
                p, "deploy", now, merge_sha=remedy.pr.merge_sha, rollout=rollout, **pr_data
            )
        if remedy.status == "pending":
            since = str(p.data.get("pending_since") or ns_to_rfc3339(now))
            waited = (now - rfc3339_to_ns(since)) / 60e9
            if waited >= self.verification.approval_timeout_minutes:
                reason = f"waited {waited:g} min for approval: {remedy.reason}"
                return self._escalate(p, incident, now, reason, "approval_timeout", **pr_data)
            self.tracker.set_state(incident.id, "mitigating", extra=("awaiting-approval",))
            self._audit(
                p,
                now,
                "remediation_pending",
                remedy.reason,
                "remediate-pending",
                pr_id=pr_data["pr_id"],
            )
            return self._wait(p, now, pending_reason=remedy.reason, pending_since=since, **pr_data)
        if remedy.status == "failed" and p.attempts.get("remediate", 0) < self.max_step_attempts:
            self._audit(p, now, "remediation_retry", remedy.reason, "remediate-retry")
            return self._wait(p, now, pending_reason=remedy.reason)
        return self._escalate(
            p,
            incident,
            now,
            f"no automated change was made: {remedy.reason}",
            "no_change",
            **pr_data,
        )

    def _step_deploy(self, p: Progress, incident: Incident, now: int) -> Progress:
        sha = str(p.data["merge_sha"])
        if p.data.get("applied") != sha:
            result = self.reconciler.apply(sha)
            if not result.ok:
                if p.attempts.get("deploy", 0) < self.verification.deploy_attempts:
                    key = f"deploy-retry-{p.attempts['deploy']}"
                    self._audit(p, now, "deploy_retry", result.detail, key)
                    return self._wait(p, now, deploy_error=result.detail)
                return self._revert_and_escalate(
                    p, incident, now, f"deploy of {sha[:12]} failed: {result.detail}"
                )
            self._audit(p, now, "deployed", result.detail, "deploy", commit=sha)
            p = self._wait(p, now, applied=sha, applied_at=ns_to_rfc3339(now))
        raw = p.data.get("rollout")
        if self.watch is None or not raw or not raw.get("service"):
            return self._verifying(p, incident, now)
        check = self.watch(Rollout.from_dict(raw), now)
        if check.running:
            self._audit(p, now, "rolled_out", check.detail, "rolled-out", commit=sha)
            return self._verifying(p, incident, now)
        deadline = rfc3339_to_ns(str(p.data["applied_at"])) + self.rollout_deadline_ns
        if now >= deadline:
            # The change never showed up: it is not what runs, so reverting it would fix nothing;
            # a person finds out why the controller did not apply it.
            reason = (
                f"merged {sha[:12]}, but by {ns_to_rfc3339(deadline)} the telemetry did not show"
                f" it running: {check.detail}"
            )
            return self._escalate(p, incident, now, reason, "not_rolled_out")
        return self._wait(p, now, rollout_detail=check.detail)

    def _verifying(self, p: Progress, incident: Incident, now: int) -> Progress:
        deadline = now + round(self.verification.deadline_minutes * 60 * NS_PER_S)
        self.tracker.set_state(incident.id, "verifying")
        return self._next(
            p,
            "verify",
            now,
            deployed_at=ns_to_rfc3339(now),
            deadline=ns_to_rfc3339(deadline),
            windows={},
        )

    def _step_verify(self, p: Progress, incident: Incident, now: int) -> Progress:
        windows: dict[str, bool] = dict(p.data.get("windows", {}))
        # Progress written before `applied_at` existed has only the deploy's time.
        applied_at = rfc3339_to_ns(str(p.data.get("applied_at") or p.data["deployed_at"]))
        sample = self.steps.health(incident, now, applied_at)
        # Windows are keyed by their end as RFC 3339 text: `data` is the row's JSON.
        if sample is not None and (window_end := ns_to_rfc3339(sample.window_end)) not in windows:
            windows[window_end] = sample.healthy
            self._audit(
                p,
                now,
                "verify_window",
                sample.detail or ("healthy" if sample.healthy else "unhealthy"),
                f"verify:{window_end}",
                window_end=window_end,
                healthy=sample.healthy,
            )
        streak = 0
        for end in sorted(windows, key=rfc3339_to_ns, reverse=True):
            if not windows[end]:
                break
            streak += 1
        need = self.verification.healthy_windows
        if streak >= need:
            detail = f"{streak} consecutive healthy windows (needed {need})."
            self.tracker.comment_verification(incident.id, healthy=True, detail=detail, at=now)
            self._audit(p, now, "verified", detail, "verified")
            outcome = {"result": "resolved", "detail": detail, "pr_id": p.data.get("pr_id")}
            return self._next(p, "postmortem", now, windows=windows, outcome=outcome)
        if now >= rfc3339_to_ns(str(p.data["deadline"])):
            grace = self._drain_grace(p, sample, now)
            if grace is not None:
                return self._wait(p, now, windows=windows, streak=streak, deadline=grace)
            reason = (
                f"signals not back within baseline by the deadline {p.data['deadline']}"
                f" ({streak}/{need} healthy windows, {len(windows)} observed)"
            )
            self.tracker.comment_verification(incident.id, healthy=False, detail=reason, at=now)
            return self._revert_and_escalate(
                Progress(
                    p.incident, p.step, now, p.status, {**p.data, "windows": windows}, p.attempts
                ),
                incident,
                now,
                reason,
            )
        return self._wait(p, now, windows=windows, streak=streak)

    def _drain_grace(self, p: Progress, sample: HealthSample | None, now: int) -> str | None:
        """A later deadline when a backlog drains but needs longer (bounded); else None."""
        eta = sample.drain_eta_s if sample is not None else None
        if eta is None or eta <= 0:
            return None
        deployed = rfc3339_to_ns(str(p.data["deployed_at"]))
        cap = deployed + round(
            (self.verification.deadline_minutes + self.verification.drain_grace_max_minutes)
            * 60
            * NS_PER_S
        )
        until = min(now + round(eta * NS_PER_S), cap)
        if until <= now:
            return None
        deadline = ns_to_rfc3339(until)
        self._audit(
            p,
            now,
            "verify_grace",
            f"the backlog drains in {eta:.0f} s at its current rate: judging at {deadline}",
            f"grace:{deadline}",
            drain_eta_s=round(eta, 1),
            deadline=deadline,
        )
        return deadline

    def _revert_and_escalate(
        self, p: Progress, incident: Incident, now: int, reason: str
    ) -> Progress:
        pr_id = p.data.get("pr_id")
        revert_detail = "nothing to revert"
        if pr_id:
            reverted = self.steps.revert(str(pr_id), now, reason)
            revert_detail = reverted.reason
            sha = reverted.pr.revert_sha if reverted.ok and reverted.pr else None
            if sha:
                applied = self.reconciler.apply(sha)
                revert_detail = f"reverted as {sha[:12]}; deploy: {applied.detail or applied.ok}"
            self._audit(p, now, "revert", reason, "revert", pr=pr_id, detail=revert_detail)
        return self._escalate(p, incident, now, f"{reason}. Revert: {revert_detail}", "reverted")

    def _escalate(
        self, p: Progress, incident: Incident, now: int, reason: str, result: str, **data: Any
    ) -> Progress:
        try:
            self.tracker.escalate(incident.id, reason, at=now)
        except ForgeError as exc:
            # The tracker (GitHub) is down after its retries: the escalation still happens, and
            # the audit log says that nobody was told through the tracker.
            self._audit(
                p,
                now,
                "escalate",
                f"{reason} (not posted: the tracker failed: {exc})",
                "escalate",
                degraded=True,
                result=result,
            )
        else:
            self._audit(p, now, "escalate", reason, "escalate", result=result)
        outcome = {"result": result, "detail": reason, "pr_id": p.data.get("pr_id")}
        return self._next(p, "postmortem", now, outcome=outcome, **data)

    def _step_postmortem(self, p: Progress, incident: Incident, now: int) -> Progress:
        outcome = dict(p.data.get("outcome") or {"result": "unknown"})
        markdown = self.steps.postmortem(incident, outcome)
        if outcome.get("result") in ("resolved", "recovered_without_change"):
            self.tracker.close_with_postmortem(incident.id, markdown, at=now)
        else:
            # Escalated incidents stay open for the person who owns them now.
            self.tracker.comment(incident.id, "postmortem", markdown, at=now)
        self._audit(p, now, "postmortem", f"outcome {outcome.get('result')}", "postmortem")
        return Progress(p.incident, "done", now, "done", p.data, p.attempts)
