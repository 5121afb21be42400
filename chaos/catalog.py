"""Defects and where they live: the version catalog, flag catalog, config rules and runtime faults.

A defect is the shop's notion of "what is broken". Whether it is active is derived from desired state:
a version defect is active while the service runs that version, a flag defect while the flag is on, a
config rule while its predicate holds on the manifest, and a runtime fault until the service's pods
are rolled (or the fault is cleared). `behaviour()` folds the active defects into the numbers the
simulator reads on its hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaos.manifests import Desired
from chaos.topology import CACHE_HIT_RATIO

KINDS = {
    "leak",  # mib_per_s: memory leak per pod
    "errors",  # op, rate, exception, message: an endpoint throws
    "slow_db",  # query, factor: one database operation slows down
    "decline",  # segment, rate, reason: payments of one loyalty segment declined (HTTP 200)
    "hang",  # median_ms: the service stops answering in time
    "cache_miss",  # hit_ratio: the cache stops hitting
    "slow_consumer",  # factor: message processing slows down
    "crashloop",  # reason: pods fail their probes and restart with back-off
    "surge",  # route, extra_rps: a traffic surge on one frontend route
}


@dataclass(frozen=True)
class Defect:
    """One defect of a service; `params` depend on `kind` (see KINDS)."""

    service: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown defect kind {self.kind!r}; use one of {sorted(KINDS)}")


@dataclass
class Behaviour:
    """What a service does right now (derived from active defects; read on the hot path)."""

    leak_mib_per_s: float = 0.0
    route_errors: dict[str, tuple[float, str, str]] = field(default_factory=dict)
    slow_db: dict[str, float] = field(default_factory=dict)
    declines: dict[str, tuple[float, str]] = field(default_factory=dict)
    hang_ms: float = 0.0
    cache_hit_ratio: float = CACHE_HIT_RATIO
    consumer_factor: float = 1.0
    crashloop: str = ""
    surges: dict[str, float] = field(default_factory=dict)


@dataclass
class RuntimeFault:
    """A fault injected at run time; a rollout of its service (fresh containers) heals it when
    `healed_by_restart`."""

    defect: Defect
    pod_template: str  # the service's `Desired.pod_template()` when injected
    healed_by_restart: bool = True
    tag: str = ""


ConfigPredicate = Callable[[Desired], bool]


@dataclass
class Catalog:
    """Everything the shop knows about defects, keyed the way desired state selects them."""

    versions: dict[tuple[str, str], list[Defect]] = field(default_factory=dict)
    flags: dict[tuple[str, str], list[Defect]] = field(default_factory=dict)
    config_rules: list[tuple[str, ConfigPredicate, Defect, str]] = field(default_factory=list)
    runtime: list[RuntimeFault] = field(default_factory=list)

    def add_version(self, service: str, version: str, *defects: Defect) -> None:
        """Declare that `version` of `service` carries `defects`."""
        self.versions.setdefault((service, version), []).extend(defects)

    def add_flag(self, service: str, flag: str, *defects: Defect) -> None:
        """Declare that turning `flag` on in `service` activates `defects`."""
        self.flags.setdefault((service, flag), []).extend(defects)

    def add_config_rule(
        self, service: str, predicate: ConfigPredicate, defect: Defect, tag: str
    ) -> None:
        """Declare that `defect` is active while `predicate(desired)` holds."""
        self.config_rules.append((service, predicate, defect, tag))

    def add_runtime(self, fault: RuntimeFault) -> None:
        """Inject a runtime fault."""
        self.runtime.append(fault)

    def remove_tag(self, tag: str) -> None:
        """Forget every runtime fault and config rule injected under `tag`."""
        self.runtime = [f for f in self.runtime if f.tag != tag]
        self.config_rules = [r for r in self.config_rules if r[3] != tag]

    def active(self, desired: dict[str, Desired]) -> list[Defect]:
        """The defects active under `desired` (runtime faults healed by a rollout are dropped)."""
        out: list[Defect] = []
        for name, d in desired.items():
            out.extend(self.versions.get((name, d.version), ()))
            for flag, on in d.flags:
                if on:
                    out.extend(self.flags.get((name, flag), ()))
        for service, predicate, defect, _tag in self.config_rules:
            if service in desired and predicate(desired[service]):
                out.append(defect)
        keep = []
        for fault in self.runtime:
            now = desired.get(fault.defect.service)
            if (
                fault.healed_by_restart
                and now is not None
                and now.pod_template() != fault.pod_template
            ):
                continue  # rolled out since the injection: healed for good
            keep.append(fault)
            out.append(fault.defect)
        self.runtime = keep
        return out


def behaviour(services: list[str], defects: list[Defect]) -> dict[str, Behaviour]:
    """Fold active defects into one Behaviour per service."""
    out = {s: Behaviour() for s in services}
    for d in defects:
        b = out.setdefault(d.service, Behaviour())
        p = d.params
        if d.kind == "leak":
            b.leak_mib_per_s += float(p["mib_per_s"])
        elif d.kind == "errors":
            b.route_errors[p["op"]] = (float(p["rate"]), p["exception"], p["message"])
        elif d.kind == "slow_db":
            b.slow_db[p["query"]] = b.slow_db.get(p["query"], 1.0) * float(p["factor"])
        elif d.kind == "decline":
            b.declines[p["segment"]] = (float(p["rate"]), p.get("reason", "declined"))
        elif d.kind == "hang":
            b.hang_ms = max(b.hang_ms, float(p["median_ms"]))
        elif d.kind == "cache_miss":
            b.cache_hit_ratio = min(b.cache_hit_ratio, float(p["hit_ratio"]))
        elif d.kind == "slow_consumer":
            b.consumer_factor *= float(p["factor"])
        elif d.kind == "crashloop":
            b.crashloop = p.get("reason", "CrashLoopBackOff")
        elif d.kind == "surge":
            b.surges[p["route"]] = b.surges.get(p["route"], 0.0) + float(p["extra_rps"])
    return out
