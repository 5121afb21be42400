"""The Brain's fault classes and the remediations for each.

`REMEDIATIONS` keys are the fault classes the Brain reports; every action is one of the Fixer's
catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sinks.brain.changes import ChangeFinding
from sinks.brain.pinpoint import AttributeFinding
from sre_space.records import Candidate

# The Fixer's catalog, by action name, in the order to try.
REMEDIATIONS: dict[str, tuple[str, ...]] = {
    "memory_leak": ("rollback_version", "raise_memory_limit", "restart"),
    "business_rule": ("set_feature_flag", "revert_commit"),
    "db_latency": ("revert_commit", "scale_replicas"),
    "error_regression": ("rollback_version", "revert_commit"),
    "dependency_timeout": ("restart", "raise_timeout"),
    "config_pool_exhaustion": ("revert_commit",),
    "cpu_saturation": ("scale_replicas",),
    "cache_failure": ("restart", "set_feature_flag"),
    "queue_lag": ("scale_replicas",),
    "crashloop": ("revert_commit", "rollback_version"),
    "latency_regression": ("rollback_version", "scale_replicas"),
    # Evidence-typed classes (hops inflated around one pod; requests cut short at one service).
    "resource_saturation": ("scale_replicas", "restart"),
    "structural_change": ("rollback_version", "revert_commit", "restart"),
}
CATALOG: frozenset[str] = frozenset(a for actions in REMEDIATIONS.values() for a in actions)


def _same_class(name: object, fault: str) -> bool:
    """Memory's records carry the Brain's own class names (a scorer maps other spellings)."""
    return str(name or "").strip().lower() == fault


def remediations(
    fault: str,
    findings: Sequence[AttributeFinding],
    changes: Sequence[ChangeFinding],
    similar: Sequence[dict[str, Any]],
) -> list[str]:
    """The actions for `fault` in the order to try: what worked before for the same fault class, then
    the class's own (undoing a change the evidence names first); what failed before is left out,
    unless that leaves none."""
    actions = list(REMEDIATIONS.get(fault, ()))
    has_commit = any(c.kind == "commit" for c in changes)
    has_version = any(c.kind == "version" for c in changes) or any(
        f.attribute == "service.version" for f in findings
    )
    if fault in ("db_latency", "latency_regression"):
        # "Scale, or revert the change that caused it": undo a change when there is one.
        if has_version:
            actions = ["rollback_version", "revert_commit", "scale_replicas"]
        elif has_commit:
            actions = ["revert_commit", "scale_replicas"]
        else:
            actions = ["scale_replicas"]
    if fault in ("error_regression", "memory_leak") and not has_version and has_commit:
        actions = ["revert_commit", *[x for x in actions if x != "revert_commit"]]
    if fault in ("crashloop", "config_pool_exhaustion") and not has_commit:
        actions = [x for x in actions if x != "revert_commit"] + ["restart"]
    worked = [
        s["action"]
        for s in similar
        if _same_class(s.get("fault_class"), fault) and s.get("outcome") == "worked"
    ]
    failed = {
        s["action"]
        for s in similar
        if _same_class(s.get("fault_class"), fault) and s.get("outcome") == "failed"
    }
    ordered = [x for x in worked if x in CATALOG] + actions
    out: list[str] = []
    for x in ordered:
        if x not in out and x not in failed:
            out.append(x)
    return out or actions


def action_params(
    candidate: Candidate, changes: Sequence[ChangeFinding]
) -> dict[str, dict[str, Any]]:
    """Parameters for each recommended action of `candidate`, from the evidence (for the Fixer,
    which still applies its own bounds and policy): the version to roll back to, the commit to
    revert, the flag to turn off. An action whose parameter is unknown gets only the service.
    """
    mine = [c for c in changes if c.service == candidate.service]
    version = next((c for c in mine if c.kind == "version"), None)
    commits = sorted((c for c in mine if c.kind == "commit" and c.sha), key=lambda c: -c.at_ns)
    flag = next((c for c in mine if c.kind == "flag" and c.value), None)
    out: dict[str, dict[str, Any]] = {}
    for action in candidate.remediations:
        params: dict[str, Any] = {"service": candidate.service}
        if action == "rollback_version" and version is not None and version.previous:
            params["version"] = version.previous
        elif action == "revert_commit" and commits:
            params["commit"] = commits[0].sha
        elif action == "set_feature_flag":
            key = None
            if candidate.attribute == "feature_flag" and candidate.attribute_value:
                key = candidate.attribute_value.split("=", 1)[0]
            elif flag is not None and flag.value:
                key = flag.value.split("=", 1)[0]
            if key:
                params.update(flag=key, value=False)
        out[action] = params
    return out
