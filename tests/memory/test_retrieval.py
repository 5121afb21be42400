"""Retrieval quality on a real embedded ChromaDB: a new incident finds its own kind first.

One post-mortem of every chaos scenario is indexed (seed 1); then three new incidents of every
scenario (seeds 2-4, different services, wording and numbers) are searched for. The issue asks for
the right scenario ranked first in at least 90% of cases. Two queries are measured:

- as the Brain asks (`similar_incidents(diagnosis)`): the diagnosis, with its fault class;
- from symptoms only (the incident summary and its anomalies, no diagnosis): harder, no label.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sinks.memory.embedding import HashingEmbedding
from sinks.memory.index import PostMortemIndex, chroma_client
from sinks.memory.memory import Memory
from sinks.memory.postmortem import incident_digest
from sinks.store.sqlite import Store
from tests.memory.synthetic import FAULT_CLASS, SCENARIOS, make_case

INDEXED_SEED = 1
QUERY_SEEDS = (2, 3, 4)


def _index_one_run(memory: Memory) -> None:
    for scenario in SCENARIOS:
        c = make_case(scenario, INDEXED_SEED)
        memory.learn(c.incident, c.anomalies, c.diagnosis, c.remediation, c.audit, c.signals)
    assert memory.index.count() == len(SCENARIOS)


def test_new_incident_retrieves_its_own_kind_first(memory: Memory) -> None:
    _index_one_run(memory)
    hits_brain = hits_symptoms = total = 0
    misses: list[str] = []
    for scenario in SCENARIOS:
        for seed in QUERY_SEEDS:
            c = make_case(scenario, seed)
            total += 1
            by_diag = memory.similar_incidents(c.diagnosis, n=3)
            assert by_diag, "an indexed memory must return neighbours"
            assert all(-1.0 <= s.similarity <= 1.0 for s in by_diag)
            # Same fault class first, then same service, then by similarity.
            top = c.diagnosis.candidates[0]
            keys = [
                (s.fault_class == top.fault_class, s.service == top.service, s.similarity)
                for s in by_diag
            ]
            assert keys == sorted(keys, reverse=True)
            if by_diag[0].fault_class == FAULT_CLASS[scenario]:
                hits_brain += 1
            else:
                misses.append(f"diagnosis {scenario}/{seed} -> {by_diag[0].fault_class}")
            by_symptoms = memory.search(incident_digest(c.incident, c.anomalies), n=1)
            if by_symptoms[0].fault_class == FAULT_CLASS[scenario]:
                hits_symptoms += 1
            else:
                misses.append(f"symptoms {scenario}/{seed} -> {by_symptoms[0].fault_class}")
    rate_brain, rate_symptoms = hits_brain / total, hits_symptoms / total
    print(
        f"\nretrieval top-1: diagnosis query {hits_brain}/{total} = {rate_brain:.0%}; "
        f"symptoms-only query {hits_symptoms}/{total} = {rate_symptoms:.0%}"
        + (f"; misses: {misses}" if misses else "")
    )
    assert rate_brain >= 0.9, misses
    assert rate_symptoms >= 0.9, misses


def test_results_carry_outcome_and_metadata(memory: Memory) -> None:
    _index_one_run(memory)
    c = make_case("oom", 7)
    top = memory.similar_incidents(c.diagnosis, n=1)[0]
    assert top.fault_class == "memory_leak"
    assert top.outcome == "verified"
    assert top.action in ("raise_memory_limit", "rollback_version")
    assert top.link == f"{top.incident_id}.md"
    evidence = top.to_evidence()
    assert evidence.kind == "similar_incident"
    assert evidence.incident == round(top.similarity, 4)
    assert top.incident_id in evidence.description and "verified" in evidence.description
    # filters pass through to Chroma
    only = memory.search("slow", n=5, where={"fault_class": "queue_lag"})
    assert [s.fault_class for s in only] == ["queue_lag"]


def measure(index_seeds: Sequence[int], query_seeds: Sequence[int]) -> str:
    """Top-1 rates over more seeds than the test uses: `python -m tests.memory.test_retrieval`."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = Store(root / "sre.db")
        memory = Memory(root, store, PostMortemIndex(chroma_client(root), HashingEmbedding()))
        for scenario in SCENARIOS:
            for seed in index_seeds:
                c = make_case(scenario, seed)
                memory.learn(
                    c.incident, c.anomalies, c.diagnosis, c.remediation, c.audit, c.signals
                )
        brain = symptoms = total = 0
        confusions: Counter[tuple[str, str]] = Counter()
        for scenario in SCENARIOS:
            for seed in query_seeds:
                c = make_case(scenario, seed)
                total += 1
                brain += (
                    memory.similar_incidents(c.diagnosis, 1)[0].fault_class == FAULT_CLASS[scenario]
                )
                got = memory.search(incident_digest(c.incident, c.anomalies), 1)[0].fault_class
                symptoms += got == FAULT_CLASS[scenario]
                if got != FAULT_CLASS[scenario]:
                    confusions[(scenario, got)] += 1
        store.close()
    return (
        f"indexed {len(index_seeds)} run(s) per scenario, {total} queries: diagnosis "
        f"{brain}/{total} = {brain / total:.1%}, symptoms-only {symptoms}/{total} = "
        f"{symptoms / total:.1%}; symptom confusions {dict(confusions)}"
    )


if __name__ == "__main__":
    queries = range(10, 10 + (int(sys.argv[1]) if len(sys.argv) > 1 else 20))
    print(measure([1], queries))
    print(measure([1, 2, 3], queries))
