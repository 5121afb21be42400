"""Fault scenarios: data plus a small injector each, one module per scenario.

A module defines `SCENARIO = Scenario(...)`; adding a scenario is adding a file. An injector changes
the shop the way the fault would happen for real: a bad deploy or a config change is a real commit to
the GitOps repository (so the Fixer can roll it back and the Brain can find it), a runtime fault is a
defect in the shop's catalog. It returns an `Injection`: the ground truth and how to undo it.
`deploy_defect`, `commit_config` and `runtime_fault` build the three families' injections.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from chaos.catalog import Defect, RuntimeFault

if TYPE_CHECKING:
    from chaos.shop import Shop


@dataclass
class Restore:
    """A manifest field the injection changed: put back `previous` if it still holds `injected`."""

    service: str
    path: tuple[str, ...]
    injected: Any
    previous: Any


@dataclass
class Injection:
    """Ground truth of one injected fault, and how to end it."""

    scenario: str
    tag: str
    fault_class: str
    service: str
    onset_ns: int
    intensity: float
    operation: str | None = None
    version: str | None = None
    previous_version: str | None = None
    commit: str | None = None
    flag: str | None = None
    segment: str | None = None
    remediation: dict[str, Any] = field(default_factory=dict)
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    diagnosis: str = ""
    restores: list[Restore] = field(default_factory=list)

    def undo(self, shop: Shop) -> None:
        """Put back every manifest field this injection changed, unless someone changed it since."""
        for r in self.restores:
            current = _get(shop.repo.read_docs()[r.service], r.path)
            if current != r.injected:
                continue  # already fixed (or changed again) by someone else: leave it
            shop.commit(
                r.service, _setter(r.path, r.previous), f"chaos: end {self.scenario} on {r.service}"
            )

    def culprit(self) -> dict[str, Any]:
        """The culprit as label data."""
        return {
            "service": self.service,
            "operation": self.operation,
            "version": self.version,
            "commit": self.commit,
            "flag": self.flag,
            "segment": self.segment,
        }

    def as_dict(self) -> dict[str, Any]:
        """Everything, as plain data."""
        return asdict(self)


Injector = Callable[["Shop", str, float], Injection]


@dataclass(frozen=True)
class Scenario:
    """A named fault: its class, default target, what a good diagnosis names, and its injector."""

    name: str
    fault_class: str
    default_service: str
    summary: str
    diagnosis: str
    injector: Injector

    def inject(self, shop: Shop, service: str | None = None, intensity: float = 1.0) -> Injection:
        """Inject into `shop` now."""
        if intensity <= 0:
            raise ValueError(f"intensity must be > 0 (got {intensity}); 1.0 is the standard fault")
        target = service or self.default_service
        if target not in shop.desired:
            raise ValueError(f"unknown service {target!r}; the shop has {sorted(shop.desired)}")
        injection = self.injector(shop, target, intensity)
        injection.diagnosis = injection.diagnosis or self.diagnosis
        return injection


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _setter(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: _set(doc, path, value)


def change_manifest(
    shop: Shop, service: str, path: tuple[str, ...], value: Any, message: str
) -> tuple[str, Restore]:
    """Commit one manifest field change; the commit id and how to restore it."""
    previous = _get(shop.repo.read_docs()[service], path)
    sha = shop.commit(service, lambda doc: _set(doc, path, value), message)
    return sha, Restore(service, path, value, previous)


def bump_version(version: str, part: int = 2) -> str:
    """The next version: part 0 major, 1 minor, 2 patch."""
    nums = [int(x) for x in version.split("-")[0].split("+")[0].split(".")]
    nums[part] += 1
    for i in range(part + 1, 3):
        nums[i] = 0
    return ".".join(str(n) for n in nums)


def deploy_defect(
    shop: Shop,
    scenario: str,
    fault_class: str,
    service: str,
    defect: Defect,
    intensity: float,
    *,
    operation: str | None = None,
    part: int = 2,
    alternatives: list[dict[str, Any]] | None = None,
) -> Injection:
    """Deploy a new version of `service` carrying `defect` (a real commit): the bad-deploy family.

    Rolling back to the previous version heals it; reverting the deploy commit is always an
    alternative, after any scenario-specific ones in `alternatives`.
    """
    previous = shop.desired[service].version
    version = bump_version(previous, part=part)
    shop.catalog.add_version(service, version, defect)
    sha, restore = change_manifest(
        shop, service, ("version",), version, f"deploy {service} {version}"
    )
    return _injection(
        shop,
        scenario,
        fault_class,
        service,
        intensity,
        operation=operation,
        version=version,
        previous_version=previous,
        commit=sha,
        remediation={
            "action": "rollback_version",
            "params": {"service": service, "version": previous},
        },
        alternatives=[
            *(alternatives or []),
            {"action": "revert_commit", "params": {"commit": sha}},
        ],
        restores=[restore],
    )


def commit_config(
    shop: Shop,
    scenario: str,
    fault_class: str,
    service: str,
    change: tuple[tuple[str, ...], Any, str],
    intensity: float,
    *,
    tag: str | None = None,
    remediation: dict[str, Any] | None = None,
    **labels: Any,
) -> Injection:
    """Commit one manifest field of `service` (a real commit): the bad-config family.

    `change` is (path, value, commit message). Reverting the commit heals it, unless `remediation`
    says what does; reverting is then the alternative. `labels`: more Injection fields.
    """
    path, value, message = change
    sha, restore = change_manifest(shop, service, path, value, message)
    alternatives: list[dict[str, Any]] = []
    if remediation is None:
        remediation = {"action": "revert_commit", "params": {"commit": sha, "service": service}}
    else:
        alternatives = [{"action": "revert_commit", "params": {"commit": sha}}]
    return _injection(
        shop,
        scenario,
        fault_class,
        service,
        intensity,
        tag=tag,
        commit=sha,
        remediation=remediation,
        alternatives=alternatives,
        restores=[restore],
        **labels,
    )


def runtime_fault(
    shop: Shop,
    scenario: str,
    fault_class: str,
    service: str,
    defect: Defect,
    intensity: float,
    remediation: dict[str, Any],
    *,
    healed_by_restart: bool = True,
    **labels: Any,
) -> Injection:
    """Add `defect` to the shop's catalog at run time (no commit); a rollout of `service` (a
    restart, or any pod template change) heals it when `healed_by_restart`. `labels`: more
    Injection fields."""
    tag = new_tag(shop, scenario)
    template = shop.desired[service].pod_template()
    shop.catalog.add_runtime(
        RuntimeFault(defect, template, healed_by_restart=healed_by_restart, tag=tag)
    )
    return _injection(
        shop, scenario, fault_class, service, intensity, tag=tag, remediation=remediation, **labels
    )


def scale_out(service: str, replicas: int, needed: int) -> dict[str, Any]:
    """The remediation that scales `service` from `replicas` to `needed` (one more at least, 20 at
    most)."""
    return {
        "action": "scale_replicas",
        "params": {"service": service, "replicas": min(20, max(replicas + 1, needed))},
    }


def _injection(
    shop: Shop,
    scenario: str,
    fault_class: str,
    service: str,
    intensity: float,
    *,
    tag: str | None = None,
    **labels: Any,
) -> Injection:
    return Injection(
        scenario=scenario,
        tag=tag or new_tag(shop, scenario),
        fault_class=fault_class,
        service=service,
        onset_ns=shop.now_ns,
        intensity=intensity,
        **labels,
    )


def new_tag(shop: Shop, scenario: str) -> str:
    """A unique tag for an injection."""
    return f"{scenario}-{len(shop.injections) + 1}-{shop.now_ns // 1_000_000_000}"


@cache
def registry() -> dict[str, Scenario]:
    """Every scenario module's SCENARIO, by name."""
    found: dict[str, Scenario] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        scenario = getattr(module, "SCENARIO", None)
        if isinstance(scenario, Scenario):
            found[scenario.name] = scenario
    return found


def get(name: str) -> Scenario:
    """The scenario called `name`; the error lists the known ones."""
    scenarios = registry()
    if name not in scenarios:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(sorted(scenarios))}")
    return scenarios[name]
