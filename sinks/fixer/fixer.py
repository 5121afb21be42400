"""The Fixer's remediate and revert steps: playbook -> policy -> forge, every decision audited.

`Fixer.remediate(incident, diagnosis, now)` turns the Brain's action requests into at most one pull
request per incident: the candidates' typed `ActionRequest`s (the Brain's order, optionally
re-ranked by Memory), each planned by the playbook (refused when unknown or out of bounds), decided by
the policy (refused, dry-run, auto-merge or approval), opened on the forge with its evidence, checked,
and merged when the policy allows. A retry continues the incident's existing pull request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from sinks.fixer.audit import AuditLog
from sinks.fixer.forge import (
    CheckResult,
    Forge,
    ForgeResult,
    MergeMode,
    PullRequest,
    recent_changes,
)
from sinks.fixer.k8s.desired import RepositoryState
from sinks.fixer.playbook import Playbook
from sinks.fixer.policy import Policy
from sinks.fixer.pr_body import render_pr_body
from sinks.store.sqlite import Store
from sre_space.records import ActionRequest, Candidate, Diagnosis, Incident
from sre_space.timeutil import NS_PER_S

RemedyStatus = Literal["merged", "pending", "no_change", "failed"]


@dataclass(frozen=True, slots=True)
class Remedy:
    """What the remediate step achieved."""

    status: RemedyStatus
    reason: str
    pr: PullRequest | None = None
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def merge_sha(self) -> str | None:
        """The merge commit to deploy, when merged."""
        return self.pr.merge_sha if self.pr else None


Prefer = Callable[[Incident, list[ActionRequest]], list[ActionRequest]]


class Fixer:
    """Remediation over a forge with a policy; idempotent per incident."""

    def __init__(
        self,
        forge: Forge,
        store: Store,
        policy: Policy,
        *,
        playbook: Playbook | None = None,
        audit: AuditLog | None = None,
        prefer: Prefer | None = None,
        incident_url: Callable[[str], str] | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.forge = forge
        self.store = store
        self.policy = policy
        self.playbook = playbook or Playbook(policy.config.bounds.to_bounds())
        self.audit = audit or AuditLog(store, secrets=tuple(secrets))
        self.prefer = prefer
        self.incident_url = incident_url
        self.secrets = tuple(secrets)
        # One path for every forge and layout: plan on logical documents, realize as a file edit.
        self.desired = RepositoryState(forge, self.audit)

    def requests_for(self, incident: Incident, diagnosis: Diagnosis | None) -> list[ActionRequest]:
        """The typed requests of the candidates within `min_score_share` of the top one, best
        first, Memory's preference applied."""
        out: list[ActionRequest] = []
        for cand in self._likely(diagnosis):
            out.extend(cand.actions)
        if self.prefer is not None:
            out = self.prefer(incident, out)
        return out

    def _likely(self, diagnosis: Diagnosis | None) -> list[Candidate]:
        if diagnosis is None or diagnosis.abstained or not diagnosis.candidates:
            return []
        floor = self.policy.config.min_score_share * max(c.score for c in diagnosis.candidates)
        return [c for c in diagnosis.candidates if c.score >= floor]

    def _existing(self, incident_id: str) -> PullRequest | None:
        for row in self.store.query("pull_requests", key=incident_id):
            if row.get("forge") == self.forge.name and row.get("state") != "closed":
                return self.forge.get(row["id"])
        return None

    def remediate(self, incident: Incident, diagnosis: Diagnosis | None, now: int) -> Remedy:
        """Open (or continue) the incident's pull request and merge it when allowed."""
        existing = self._existing(incident.id)
        if existing is not None:
            return self._advance_pr(existing, now)
        refusals: list[str] = []
        requests = self.requests_for(incident, diagnosis)
        if not requests:
            refusals.append("the diagnosis recommends no action")
        cooldown = max(60.0, self.policy.config.cooldown_minutes)
        recent = recent_changes(self.store, now - round((cooldown + 1) * 60 * NS_PER_S))
        source = self.desired.source()
        for i, request in enumerate(requests):
            plan = self.playbook.plan(request, source, now=now)
            key = f"plan:{i}:{request.key()}"
            if plan.change is None:
                refusals.append(f"{request.action}: {plan.reason}")
                self.audit.record(
                    at=now,
                    action="refuse_action",
                    reason=plan.reason,
                    incident_id=incident.id,
                    key=key,
                    inputs={
                        "request": request.key(),
                        "source": request.source,
                        "evidence": request.evidence,
                    },
                    outcome="refused",
                )
                continue
            # The repository's own files carry the change, rendered and validated.
            realized = self.desired.realize(plan.change, incident_id=incident.id, now=now)
            if isinstance(realized, str):
                refusals.append(f"{plan.change.action}: {realized}")
                continue
            change = realized
            decision = self.policy.decide(change.action, [change.service], now, recent)
            inputs = {
                **decision.inputs,
                "request": request.key(),
                "evidence": request.evidence,
                "summary": change.summary,
            }
            self.audit.record(
                at=now,
                action=f"policy_{decision.verdict}",
                reason=decision.reason,
                incident_id=incident.id,
                key=f"policy:{i}:{request.key()}",
                inputs=inputs,
                outcome=decision.verdict,
            )
            if decision.verdict == "refuse":
                refusals.append(f"{change.action}: {decision.reason}")
                continue
            if decision.verdict == "dry_run":
                return Remedy("no_change", f"dry-run: would {change.summary}", None, inputs)
            mode: MergeMode = "auto_merge" if decision.verdict == "auto_merge" else "approval"
            verification = self.policy.config.verification
            body = render_pr_body(
                incident_id=incident.id,
                change=change,
                incident=incident,
                diagnosis=diagnosis,
                incident_url=self.incident_url(incident.id) if self.incident_url else "",
                merge_mode=mode,
                healthy_windows=verification.healthy_windows,
                deadline_minutes=verification.deadline_minutes,
                secrets=self.secrets,
            )
            opened = self.forge.open_pull_request(
                incident.id,
                change,
                title=f"[sre-space] {change.summary}"[:120],
                body=body,
                labels=["sre-space", "remediation", f"action:{change.action}"],
                merge_mode=mode,
                now=now,
            )
            if not opened.ok or opened.pr is None:
                refusals.append(f"{change.action}: {opened.reason}")
                continue
            self.audit.record(
                at=now,
                action="open_pull_request",
                reason=change.rationale,
                incident_id=incident.id,
                key=f"open:{opened.pr.id}",
                inputs={"pr": opened.pr.id, "branch": opened.pr.branch, "head": opened.pr.head_sha},
            )
            checked = self.forge.run_checks(
                opened.pr.id, CheckResult("policy", True, decision.reason), now
            )
            if not checked.ok:
                self.audit.record(
                    at=now,
                    action="checks_failed",
                    reason=checked.reason,
                    incident_id=incident.id,
                    key=f"checks:{opened.pr.id}",
                    inputs={"pr": opened.pr.id},
                    outcome="failed",
                )
                return Remedy("no_change", f"checks failed: {checked.reason}", checked.pr, inputs)
            assert checked.pr is not None
            return self._advance_pr(checked.pr, now)
        likely = self._likely(diagnosis)
        if likely and diagnosis is not None and len(likely) < len(diagnosis.candidates):
            share = self.policy.config.min_score_share
            unlikely = len(diagnosis.candidates) - len(likely)
            refusals.append(f"{unlikely} candidate(s) scored under {share:.0%} of the top one's")
        return Remedy("no_change", "; ".join(refusals) or "nothing to do", None, {})

    def _advance_pr(self, pr: PullRequest, now: int) -> Remedy:
        if pr.state == "merged":
            return Remedy("merged", f"pull request {pr.id} is merged", pr)
        if pr.state == "reverted":
            # Never deploy a change that verification already rejected.
            return Remedy("no_change", f"pull request {pr.id} was reverted", pr)
        if not pr.checks:
            checked = self.forge.run_checks(pr.id, CheckResult("policy", True, "re-checked"), now)
            if not checked.ok or checked.pr is None:
                return Remedy("no_change", f"checks failed: {checked.reason}", checked.pr)
            pr = checked.pr
        if not pr.checks_passed:
            return Remedy("no_change", "checks failed", pr)
        merged = self.forge.merge(pr.id, now)
        if merged.ok and merged.pr is not None:
            self.audit.record(
                at=now,
                action="merge",
                reason=f"{pr.merge_mode}: checks passed"
                + (f", approved by {merged.pr.approved_by}" if merged.pr.approved_by else ""),
                incident_id=pr.incident_id,
                key=f"merge:{pr.id}",
                inputs={"pr": pr.id, "merge_sha": merged.pr.merge_sha},
            )
            return Remedy("merged", merged.reason, merged.pr)
        return Remedy("pending", merged.reason, merged.pr or pr)

    def revert(self, pr_id: str, now: int, reason: str) -> ForgeResult:
        """Revert a merged pull request (verification failed); audited, idempotent."""
        pr = self.forge.get(pr_id)
        undo = partial(self.desired.undo, incident_id=pr.incident_id if pr else None, now=now)
        result = self.forge.revert(pr_id, now, reason, undo)
        pr = result.pr
        self.audit.record(
            at=now,
            action="revert",
            reason=reason if result.ok else f"{reason}; revert failed: {result.reason}",
            incident_id=pr.incident_id if pr else None,
            key=f"revert:{pr_id}",
            inputs={"pr": pr_id, "revert_sha": pr.revert_sha if pr else None},
            outcome="done" if result.ok else "failed",
        )
        return result
