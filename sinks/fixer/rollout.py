"""Whether a merged change runs, judged from telemetry: for Argo CD / Flux, which apply `main`.

What a merge should make the telemetry show (`Rollout`, from the change's new values):
- a version change: the service's newest spans carry the merged version only: the resource's
  `service.version`, or where it sets none, its container image's tag (`container.image.tags`,
  the tag in `container.image.name`; see `operators.otlp.values.resource_version`);
- a feature flag change: the flag's evaluations in the service's newest spans (OpenTelemetry
  `feature_flag` events) return a variant other than the ones they returned before the merge
  (a flag not evaluated before the merge falls to the last rule);
- a replica change: `k8s.deployment.available` (else `k8s.replicaset.available`) equals the
  merged count (and `*.desired` when reported; the cluster receiver's resource names the
  Deployment, `k8s.deployment.name`, which is read as the service); without those metrics, the number of instances
  (`k8s.pod.name`, `service.instance.id`, `host.name`) reporting in the last `lookback`;
- any other change (a limit, an env var, a flag in the manifest): new instances that did not
  report in the `lookback` before the merge appear after it, i.e. the pods were rolled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from sinks.fixer.reconciler import ReconcileResult
from sinks.store.sqlite import Store
from sinks.store.telemetry import AVAILABLE_METRICS, DESIRED_METRICS, service_state
from sre_space.settings import FrozenModel
from sre_space.timeutil import NS_PER_S, parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
ReconcilerMode = Literal["auto", "gitops", "command", "shop"]
# Manifest paths whose second part names a feature flag: `feature_flags.<key>`, flagd's `flags.<key>`
FLAG_ROOTS = ("feature_flags", "flags")
# Manifest fields that carry the running version (the image tag is the version in Kubernetes).
VERSION_FIELDS = ("version", "image_tag", "image.tag", "tag")


class DeployConfig(FrozenModel):
    """The `deploy:` section: how a merged commit reaches the running system and is confirmed."""

    # auto: `command` when one is given, else gitops; gitops: Argo CD / Flux apply `main`, SRE-Space
    # only watches the telemetry; command: run `command` with the commit id; shop: the harness's
    # simulated shop reports the commit it runs
    reconciler: ReconcilerMode = "auto"
    command: tuple[str, ...] = ()
    # after a command's deploy, also wait until the telemetry shows the change (gitops always does)
    watch_after_command: bool = True
    # event time from the merge until the telemetry must show the change; then a person is called
    rollout_deadline: Duration = 600.0
    # how far back instances count as reporting (a metric export interval or two)
    lookback: Duration = 60.0


@dataclass(frozen=True, slots=True)
class Rollout:
    """What a merged change should make the telemetry show, from `merged_at` (ns) on."""

    service: str
    merged_at: int
    version: str | None = None
    replicas: int | None = None
    flags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form (kept in the responder's progress)."""
        return {
            "service": self.service,
            "merged_at": self.merged_at,
            "version": self.version,
            "replicas": self.replicas,
            "flags": list(self.flags),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rollout:
        """Inverse of `to_dict`."""
        replicas = data.get("replicas")
        return cls(
            service=str(data["service"]),
            merged_at=int(data["merged_at"]),
            version=str(data["version"]) if data.get("version") is not None else None,
            replicas=int(replicas) if replicas is not None else None,
            flags=tuple(str(f) for f in data.get("flags") or ()),
        )


def rollout_of(change: Mapping[str, Any], merged_at: int) -> Rollout:
    """The rollout a planned change (`Change.to_dict()`) expects: its service and new values."""
    after = change.get("after") or {}
    version = next((str(after[k]) for k in VERSION_FIELDS if after.get(k) is not None), None)
    replicas = after.get("replicas")
    count = int(replicas) if isinstance(replicas, int) and not isinstance(replicas, bool) else None
    flags = sorted(
        {p[1] for p in (str(k).split(".") for k in after) if len(p) > 1 and p[0] in FLAG_ROOTS}
    )
    return Rollout(str(change.get("service", "")), merged_at, version, count, tuple(flags))


@dataclass(frozen=True, slots=True)
class RolloutCheck:
    """Whether the telemetry shows the rollout, and what it showed."""

    running: bool
    detail: str


class TelemetryWatch:
    """Judges a `Rollout` on the store's signals at event time `now`."""

    def __init__(self, store: Store, *, lookback_s: float = 60.0) -> None:
        self.store = store
        self.lookback_ns = round(lookback_s * NS_PER_S)

    def check(self, rollout: Rollout, now: int) -> RolloutCheck:
        """Running when the signals since the merge show the merged state (module docstring)."""
        start = max(rollout.merged_at, now - self.lookback_ns)
        after = service_state(self.store, rollout.service, start, now + 1)
        if after.windows == 0:
            return RolloutCheck(False, f"no signals of {rollout.service} since the merge yet")
        if rollout.version is not None:
            return _version(rollout, after.versions)
        if rollout.replicas is not None:
            return _replicas(rollout.replicas, after.replicas, len(after.instances))
        before = service_state(
            self.store, rollout.service, rollout.merged_at - self.lookback_ns, rollout.merged_at
        )
        if rollout.flags and all(f in before.flags for f in rollout.flags):
            return _flags(rollout.flags, before.flags, after.flags)
        new = sorted(after.instances - before.instances)
        if new:
            return RolloutCheck(True, f"new instances since the merge: {', '.join(new[:5])}")
        return RolloutCheck(
            False, f"the same {len(after.instances)} instance(s) as before the merge report"
        )


def _version(rollout: Rollout, versions: Mapping[str, int]) -> RolloutCheck:
    shown = ", ".join(f"{v} ({n} spans)" for v, n in sorted(versions.items())) or "no version"
    if versions and set(versions) == {rollout.version}:
        return RolloutCheck(True, f"spans of {rollout.service} carry version {rollout.version}")
    return RolloutCheck(False, f"newest spans of {rollout.service} carry {shown}")


def _flags(
    keys: tuple[str, ...],
    before: Mapping[str, frozenset[str]],
    after: Mapping[str, frozenset[str]],
) -> RolloutCheck:
    told = []
    for key in keys:
        now = after.get(key, frozenset())
        told.append(f"{key}: {'/'.join(sorted(now)) or 'not evaluated'}")
        if not now or now & before[key]:
            was = "/".join(sorted(before[key]))
            return RolloutCheck(False, f"{', '.join(told)} since the merge (before: {was})")
    return RolloutCheck(True, f"flag evaluations changed: {', '.join(told)}")


def _replicas(want: int, metrics: Mapping[str, float], instances: int) -> RolloutCheck:
    available = next((m for m in AVAILABLE_METRICS if m in metrics), None)
    if available is not None:
        desired = next((m for m in DESIRED_METRICS if m in metrics), None)
        have = metrics[available]
        ok = have == want and (desired is None or metrics[desired] == want)
        told = f"{available}={have:g}" + (f", {desired}={metrics[desired]:g}" if desired else "")
        return RolloutCheck(ok, f"{told} (merged {want})")
    return RolloutCheck(instances == want, f"{instances} instance(s) report (merged {want})")


class GitOpsReconciler:
    """Argo CD or Flux applies `main` by itself: nothing to run; the telemetry confirms."""

    def apply(self, commit_sha: str) -> ReconcileResult:
        """Deploys nothing; the rollout is judged by `TelemetryWatch`."""
        return ReconcileResult(
            True, f"{commit_sha[:12]} is on main; the GitOps controller applies it"
        )
