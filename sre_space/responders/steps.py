"""The responder's step functions on live incidents, built by the loop and handed to the machine.

- `BrainStep`: the Brain on the span archive around the incident (plus, with `SRE_JAEGER_URL`,
  exemplar traces the archive lacks, from Jaeger), asked ahead of the diagnose step until it is
  sure (`ready`), so the machine's `diagnose` gets that answer.
- `narrator`: the LLM's narrative of a diagnosis, within each incident's budget.
- `memory_preference`: Memory's order of the Fixer's actions for an incident's fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sinks.archive.reader import covered_until, scan_spans
from sinks.brain.config import DiagnosisConfig
from sinks.brain.engine import analyze, incident_windows
from sinks.brain.exemplars import JaegerExemplars, exemplar_trace_ids
from sinks.brain.narrate import NarrationBudget, NarrationConfig, NarrationResult, narrate
from sinks.brain.redact import redact_strings
from sinks.fixer.audit import AuditLog
from sinks.fixer.fixer import Prefer
from sinks.memory.memory import Memory
from sinks.store.sqlite import Store
from sre_space import git
from sre_space.gitops.history import CommitServices
from sre_space.records import ActionRequest, Diagnosis, Incident, SignalWindow
from sre_space.settings import Settings
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339

FINAL_STATES = frozenset({"recovered", "resolved", "escalated"})

Log = Callable[[str], None]


def clean(diagnosis: Diagnosis) -> Diagnosis:
    """The diagnosis with secrets scrubbed from every text: evidence quotes telemetry and commit
    messages, and it is stored, shown, put in pull requests and post-mortems."""
    return Diagnosis.from_dict(redact_strings(diagnosis.to_dict()))


def commits_for_brain(
    repo_path: Path, services: CommitServices | None = None
) -> list[dict[str, Any]]:
    """GitOps history of `main`, newest first, as the Brain's change evidence:
    `{sha, at (ns), message, files, services?}` (services of a Kubernetes repository from its
    renders, cached by the `services` a caller keeps); empty when there is no repository or no
    main."""
    if not (repo_path / ".git").exists():
        return []
    try:
        commits = git.log(repo_path, "main")
    except git.GitError:
        return []
    out = [
        {"sha": c.sha, "at": c.time_s * NS_PER_S, "message": c.subject, "files": list(c.files)}
        for c in commits
    ]
    services = services or CommitServices(repo_path)
    if services.is_kubernetes():
        # A path does not name the service in Kubernetes manifests; the render does. A merge
        # lists no files and names none, as with paths: its branch's commit carries the change.
        for commit in out:
            sha = str(commit["sha"])
            commit["services"] = services.changed(sha) if commit["files"] else []
    return out


class BrainStep:
    """The Brain for the responders: stored in `diagnoses`, asked again while it is not sure."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        memory: Memory,
        audit: AuditLog,
        now: Callable[[], int | None],
        log: Log,
        *,
        archive_margin_s: float = 60.0,
        diagnose_wait_s: float = 900.0,
        rediagnose_s: float = 60.0,
    ) -> None:
        self.spans = settings.paths.spans
        self.diagnosis_config = DiagnosisConfig.from_settings(settings)
        # Every service in each diagnosed incident's data: the narration check's known services.
        self.services: dict[str, list[str]] = {}
        self.gitops = settings.paths.gitops
        self.commit_services = CommitServices(self.gitops)
        self.store = store
        self.memory = memory
        self.audit = audit
        self.now = now
        self.log = log
        # With SRE_JAEGER_URL, exemplar traces the archive lacks are read from Jaeger.
        self.exemplars = JaegerExemplars.from_settings(settings, log)
        self.archive_margin_ns = int(archive_margin_s * NS_PER_S)
        self.diagnose_wait_ns = int(diagnose_wait_s * NS_PER_S)
        self.rediagnose_ns = int(rediagnose_s * NS_PER_S)
        # Answers of the look-ahead (`ready`), handed to the diagnose step.
        self._ready: dict[str, Diagnosis | None] = {}
        self._last_try: dict[str, int] = {}

    def diagnose(self, incident: Incident) -> Diagnosis | None:
        """The machine's diagnose step: the look-ahead's answer, or the Brain now."""
        if incident.id in self._ready:
            return self._ready.pop(incident.id)
        return self._brain(incident, self.now())

    def ready(self, incident: Incident, now_ns: int) -> bool:
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
        diagnosis = self._brain(incident, now_ns)
        sure = diagnosis is not None and not diagnosis.abstained and bool(diagnosis.candidates)
        if sure or out_of_time or incident.state in FINAL_STATES:
            self._ready[incident.id] = diagnosis
            return True
        self.audit.record(
            at=now_ns,
            action="diagnosis_deferred",
            reason="the Brain is not sure yet; asking again with more data",
            incident_id=incident.id,
            key=f"defer:{ns_to_rfc3339(now_ns)}",
            inputs={"summary": (diagnosis.summary if diagnosis else "no spans")[:300]},
            outcome="deferred",
        )
        return False

    def _archive_end_ns(self, start_ns: int, end_ns: int) -> int | None:
        return covered_until(self.spans, start_ns, end_ns)

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

    def services_of(self, incident_id: str) -> list[str]:
        """The services in the data the incident was last diagnosed on."""
        return self.services.get(incident_id, [])

    def _brain(self, incident: Incident, now: int | None) -> Diagnosis | None:
        """The Brain on the archived spans around the incident; stored in `diagnoses`."""
        opened = incident.opened_at
        end = now if now is not None else opened + NS_PER_S
        if incident.recovered_at is not None:
            end = min(end, incident.recovered_at)
        _, baseline = incident_windows(opened, end)
        archived = self._archive_end_ns(baseline[0], end + NS_PER_S)
        if archived is None and self.exemplars is None:
            self.log(f"{incident.id}: no archived spans around the incident; no diagnosis")
            return None
        window, baseline = incident_windows(
            opened, end if archived is None else min(end, archived + 1)
        )
        end = window[1]
        spans = scan_spans(self.spans, baseline[0], end).collect()
        signals = self.store.query(
            "signals", since=ns_to_rfc3339(baseline[0]), until=ns_to_rfc3339(end)
        )
        metrics = [SignalWindow.from_dict(r) for r in signals if r.get("kind") == "metric"]
        if self.exemplars is not None:
            anomalies = [self.store.get("anomalies", a) or {} for a in incident.anomaly_ids]
            ids = exemplar_trace_ids(anomalies, signals, incident.services, window)
            spans = self.exemplars.add_missing(spans, ids)
            if archived is None and spans.height == 0:
                self.log(f"{incident.id}: no spans in the archive or Jaeger; no diagnosis")
                return None
        commits = commits_for_brain(self.gitops, self.commit_services)

        def run(similar: list[dict[str, Any]]) -> Diagnosis:
            analysis = analyze(
                spans,
                window,
                baseline,
                metrics=metrics,
                commits=commits,
                similar=similar,
                incident_id=incident.id,
                onset_ns=opened,
                cfg=self.diagnosis_config,
            )
            self.services[incident.id] = list(analysis.report.services)
            return analysis.diagnosis

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


def narrator(
    settings: Settings, services_of: Callable[[str], Sequence[str]] | None = None
) -> Callable[[Diagnosis], NarrationResult] | None:
    """The LLM's narrative of a diagnosis within the incident's own budget; None without a key.

    `services_of(incident_id)`: every service in the incident's data (the Brain's), so that a
    narrative naming a service that is not in the evidence is dropped, not only one that names
    an unknown candidate."""
    if not settings.openai_api_key:
        return None
    # The LLM only narrates; a slow or failing endpoint must not hold the loop for long.
    config = replace(NarrationConfig.from_settings(settings), timeout_s=10.0)
    budgets: dict[str, NarrationBudget] = {}

    def narrate_diagnosis(diagnosis: Diagnosis) -> NarrationResult:
        budget = budgets.setdefault(diagnosis.incident_id, NarrationBudget())
        services = sorted(
            {c.service for c in diagnosis.candidates}
            | set(services_of(diagnosis.incident_id) if services_of else ())
        )
        return narrate(diagnosis, config, known_services=services, budget=budget)

    return narrate_diagnosis


def memory_preference(memory: Memory) -> Prefer:
    """Memory's order: actions that worked for this fingerprint first, failed ones dropped."""

    def prefer(incident: Incident, requests: list[ActionRequest]) -> list[ActionRequest]:
        ranked = memory.rank_actions(incident.fingerprint, [r.action for r in requests])
        out: list[ActionRequest] = []
        for action in ranked:
            out.extend(r for r in requests if r.action == action and r not in out)
        return out

    return prefer
