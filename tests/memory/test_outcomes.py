"""Outcomes per (fingerprint, action): a fix that failed is not recommended again."""

from __future__ import annotations

import dataclasses

from sinks.memory.memory import Memory
from tests.memory.synthetic import Case, make_case


def _oom_with(action: str, outcome: str, start_seed: int = 1) -> Case:
    for seed in range(start_seed, start_seed + 60):
        c = make_case("oom", seed, outcome=outcome)
        if c.remediation.action == action:
            return c
    raise AssertionError(action)


def _same_fingerprint(c: Case, fingerprint: str) -> Case:
    """The same kind of incident recurring on the key Scout fingerprinted before."""
    return dataclasses.replace(c, incident=dataclasses.replace(c.incident, fingerprint=fingerprint))


def _learn(memory: Memory, c: Case) -> None:
    memory.learn(c.incident, c.anomalies, c.diagnosis, c.remediation, c.audit, c.signals)


def test_failed_fix_is_not_recommended_again(memory: Memory) -> None:
    failed = _oom_with("raise_memory_limit", "reverted")
    fp = failed.incident.fingerprint
    _learn(memory, failed)
    assert memory.avoided_actions(fp) == ["raise_memory_limit"]
    assert memory.preferred_actions(fp) == []
    assert memory.rank_actions(fp, ["raise_memory_limit", "rollback_version"]) == [
        "rollback_version"
    ]
    # Another fix works for the same fingerprint: it becomes the preferred one, the failed one stays avoided.
    _learn(memory, _same_fingerprint(_oom_with("rollback_version", "verified"), fp))
    assert memory.preferred_actions(fp) == ["rollback_version"]
    assert memory.rank_actions(fp, ["raise_memory_limit", "restart", "rollback_version"]) == [
        "rollback_version",
        "restart",
    ]
    stats = {s.action: s for s in memory.outcomes(fp)}
    assert (stats["raise_memory_limit"].failed, stats["raise_memory_limit"].worked) == (1, 0)
    assert (stats["rollback_version"].worked, stats["rollback_version"].success_rate) == (1, 1.0)
    # The Brain sees the failure too: similar incidents carry their outcome.
    query = make_case("oom", failed.seed + 100).diagnosis
    outcomes = {s.incident_id: s.outcome for s in memory.similar_incidents(query, n=5)}
    assert outcomes[failed.incident.id] == "reverted"
    # ...in the shape the Brain's ranking takes (`worked` / `failed`).
    for_brain = {d["incident_id"]: d for d in memory.similar_for_brain(query, n=5)}
    assert for_brain[failed.incident.id]["outcome"] == "failed"
    assert for_brain[failed.incident.id]["action"] == "raise_memory_limit"
    assert for_brain[failed.incident.id]["fault_class"] == "memory_leak"
    assert for_brain[failed.incident.id]["service"] == failed.diagnosis.candidates[0].service
    assert "worked" in {d["outcome"] for d in for_brain.values()}
    # ...and the next post-mortem that repeats the failed fix says so.
    repeat = _oom_with("raise_memory_limit", "verified", start_seed=failed.seed + 1)
    repeat = _same_fingerprint(repeat, fp)
    md = memory.learn(
        repeat.incident,
        repeat.anomalies,
        repeat.diagnosis,
        repeat.remediation,
        repeat.audit,
        repeat.signals,
    ).postmortem.markdown
    assert (
        f"`raise_memory_limit` had already failed for a similar incident (`{failed.incident.id}`"
        in md
    )


def test_outcome_counts_follow_rewrites_of_the_same_incident(memory: Memory) -> None:
    c = make_case("cpu_saturation", 1, outcome="verified")
    fp = c.incident.fingerprint
    _learn(memory, c)
    assert memory.preferred_actions(fp) == ["scale_replicas"]
    # The same incident re-written later as reverted replaces its row: one attempt, now failed.
    _learn(memory, make_case("cpu_saturation", 1, outcome="reverted"))
    (stats,) = memory.outcomes(fp)
    assert (stats.attempts, stats.worked, stats.failed) == (1, 0, 1)
    assert memory.avoided_actions(fp) == ["scale_replicas"]


def test_fingerprints_do_not_leak_into_each_other(memory: Memory) -> None:
    failed = make_case("queue_lag", 1, outcome="reverted")
    _learn(memory, failed)
    other = make_case("cpu_saturation", 1)
    assert other.incident.fingerprint != failed.incident.fingerprint
    assert memory.avoided_actions(other.incident.fingerprint) == []
    assert memory.rank_actions(other.incident.fingerprint, ["scale_replicas"]) == ["scale_replicas"]


def test_escalated_without_merge_is_neither_success_nor_failure(memory: Memory) -> None:
    c = make_case("config_drift", 1, outcome="escalated")
    _learn(memory, c)
    (stats,) = memory.outcomes(c.incident.fingerprint)
    assert (stats.attempts, stats.escalated, stats.worked, stats.failed) == (1, 1, 0, 0)
    assert memory.preferred_actions(c.incident.fingerprint) == []
    assert memory.avoided_actions(c.incident.fingerprint) == []
