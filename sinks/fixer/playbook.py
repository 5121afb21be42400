"""The remediation playbook: typed, bounded actions that turn one manifest into the next.

An action is asked for by name, service and parameters (an `ActionRequest` record, usually the
Brain's, built from its evidence). Names and parameter types are `sre_space.actions.ACTIONS`; this
module gives each its bounds and manifest edit. `Playbook.plan` refuses anything that is not in the
playbook, has unknown, missing or mistyped parameters, or is out of bounds, and returns a
`PlanResult` with the reason instead of raising: whatever the request said, only a `Change` that passed every bound and the
key guard can reach a forge. A `Change` is exactly one manifest file's old and new text, the keys it
touched with their values before and after, and how to undo it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sinks.fixer import manifest as mf
from sre_space.actions import ACTIONS, Param
from sre_space.records import ActionRequest
from sre_space.timeutil import ns_to_rfc3339


@dataclass(frozen=True, slots=True)
class Revision:
    """One version of a file in the manifests repository: commit, commit time, the file's text."""

    sha: str
    at: str
    text: str | None


class ManifestSource(Protocol):
    """Read access to the manifests repository; both forges implement it."""

    def read(self, path: str, ref: str = "main") -> str | None:
        """A file's text at a ref, or None when it does not exist there."""
        ...

    def history(self, path: str, limit: int = 50) -> list[Revision]:
        """The file's versions on main, newest first (the commits that changed it)."""
        ...

    def commit_changes(self, sha: str) -> dict[str, tuple[str | None, str | None]]:
        """Files a commit changed: path -> (text before, text after) against its first parent."""
        ...


@dataclass(frozen=True, slots=True)
class Change:
    """A planned, bounded change to one service manifest."""

    action: str
    service: str
    params: dict[str, Any]
    path: str
    old_text: str
    new_text: str
    before: dict[str, Any]
    after: dict[str, Any]
    allowed_keys: tuple[str, ...]
    summary: str
    rationale: str
    expected_recovery: str
    undo: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with the pull request record)."""
        return {
            "action": self.action,
            "service": self.service,
            "params": self.params,
            "path": self.path,
            "old_text": self.old_text,
            "new_text": self.new_text,
            "before": self.before,
            "after": self.after,
            "allowed_keys": list(self.allowed_keys),
            "summary": self.summary,
            "rationale": self.rationale,
            "expected_recovery": self.expected_recovery,
            "undo": self.undo,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        """Inverse of `to_dict`."""
        d = dict(data)
        d["allowed_keys"] = tuple(d.get("allowed_keys", ()))
        return cls(**d)


@dataclass(frozen=True, slots=True)
class PlanResult:
    """The playbook's answer: a change, or a refusal with its reason."""

    request: ActionRequest
    change: Change | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when a change was planned."""
        return self.change is not None


@dataclass(frozen=True, slots=True)
class Bounds:
    """Hard limits of the playbook (the policy file may tighten them, never loosen past the schema)."""

    memory_ceiling_mib: int = 8192
    memory_max_step_ratio: float = 2.0
    replicas_min: int = 1
    replicas_max: int = 20
    replicas_max_step_up: int = 3
    timeout_ceiling_ms: int = 30000
    timeout_max_step_ratio: float = 2.0
    # What a sized change aims for: demand per replica (or of the memory limit) at this share of
    # capacity, leaving headroom for the daily peak and bursts instead of sizing to exactly 100%.
    target_utilization: float = 0.65


@dataclass(frozen=True, slots=True)
class PlanContext:
    """What an action may look at besides the manifest: the repository and the event time."""

    source: ManifestSource
    now: int | None = None  # event time (ns); restart writes it into the manifest
    bounds: Bounds = Bounds()


class Refused(Exception):
    """Internal: an action's bound or precondition failed (converted to a PlanResult reason)."""


Target = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One playbook entry: the keys it may touch and how to compute its target values."""

    name: str
    keys: Callable[[dict[str, Any], dict[str, Any], PlanContext], tuple[str, ...]]
    target: Callable[[dict[str, Any], dict[str, Any], PlanContext], Target]
    summary: Callable[[str, dict[str, Any], dict[str, Any]], str]
    rationale: str
    expected_recovery: str

    @property
    def params(self) -> dict[str, Param]:
        """The action's parameters (`sre_space.actions`), the service always among them."""
        return {"service": Param(str, required=True), **ACTIONS[self.name]}


def _int_param(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise Refused(f"parameter {name!r} must be an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    raise Refused(f"parameter {name!r} must be an integer, got {value!r}")


def _bool_param(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise Refused(f"parameter {name!r} must be true or false, got {value!r}")


def _float_param(name: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise Refused(f"parameter {name!r} must be a finite number, got {value!r}")


def _str_param(name: str, value: Any) -> str:
    if isinstance(value, str) and value.strip() and len(value) <= 200:
        return value.strip()
    raise Refused(f"parameter {name!r} must be a non-empty string, got {value!r}")


_COERCE: dict[type, Callable[[str, Any], Any]] = {
    int: _int_param,
    float: _float_param,
    bool: _bool_param,
    str: _str_param,
}


def _current_int(doc: dict[str, Any], key: str) -> int:
    value = mf.get_path(doc, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused(f"manifest has no integer at {key} (found {value!r})")
    return value


# --- the actions -------------------------------------------------------------------------------


def _rollback_target(p: dict[str, Any], doc: dict[str, Any], ctx: PlanContext) -> Target:
    current = doc.get("version")
    path = mf.manifest_path(p["service"])
    previous: list[str] = []
    for rev in ctx.source.history(path):
        if rev.text is None:
            continue
        try:
            version = mf.parse(rev.text).get("version")
        except mf.ManifestError:
            continue
        if isinstance(version, str) and version != current and version not in previous:
            previous.append(version)
    if not previous:
        raise Refused(f"no earlier version of {p['service']} in the history of {path}")
    wanted = p.get("to_version")
    if wanted is None:
        # The last good version is the one that ran before the current one was deployed.
        return {"version": previous[0]}
    if wanted == current:
        raise Refused(f"{p['service']} already runs version {wanted}")
    if wanted not in previous:
        raise Refused(
            f"version {wanted!r} never ran for {p['service']} (history: {', '.join(previous)});"
            " a rollback only goes to a version that was deployed before"
        )
    return {"version": wanted}


def _memory_target(p: dict[str, Any], doc: dict[str, Any], ctx: PlanContext) -> Target:
    key = "resources.memory_limit_mib"
    current = _current_int(doc, key)
    b = ctx.bounds
    ceiling = min(b.memory_ceiling_mib, int(current * b.memory_max_step_ratio))
    to = p.get("to_mib")
    if to is None:
        to = ceiling
        if p.get("utilization") is not None:
            # The observed peak is `utilization` x the current limit; size the limit so that peak
            # sits at the target utilization (an OOM-killed pod's peak is at least its limit).
            to = min(ceiling, math.ceil(current * p["utilization"] / b.target_utilization))
    _check_raise(
        "to_mib", to, current, "MiB", "limit", b.memory_ceiling_mib, b.memory_max_step_ratio
    )
    return {key: to}


def _check_raise(
    param: str, to: int, current: int, unit: str, what: str, ceiling: int, ratio: float
) -> None:
    """Refuse a raise that does not raise, passes the ceiling, or steps more than `ratio` x."""
    if to <= current:
        raise Refused(f"{param}={to} does not raise the {what} (current {current} {unit})")
    if to > ceiling:
        raise Refused(f"{param}={to} is above the ceiling of {ceiling} {unit}")
    if to > current * ratio:
        raise Refused(f"{param}={to} is more than {ratio:g}x the current {current} {unit}")


def _replicas_target(p: dict[str, Any], doc: dict[str, Any], ctx: PlanContext) -> Target:
    current = _current_int(doc, "replicas")
    b = ctx.bounds
    to = p.get("to")
    if to is None:
        # A sized step is clamped to the bounds (the policy's cap wins over the estimate); an
        # explicit `to` beyond them is refused below.
        to = min(_sized_replicas(current, p.get("utilization"), b), b.replicas_max)
        to = min(to, current + b.replicas_max_step_up)
        if to <= current:
            raise Refused(
                f"the observed load needs no more than the current {current} replicas"
                f" at the target utilization of {b.target_utilization:g}"
            )
    if not b.replicas_min <= to <= b.replicas_max:
        raise Refused(f"to={to} is outside {b.replicas_min}..{b.replicas_max} replicas")
    if to - current > b.replicas_max_step_up:
        raise Refused(
            f"to={to} adds {to - current} replicas; at most +{b.replicas_max_step_up} per change"
        )
    if to == current:
        raise Refused(f"{p['service']} already runs {current} replicas")
    return {"replicas": to}


def _sized_replicas(current: int, utilization: float | None, b: Bounds) -> int:
    """Replicas that carry the observed load at the target utilization per replica.

    The load is `current * utilization` replicas' worth of capacity (the Brain's `utilization` is
    demand over current capacity: CPU per replica, or a queue's arrivals plus its backlog's drain
    over what the consumers process); dividing by the target leaves headroom. Without a measure:
    double, the most a blind step may do.
    """
    if utilization is None:
        return current * 2
    return max(1, math.ceil(current * utilization / b.target_utilization))


def _timeout_target(p: dict[str, Any], doc: dict[str, Any], ctx: PlanContext) -> Target:
    key = "timeouts.downstream_ms"
    current = _current_int(doc, key)
    b = ctx.bounds
    to = p.get("to_ms")
    if to is None:
        to = min(b.timeout_ceiling_ms, int(current * b.timeout_max_step_ratio))
    _check_raise(
        "to_ms", to, current, "ms", "timeout", b.timeout_ceiling_ms, b.timeout_max_step_ratio
    )
    return {key: to}


def _flag_keys(p: dict[str, Any], doc: dict[str, Any], ctx: PlanContext) -> tuple[str, ...]:
    return (f"feature_flags.{p['flag']}",)


def _flag_target(p: dict[str, Any], doc: dict[str, Any], ctx: PlanContext) -> Target:
    flags = doc.get("feature_flags")
    flag = p["flag"]
    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,100}", flag):
        raise Refused(f"flag name {flag!r} is not a valid flag key")
    if not isinstance(flags, dict) or flag not in flags:
        # Creating a flag the service never declared would be a new behaviour, not a remediation.
        raise Refused(f"{p['service']} declares no feature flag {flag!r}")
    # Without a value the flag is turned off: the remediation is to leave the new code path.
    return {f"feature_flags.{flag}": p.get("value", False)}


def _breaker_target(p: dict[str, Any], doc: dict[str, Any], ctx: PlanContext) -> Target:
    return {"circuit_breaker": p.get("enabled", True)}


def _restart_target(p: dict[str, Any], doc: dict[str, Any], ctx: PlanContext) -> Target:
    if ctx.now is None:
        raise Refused("restart needs the event time (no clock given)")
    return {"rollout.restarted_at": ns_to_rfc3339(ctx.now)}


def _revert_keys(p: dict[str, Any], doc: dict[str, Any], ctx: PlanContext) -> tuple[str, ...]:
    return tuple(sorted(_revert_target(p, doc, ctx)))


def _commit_diff(p: dict[str, Any], ctx: PlanContext) -> tuple[str, dict[str, Any], dict[str, Any]]:
    changes = ctx.source.commit_changes(p["sha"])
    manifests = {path: texts for path, texts in changes.items() if mf.service_of_path(path)}
    if not manifests:
        raise Refused(f"commit {p['sha']} changed no service manifest")
    if len(manifests) > 1:
        raise Refused(
            f"commit {p['sha']} changed {len(manifests)} services; one service per change"
        )
    ((path, (old, new)),) = manifests.items()
    if old is None or new is None:
        raise Refused(f"commit {p['sha']} created or deleted {path}; not a config change")
    return path, mf.flatten(mf.parse(old)), mf.flatten(mf.parse(new))


def _revert_target(p: dict[str, Any], doc: dict[str, Any], ctx: PlanContext) -> Target:
    _path, old, new = _commit_diff(p, ctx)
    current = mf.flatten(doc)
    target: Target = {}
    for key in sorted(old.keys() | new.keys()):
        if old.get(key, _ABSENT) == new.get(key, _ABSENT):
            continue
        if key not in old:
            raise Refused(f"commit {p['sha']} added {key}; removing keys is not a revert here")
        # Only keys that still hold what the commit wrote go back: a later change wins.
        if current.get(key, _ABSENT) == new.get(key, _ABSENT):
            target[key] = old[key]
    if not target:
        raise Refused(f"commit {p['sha']} is already reverted or overwritten by later changes")
    return target


_ABSENT = object()


def _fixed(*keys: str) -> Callable[[dict[str, Any], dict[str, Any], PlanContext], tuple[str, ...]]:
    return lambda p, doc, ctx: keys


def _describe(verb: str) -> Callable[[str, dict[str, Any], dict[str, Any]], str]:
    def summary(service: str, before: dict[str, Any], after: dict[str, Any]) -> str:
        parts = [f"{k} {before.get(k)!r} -> {after[k]!r}" for k in sorted(after)]
        return f"{verb} {service}: " + ", ".join(parts)

    return summary


SPECS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "rollback_version",
            _fixed("version"),
            _rollback_target,
            _describe("Roll back"),
            "The incident started with the current version; the previous version ran within"
            " baseline, so returning to it removes the change that introduced the fault.",
            "error rate, latency and saturation of the service back to the pre-deploy baseline"
            " within a few windows after the rollout",
        ),
        ActionSpec(
            "raise_memory_limit",
            _fixed("resources.memory_limit_mib"),
            _memory_target,
            _describe("Raise the memory limit of"),
            "The service is saturating its memory limit (OOM kills / restarts); more headroom"
            " stops the kills while the leak or the load is investigated.",
            "restarts stop and memory utilization drops below the alert threshold",
        ),
        ActionSpec(
            "scale_replicas",
            _fixed("replicas"),
            _replicas_target,
            _describe("Scale"),
            "The service is saturated by load; more replicas spread it.",
            "latency and queue depth back to baseline, utilization per replica lower",
        ),
        ActionSpec(
            "revert_commit",
            _revert_keys,
            _revert_target,
            _describe("Revert config commit on"),
            "A recent configuration commit coincides with the onset; restoring the values it"
            " replaced removes the change.",
            "the affected signals back to their values before the commit",
        ),
        ActionSpec(
            "set_feature_flag",
            _flag_keys,
            _flag_target,
            _describe("Set feature flag on"),
            "The fault follows a feature flag's evaluations; switching it restores the old path.",
            "errors and conversion of the flagged path back to baseline",
        ),
        ActionSpec(
            "raise_timeout",
            _fixed("timeouts.downstream_ms"),
            _timeout_target,
            _describe("Raise the downstream timeout of"),
            "Calls are cut by a timeout shorter than the dependency's current latency.",
            "timeout errors stop; end-to-end latency stays within the SLO",
        ),
        ActionSpec(
            "enable_circuit_breaker",
            _fixed("circuit_breaker"),
            _breaker_target,
            _describe("Circuit breaker on"),
            "A failing dependency is exhausting the caller; a breaker fails fast and sheds load.",
            "caller latency and error rate back to baseline; the dependency recovers",
        ),
        ActionSpec(
            "restart",
            _fixed("rollout.restarted_at"),
            _restart_target,
            _describe("Restart"),
            "The service is in a bad runtime state (leak, stuck pool) that a fresh start clears.",
            "saturation and errors back to baseline shortly after the restart",
        ),
    )
}
if set(SPECS) != set(ACTIONS):
    _message = f"playbook specs {sorted(SPECS)} differ from sre_space.actions {sorted(ACTIONS)}"
    raise RuntimeError(_message)


def guard(old: Mapping[str, Any], new: Mapping[str, Any], allowed: Iterable[str]) -> list[str]:
    """Keys changed between two manifests that the action may not touch (empty when all allowed)."""
    allowed_set = set(allowed)
    return [k for k in mf.changed_keys(old, new) if k not in allowed_set]


class Playbook:
    """Plans bounded changes from requests; never raises for a bad request."""

    def __init__(self, bounds: Bounds | None = None) -> None:
        self.bounds = bounds or Bounds()

    @staticmethod
    def names() -> list[str]:
        """The actions the playbook knows."""
        return sorted(SPECS)

    def plan(
        self, request: ActionRequest, source: ManifestSource, now: int | None = None
    ) -> PlanResult:
        """A bounded change for the request against main, or a refusal with the reason."""
        spec = SPECS.get(request.action)
        if spec is None:
            return PlanResult(
                request,
                reason=f"unknown action {request.action!r}; the playbook has {', '.join(SPECS)}",
            )
        ctx = PlanContext(source=source, now=now, bounds=self.bounds)
        try:
            if "service" in request.params:
                raise Refused(f"{spec.name} has no parameter 'service'; the request names it")
            params = self._params(spec, {**request.params, "service": request.service})
            service = params["service"]
            if "sha" in params:
                committed, _old, _new = _commit_diff(params, ctx)
                if mf.service_of_path(committed) != service:
                    raise Refused(f"commit {params['sha']} changed {committed}, not {service}")
            path = mf.manifest_path(service)
            old_text = source.read(path)
            if old_text is None:
                raise Refused(f"no manifest {path} on main for service {service!r}")
            doc = mf.parse(old_text)
            target = spec.target(params, doc, ctx)
            allowed = spec.keys(params, doc, ctx)
            before = {k: mf.get_path(doc, k) for k in target}
            if all(before[k] == v for k, v in target.items()):
                raise Refused(f"{service} already has {target}; nothing to change")
            new_text = mf.edit(old_text, target)
            violations = guard(doc, mf.parse(new_text), allowed)
            if violations:
                raise Refused(f"{spec.name} may not touch {', '.join(violations)}")
        except (Refused, mf.ManifestError) as exc:
            return PlanResult(request, reason=str(exc))
        after = dict(target)
        undo_parts = ", ".join(f"{k} back to {before[k]!r}" for k in sorted(after))
        change = Change(
            action=spec.name,
            service=service,
            params=params,
            path=path,
            old_text=old_text,
            new_text=new_text,
            before=before,
            after=after,
            allowed_keys=tuple(allowed),
            summary=spec.summary(service, before, after),
            rationale=spec.rationale,
            expected_recovery=spec.expected_recovery,
            undo=f"revert the merge commit (sets {undo_parts})",
        )
        return PlanResult(request, change=change)

    @staticmethod
    def _params(spec: ActionSpec, raw: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise Refused(f"parameters must be a mapping, got {type(raw).__name__}")
        unknown = sorted(set(raw) - set(spec.params))
        if unknown:
            raise Refused(
                f"{spec.name} has no parameter {', '.join(map(repr, unknown))};"
                f" it takes {', '.join(spec.params)}"
            )
        out: dict[str, Any] = {}
        for name, param in spec.params.items():
            if raw.get(name) is None:
                if param.required:
                    raise Refused(f"{spec.name} needs parameter {name!r}")
                continue
            out[name] = _COERCE[param.kind](name, raw[name])
        if "sha" in out and not re.fullmatch(r"[0-9a-f]{7,40}", out["sha"]):
            raise Refused(f"sha {out['sha']!r} is not a commit id")
        return out

    @staticmethod
    def inverse(change: Change, current_text: str) -> Change | None:
        """The change that sets the change's keys back on the service's current document, where
        they still hold its values; None when a later change already replaced every value."""
        doc = mf.parse(current_text)
        back = {k: change.before[k] for k, v in change.after.items() if mf.get_path(doc, k) == v}
        if not back:
            return None
        parts = ", ".join(f"{k} back to {v!r}" for k, v in sorted(back.items()))
        return replace(
            change,
            path=mf.manifest_path(change.service),
            old_text=current_text,
            new_text=mf.edit(current_text, back),
            before={k: change.after[k] for k in back},
            after=back,
            allowed_keys=tuple(sorted(back)),
            summary=f"Revert {change.summary} ({parts})",
            undo="re-apply the reverted change",
        )
