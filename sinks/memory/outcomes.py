"""Fix outcomes per (fingerprint, action), and similar past incidents for the Brain.

Outcomes are read from the post-mortem rows of the SQLite store (table `postmortems`, keyed by the
incident's fingerprint), so there is one source of truth: re-writing a post-mortem (idempotent, by
incident id) updates the counts, and nothing can drift between the post-mortem and the statistics.

Reading the counts is data; the rules below are the policy the Fixer was given in the issue: prefer
a fix that worked for the same fingerprint, avoid one that failed.
- worked: the fix was merged and verified (signals recovered);
- failed: the fix was reverted (verification failed, or a person rolled it back);
- preferred: worked more often than failed;
- avoided: failed at least once and at least as often as it worked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sinks.memory.index import PostMortemIndex
from sinks.memory.postmortem import incident_digest
from sinks.memory.records import FAILED, WORKED, SimilarIncident
from sinks.store.sqlite import Store
from sre_space.records import Candidate, Diagnosis

TABLE = "postmortems"


@dataclass(frozen=True, slots=True)
class ActionOutcomes:
    """How one action fared for one fingerprint."""

    fingerprint: str
    action: str
    attempts: int = 0
    worked: int = 0
    failed: int = 0
    escalated: int = 0
    pending: int = 0
    last_outcome: str = ""
    last_incident: str = ""
    incidents: list[str] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        """worked / (worked + failed); 0 when the action has no final outcome yet."""
        done = self.worked + self.failed
        return self.worked / done if done else 0.0

    @property
    def preferred(self) -> bool:
        """Worked more often than it failed."""
        return self.worked > self.failed

    @property
    def avoided(self) -> bool:
        """Failed at least once and at least as often as it worked."""
        return self.failed > 0 and self.failed >= self.worked


class OutcomeTracker:
    """Outcome statistics over the post-mortem rows of the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, postmortem: dict[str, Any]) -> None:
        """Store one post-mortem row (id = incident id, key = fingerprint, ts = end of impact)."""
        self.store.upsert(
            TABLE,
            str(postmortem["incident_id"]),
            postmortem,
            ts=str(postmortem.get("resolved_at", "")),
            key=str(postmortem.get("fingerprint", "")),
        )

    def outcomes(self, fingerprint: str) -> list[ActionOutcomes]:
        """Per-action statistics for one fingerprint, best success rate first."""
        rows = self.store.query(TABLE, key=fingerprint)
        acc: dict[str, dict[str, Any]] = {}
        for row in rows:  # ordered by ts, so the last row seen is the latest outcome
            action = str(row.get("action") or "")
            if not action:
                continue
            outcome = str(row.get("outcome") or "none")
            a = acc.setdefault(
                action,
                {
                    "attempts": 0,
                    "worked": 0,
                    "failed": 0,
                    "escalated": 0,
                    "pending": 0,
                    "incidents": [],
                },
            )
            a["attempts"] += 1
            if outcome == WORKED:
                a["worked"] += 1
            elif outcome in FAILED:
                a["failed"] += 1
            elif outcome == "escalated":
                a["escalated"] += 1
            else:
                a["pending"] += 1
            a["incidents"].append(str(row.get("incident_id", "")))
            a["last_outcome"] = outcome
            a["last_incident"] = str(row.get("incident_id", ""))
        stats = [ActionOutcomes(fingerprint=fingerprint, action=k, **v) for k, v in acc.items()]
        return sorted(stats, key=lambda s: (-s.success_rate, -s.worked, s.failed, s.action))

    def preferred_actions(self, fingerprint: str) -> list[str]:
        """Actions that worked more often than they failed for this fingerprint, best first."""
        return [s.action for s in self.outcomes(fingerprint) if s.preferred]

    def avoided_actions(self, fingerprint: str) -> list[str]:
        """Actions that failed (at least as often as they worked) for this fingerprint."""
        return sorted(s.action for s in self.outcomes(fingerprint) if s.avoided)

    def rank_actions(self, fingerprint: str, proposed: Sequence[str]) -> list[str]:
        """The Brain's proposed actions reordered: preferred first, avoided removed, rest in order."""
        preferred = self.preferred_actions(fingerprint)
        avoided = set(self.avoided_actions(fingerprint))
        first = [a for a in preferred if a in proposed]
        rest = [a for a in proposed if a not in avoided and a not in first]
        return first + rest


def query_text(diagnosis_or_text: Diagnosis | str) -> str:
    """The search text for a diagnosis (its digest) or a free text as given."""
    if isinstance(diagnosis_or_text, Diagnosis):
        return incident_digest(None, (), diagnosis_or_text)
    return diagnosis_or_text


def similar_incidents(
    index: PostMortemIndex,
    diagnosis_or_text: Diagnosis | str,
    n: int = 3,
    *,
    min_similarity: float = 0.0,
    where: dict[str, Any] | None = None,
) -> list[SimilarIncident]:
    """Past incidents similar to a diagnosis (or a text), with similarity and fix outcome.

    For the Brain: `[s.to_evidence() for s in similar_incidents(...)]` gives Evidence records. A
    diagnosis never finds its own incident.
    """
    exclude = [diagnosis_or_text.incident_id] if isinstance(diagnosis_or_text, Diagnosis) else []
    query = query_text(diagnosis_or_text)
    top = _top_candidate(diagnosis_or_text)
    if top is None:
        found = index.search(query, n, where=where, exclude=exclude)
        return [s for s in found if s.similarity >= min_similarity]
    # A diagnosis knows its fault class and service: past incidents of the same class come first,
    # then the same service, each ranked by text similarity; other kinds follow. Text alone mixes
    # kinds up, because every post-mortem of one system talks about the same services.
    pool = index.search(query, max(4 * n, 20), where=where, exclude=exclude)
    cls = canonical_class(top.fault_class)

    def rank(s: SimilarIncident) -> tuple[bool, bool, float]:
        return (canonical_class(s.fault_class) == cls, s.service == top.service, s.similarity)

    ranked = sorted((s for s in pool if s.similarity >= min_similarity), key=rank, reverse=True)
    return ranked[:n]


def _top_candidate(diagnosis_or_text: Diagnosis | str) -> Candidate | None:
    if isinstance(diagnosis_or_text, Diagnosis) and not diagnosis_or_text.abstained:
        return diagnosis_or_text.candidates[0] if diagnosis_or_text.candidates else None
    return None


def canonical_class(name: str) -> str:
    """Fault class names compared loosely (`memory_leak` == `Memory-Leak`)."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")
