"""The post-mortem's records: the inputs `sre_space.records` does not have (the Fixer's
`Remediation`, a `SimilarIncident` from memory) and what a post-mortem is made of (`Impact`,
`BudgetSpent`, `PostMortem`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sre_space.records import TIME, Evidence, Record

POSTMORTEM_SCHEMA = "sre.postmortem/v1"
REMEDIATION_SCHEMA = "sre.remediation-outcome/v1"

# Fix outcomes as the Fixer reports them, plus the two cases where there was no fix.
OUTCOMES = ("verified", "merged", "reverted", "escalated", "none")
WORKED = "verified"
FAILED = frozenset({"reverted"})


@dataclass(frozen=True, slots=True)
class Remediation(Record):
    """What the Fixer did for one incident and how it ended (the post-mortem's resolution input)."""

    action: str
    service: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    pr_id: str | None = None
    pr_url: str | None = None
    commit_sha: str | None = None
    diff: str = ""
    opened_at: int | None = field(default=None, metadata=TIME)
    merged: bool = False
    merged_at: int | None = field(default=None, metadata=TIME)
    verified: bool | None = None
    verified_at: int | None = field(default=None, metadata=TIME)
    verification: str = ""
    reverted: bool = False
    reverted_at: int | None = field(default=None, metadata=TIME)
    revert_pr_url: str | None = None
    escalated: bool = False
    schema: str = REMEDIATION_SCHEMA

    @property
    def outcome(self) -> str:
        """`reverted`, `escalated`, `verified`, `merged` or `none`, worst first."""
        if self.reverted:
            return "reverted"
        if self.escalated:
            return "escalated"
        if self.verified:
            return "verified"
        if self.merged:
            return "merged"
        return "none"


@dataclass(frozen=True, slots=True)
class SimilarIncident(Record):
    """A past incident found in memory, with how similar it is and how its fix ended."""

    incident_id: str
    similarity: float
    fault_class: str = ""
    service: str = ""
    services: list[str] = field(default_factory=list)
    fingerprint: str = ""
    action: str = ""
    outcome: str = "none"
    resolved_at: int | None = field(default=None, metadata=TIME)
    title: str = ""
    link: str = ""

    def for_brain(self) -> dict[str, Any]:
        """The dict the Brain's ranking takes: outcome `worked` / `failed` / as recorded."""
        verdict = {WORKED: "worked", **dict.fromkeys(FAILED, "failed")}.get(
            self.outcome, self.outcome
        )
        return {
            "incident_id": self.incident_id,
            "fault_class": self.fault_class,
            "service": self.service,
            "action": self.action,
            "outcome": verdict,
            "similarity": self.similarity,
        }

    def to_evidence(self) -> Evidence:
        """The Brain's view: an Evidence whose `incident` value is the similarity."""
        fix = (
            f"fixed by {self.action}: {self.outcome}" if self.action else f"outcome {self.outcome}"
        )
        where = ", ".join(self.services) or "unknown service"
        return Evidence(
            kind="similar_incident",
            description=(
                f"past incident {self.incident_id} ({self.fault_class or 'unclassified'} on {where}; "
                f"{fix}); similarity {self.similarity:.2f}"
            ),
            incident=round(self.similarity, 4),
        )


@dataclass(frozen=True, slots=True)
class BudgetSpent(Record):
    """Error budget one incident spent against one SLO."""

    slo: str
    objective: float
    bad_events: float
    budget_events: float
    spent_pct: float
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class Impact(Record):
    """The impact figures, each computed from the signal windows (see the module docstring)."""

    start: int = field(metadata=TIME)
    end: int = field(metadata=TIME)
    duration_s: float
    requests: int
    failed_requests: int
    conversions_lost: float | None
    conversion_baseline: float | None
    conversion_observed: float | None
    cuj: str | None
    error_budget: list[BudgetSpent]
    ongoing: bool


@dataclass(frozen=True, slots=True)
class PostMortem(Record):
    """A post-mortem: the rendered Markdown plus the facts it was built from, for store and index."""

    incident_id: str
    fingerprint: str
    title: str
    severity: str
    state: str
    services: list[str]
    fault_class: str
    culprit: str
    action: str
    outcome: str
    opened_at: int = field(metadata=TIME)
    onset: int = field(metadata=TIME)
    resolved_at: int = field(metadata=TIME)
    duration_s: float
    requests: int
    failed_requests: int
    conversions_lost: float | None
    error_budget: list[dict[str, Any]]
    time_to_detect_s: float
    time_to_mitigate_s: float | None
    pr_url: str | None
    markdown: str
    digest: str
    similar: list[dict[str, Any]] = field(default_factory=list)
    prose: str = "deterministic"
    prose_note: str = ""
    schema: str = POSTMORTEM_SCHEMA


def postmortem_filename(incident_id: str) -> str:
    """`<incident-id>.md`, with anything that is not safe in a file name replaced by `_`."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", incident_id).lstrip(".")
    if not safe:
        raise ValueError(f"incident id {incident_id!r} gives no usable file name")
    return f"{safe}.md"
