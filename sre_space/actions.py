"""The remediation actions by name with their parameters' types: what the Brain may propose.

The Fixer's playbook (`sinks/fixer/playbook.py`) gives each of these its bounds and manifest edit and
checks at import that it covers exactly these; every request names its service besides these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sre_space.records import ActionRequest, Evidence

ParamValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Param:
    """A parameter's type and whether a request must give it."""

    kind: type[str] | type[int] | type[float] | type[bool]
    required: bool = False


# `utilization` is observed demand over the current capacity (1.0 = exactly saturated); the playbook
# sizes the new limit or replica count from it against the policy's target utilization.
ACTIONS: dict[str, dict[str, Param]] = {
    "rollback_version": {"to_version": Param(str)},
    "raise_memory_limit": {"to_mib": Param(int), "utilization": Param(float)},
    "scale_replicas": {"to": Param(int), "utilization": Param(float)},
    "revert_commit": {"sha": Param(str, required=True)},
    "set_feature_flag": {"flag": Param(str, required=True), "value": Param(bool)},
    "raise_timeout": {"to_ms": Param(int)},
    "enable_circuit_breaker": {"enabled": Param(bool)},
    "restart": {},
}


def _typed(kind: type, value: Any) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def request(
    action: str,
    service: str,
    evidence: list[Evidence],
    source: str = "brain",
    **params: ParamValue | None,
) -> ActionRequest:
    """A request checked against `ACTIONS` (names, parameter types), citing `evidence`; a None
    parameter is left out (the playbook then uses its default).

    Raises ValueError: a proposal that does not type-check is a bug in the proposer, not a refusal.
    """
    spec = ACTIONS.get(action)
    if spec is None:
        message = f"unknown action {action!r}; one of {', '.join(ACTIONS)}"
        raise ValueError(message)
    for name, param in spec.items():
        value = params.get(name)
        if value is None and param.required:
            message = f"{action} needs parameter {name!r}"
            raise ValueError(message)
        if value is not None and not _typed(param.kind, value):
            message = f"{action}.{name} must be {param.kind.__name__}, got {value!r}"
            raise ValueError(message)
    unknown = sorted(set(params) - set(spec))
    if unknown:
        message = f"{action} has no parameter {', '.join(unknown)}; it takes {', '.join(spec)}"
        raise ValueError(message)
    return ActionRequest(
        action=action,
        service=service,
        params={k: v for k, v in params.items() if v is not None},
        evidence=[e.id for e in evidence if e.id],
        source=source,
    )
