"""The Brain's fault classes and the actions its evidence proposes, in the order to try.

Each piece of evidence proposes what would answer it, with parameters from its structured fields
(never from its prose): a version change a rollback to the previous version, a commit its revert,
a flag that flag off, memory saturation a larger limit sized from the peak, CPU or queue load more
replicas sized from the load, callers timing out on a stuck dependency a restart of it and a
breaker on the callers. The fault class only says which kind of answer goes first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sre_space.actions import ACTIONS, ParamValue, request
from sre_space.records import ActionRequest, Evidence

# Every class `rank` reports.
FAULT_CLASSES = frozenset(
    {
        "memory_leak",
        "business_rule",
        "db_latency",
        "error_regression",
        "dependency_timeout",
        "config_pool_exhaustion",
        "cpu_saturation",
        "cache_failure",
        "queue_lag",
        "crashloop",
        "latency_regression",
        "resource_saturation",
        "structural_change",
    }
)
Answer = Literal["undo", "capacity", "mitigate", "runtime"]
# Undoing the change behind a fault comes first, except where the class says the cause is load
# (capacity first: no change to undo made the surge) or a stuck process (a restart clears it).
# "mitigate" protects the callers (a breaker, a longer timeout) and fixes nothing at the cause, so
# it comes after the cause's own capacity, and right after the restart of a stuck dependency.
_ORDER: dict[str, tuple[Answer, ...]] = {
    "cpu_saturation": ("capacity", "undo", "mitigate", "runtime"),
    "queue_lag": ("capacity", "undo", "mitigate", "runtime"),
    "resource_saturation": ("capacity", "runtime", "mitigate", "undo"),
    "dependency_timeout": ("runtime", "mitigate", "capacity", "undo"),
    "cache_failure": ("runtime", "undo", "mitigate", "capacity"),
}
_DEFAULT_ORDER: tuple[Answer, ...] = ("undo", "capacity", "mitigate", "runtime")
# Within undo: a flag is the narrowest switch, then the deployed version, then a config commit.
_UNDO_ORDER = ("set_feature_flag", "rollback_version", "revert_commit")
# Bring a queue's backlog down within this long, while keeping up with arrivals: the default
# verification deadline, so a sized scale-out can be judged healthy before it is reverted.
DRAIN_S = 600.0
_RUNTIME_KINDS = frozenset(
    {
        "resource_memory",
        "resource_oom_kill",
        "resource_restarts",
        "resource_crashloop",
        "resource_pool",
        "hop_latency",
        "structure_shift",
        "call_count_shift",
        "error_origin",
    }
)


def _proposals(service: str, ev: Evidence) -> list[tuple[Answer, ActionRequest]]:
    """What one piece of evidence proposes, as (kind of answer, request)."""
    out: list[tuple[Answer, ActionRequest]] = []
    m = ev.measures or {}
    if ev.flag:
        out.append(("undo", request("set_feature_flag", service, [ev], flag=ev.flag, value=False)))
    if ev.kind == "change_version" or (ev.kind == "attribute" and ev.version):
        out.append(
            ("undo", request("rollback_version", service, [ev], to_version=ev.previous_version))
        )
    if ev.commit:
        out.append(("undo", request("revert_commit", service, [ev], sha=ev.commit)))
    if ev.kind in ("resource_memory", "resource_oom_kill"):
        util = m.get("utilization") if ev.kind == "resource_memory" else 1.0
        out.append(("capacity", request("raise_memory_limit", service, [ev], utilization=util)))
    if ev.kind == "resource_cpu":
        out.append(
            ("capacity", request("scale_replicas", service, [ev], utilization=m.get("utilization")))
        )
    if ev.kind == "resource_lag":
        out.append(
            ("capacity", request("scale_replicas", service, [ev], utilization=queue_demand(m)))
        )
    if ev.kind in ("resource_cpu_throttling", "hop_latency", "latency_shift"):
        out.append(("capacity", request("scale_replicas", service, [ev])))
    if ev.peer:
        # Callers that time out on a stuck dependency: fail fast there, then wait longer.
        out.append(("mitigate", request("enable_circuit_breaker", ev.peer, [ev], enabled=True)))
        out.append(("mitigate", request("raise_timeout", ev.peer, [ev])))
    if ev.kind in _RUNTIME_KINDS or ev.peer:
        out.append(("runtime", request("restart", service, [ev])))
    return out


def queue_demand(measures: dict[str, float]) -> float | None:
    """A queue's demand over its consumers' capacity: arrivals plus the backlog's drain over
    `DRAIN_S`, divided by what the consumers process now (flat out while the backlog grows).

    Arrivals are what was processed plus the backlog's growth over the same window; what the
    consumers manage now is the arrivals less the growth since the backlog began to rise (the
    window's processed rate still counts the healthy minutes before it)."""
    processed = measures.get("processed_per_s") or 0.0
    if processed <= 0:
        return None
    arrivals = processed + max(0.0, measures.get("growth_per_s", 0.0))
    capacity = arrivals - max(0.0, measures.get("recent_growth_per_s", 0.0))
    if capacity <= 0 or capacity > processed:
        capacity = processed  # never sized below what the window's own rate says
    drain = max(0.0, measures.get("backlog", 0.0)) / DRAIN_S
    return round((arrivals + drain) / capacity, 4)


def _merge(a: ActionRequest, b: ActionRequest) -> ActionRequest:
    """One request per action and service: the sized or more specific parameters win (the larger
    utilization when two loads disagree), the evidence of both is cited."""
    params: dict[str, ParamValue] = dict(a.params)
    for k, v in b.params.items():
        if k not in params or (k == "utilization" and float(v) > float(params[k])):
            params[k] = v
    cited = a.evidence + [e for e in b.evidence if e not in a.evidence]
    return ActionRequest(a.action, a.service, params, cited, a.source)


def propose(
    service: str, fault: str, evidence: Sequence[Evidence], similar: Sequence[dict[str, Any]]
) -> list[ActionRequest]:
    """The actions for a candidate in the order to try: what worked before for the same fault class
    first, then the evidence's own by the class's order; what failed before is left out, unless
    that leaves none."""
    order = _ORDER.get(fault, _DEFAULT_ORDER)
    found: dict[tuple[str, str], tuple[Answer, ActionRequest]] = {}
    for ev in evidence:
        for answer, req in _proposals(service, ev):
            key = (req.action, req.service)
            if key in found:
                # Several commits: the newest (evidence lists changes newest first) is the one.
                if req.action != "revert_commit":
                    found[key] = (found[key][0], _merge(found[key][1], req))
            else:
                found[key] = (answer, req)

    def rank(item: tuple[Answer, ActionRequest]) -> tuple[int, int]:
        answer, req = item
        inner = _UNDO_ORDER.index(req.action) if req.action in _UNDO_ORDER else 0
        return order.index(answer), inner

    actions = [req for _answer, req in sorted(found.values(), key=rank)]
    same = [s for s in similar if str(s.get("fault_class") or "").strip().lower() == fault]
    worked = [str(s["action"]) for s in same if s.get("outcome") == "worked"]
    failed = {str(s["action"]) for s in same if s.get("outcome") == "failed"}
    first: list[ActionRequest] = []
    for name in worked:
        mine = [a for a in actions if a.action == name]
        if not mine and _service_only(name):
            # It worked before and needs nothing but the service: worth trying without evidence now.
            mine = [ActionRequest(name, service, source="memory")]
        first += [a for a in mine if a not in first]
    ordered = first + [a for a in actions if a not in first]
    kept = [a for a in ordered if a.action not in failed]
    return kept or actions


def _service_only(action: str) -> bool:
    return action in ACTIONS and not any(p.required for p in ACTIONS[action].values())
