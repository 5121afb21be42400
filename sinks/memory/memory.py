"""Memory, the responder: write each post-mortem next to its incident and answer the other responders.

`Memory.learn(...)` is the one call the loop makes when an incident is resolved or escalated. It finds
similar past incidents, builds the deterministic post-mortem, optionally lets an LLM polish the prose
(kept only if every number and id survives), then writes, in this order:

1. the Markdown file `<state>/postmortems/<incident-id>.md` (atomic rename),
2. the store row (table `postmortems`, id = incident id, key = fingerprint),
3. the ChromaDB entry (upsert by incident id),

and returns the text for the tracker's closing comment. Every step is idempotent, so a retry after a
crash (or a Chroma server being down) simply does it again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from operators.scout.detect.budget import Slo
from sinks.memory.gather import gather
from sinks.memory.index import PostMortemIndex
from sinks.memory.numbers import ProseResult, improve_prose
from sinks.memory.outcomes import ActionOutcomes, OutcomeTracker, similar_incidents
from sinks.memory.postmortem import PostMortemInputs, build_postmortem, incident_digest
from sinks.memory.records import PostMortem, SimilarIncident, postmortem_filename
from sinks.memory.render import fmt_duration
from sinks.store.sqlite import Store
from sre_space.paths import StatePaths
from sre_space.records import Diagnosis, Incident
from sre_space.settings import Settings

# A closing comment longer than this is cut (GitHub's limit is 65536 characters).
_MAX_CLOSING_CHARS = 60_000


@dataclass(frozen=True, slots=True)
class WrittenPostMortem:
    """What `Memory.learn` wrote: the record, the file, the tracker text, and the LLM verdict."""

    postmortem: PostMortem
    path: Path
    closing_text: str
    prose: ProseResult | None = None


def closing_text(pm: PostMortem, path: Path) -> str:
    """The tracker's closing comment: a short verdict, then the whole post-mortem."""
    fix = f"`{pm.action}` -> **{pm.outcome}**" if pm.action else f"no automated fix ({pm.outcome})"
    head = (
        f"**Post-mortem** for `{pm.incident_id}`: {pm.fault_class} in `{pm.culprit}`; "
        f"{fmt_duration(pm.duration_s)} of impact, {pm.failed_requests:,} failed requests; fix {fix}.\n"
        f"Written to `{path}`.\n\n"
    )
    body = pm.markdown
    if len(head) + len(body) > _MAX_CLOSING_CHARS:
        body = body[: _MAX_CLOSING_CHARS - len(head) - 40] + "\n\n... (truncated; see the file)\n"
    return head + body


class Memory:
    """Post-mortems written, indexed and remembered; outcome statistics for the Fixer."""

    def __init__(
        self,
        state_dir: str | Path,
        store: Store,
        index: PostMortemIndex,
        *,
        slos: Sequence[Slo] = (),
        llm_client: Any = None,
        llm_model: str = "gpt-4o-mini",
        similar_n: int = 3,
        similar_floor: float = 0.3,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.store = store
        self.index = index
        self.outcomes_tracker = OutcomeTracker(store)
        self.slos = tuple(slos)
        self.llm_client = llm_client
        self.llm_model = llm_model
        self.similar_n = similar_n
        # Below this cosine similarity a "similar" incident is noise in the post-mortem. Measured on
        # the synthetic scenarios: same kind >= 0.35 (median 0.59), other kinds median 0.14.
        self.similar_floor = similar_floor

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        slos: Sequence[Slo] = (),
        llm_client: Any = None,
    ) -> Memory:
        """Memory over the state folder (or SRE_CHROMA_URL); the LLM only if a client is given."""
        settings = settings or Settings()
        store = store or Store(settings.paths.db)
        index = PostMortemIndex.from_settings(settings)
        return cls(
            settings.state_dir,
            store,
            index,
            slos=slos,
            llm_client=llm_client,
            llm_model=settings.openai_model,
        )

    # -- writing ------------------------------------------------------------------------------------

    def learn(
        self, *inputs: *PostMortemInputs, slos: Sequence[Slo] | None = None
    ) -> WrittenPostMortem:
        """Build, write, store and index the post-mortem of one resolved or escalated incident
        (the inputs are `build_postmortem`'s)."""
        incident, anomalies, diagnosis = inputs[:3]
        query = incident_digest(incident, anomalies, diagnosis)
        similar = [
            replace(s, link=s.link or postmortem_filename(s.incident_id))
            for s in self.index.search(query, self.similar_n, exclude=[incident.id])
            if s.similarity >= self.similar_floor
        ]
        pm = build_postmortem(
            *inputs,
            slos=self.slos if slos is None else slos,
            similar=similar,
        )
        prose: ProseResult | None = None
        if self.llm_client is not None:
            prose = improve_prose(pm.markdown, self.llm_client, self.llm_model)
            if prose.accepted:
                pm = replace(pm, markdown=prose.text, prose="llm", prose_note=prose.reason)
            else:
                pm = replace(pm, prose_note=prose.reason)
        path = self._write_file(pm)
        self.outcomes_tracker.record(pm.to_dict())
        self.index.index(pm, link=path.name)
        return WrittenPostMortem(pm, path, closing_text(pm, path), prose)

    def postmortem_step(self, incident: Incident, outcome: dict[str, Any]) -> str:
        """The responder's `postmortem` step: gather the inputs from the store, learn, return the
        tracker text (closing comment when resolved, a comment when escalated)."""
        return self.learn(*gather(self.store, incident, outcome)).closing_text

    def _write_file(self, pm: PostMortem) -> Path:
        folder = StatePaths(self.state_dir).postmortems
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / postmortem_filename(pm.incident_id)
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(pm.markdown, encoding="utf-8")
        # Atomic: a reader (the dashboard) never sees half a post-mortem.
        os.replace(tmp, path)
        return path

    # -- reading ------------------------------------------------------------------------------------

    def search(
        self, text: str, n: int = 5, *, where: dict[str, Any] | None = None
    ) -> list[SimilarIncident]:
        """Post-mortems similar to a free text, best first."""
        return self.index.search(text, n, where=where)

    def similar_incidents(
        self, diagnosis_or_text: Diagnosis | str, n: int = 3
    ) -> list[SimilarIncident]:
        """For the Brain: similar past incidents with similarity and outcome (`.to_evidence()`)."""
        return similar_incidents(self.index, diagnosis_or_text, n)

    def similar_for_brain(
        self, diagnosis_or_text: Diagnosis | str, n: int = 5
    ) -> list[dict[str, Any]]:
        """The `similar` argument of the Brain's ranking: fault class, service, action, worked/failed."""
        return [s.for_brain() for s in self.similar_incidents(diagnosis_or_text, n)]

    def outcomes(self, fingerprint: str) -> list[ActionOutcomes]:
        """Per-action fix statistics for one fingerprint."""
        return self.outcomes_tracker.outcomes(fingerprint)

    def preferred_actions(self, fingerprint: str) -> list[str]:
        """For the Fixer: actions that worked for this fingerprint, best first."""
        return self.outcomes_tracker.preferred_actions(fingerprint)

    def avoided_actions(self, fingerprint: str) -> list[str]:
        """For the Fixer: actions that failed for this fingerprint."""
        return self.outcomes_tracker.avoided_actions(fingerprint)

    def rank_actions(self, fingerprint: str, proposed: Sequence[str]) -> list[str]:
        """For the Fixer: proposed actions with preferred first and avoided removed."""
        return self.outcomes_tracker.rank_actions(fingerprint, proposed)
