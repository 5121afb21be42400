"""Instances that stopped reporting: a replaced pod's metric series end, and their anomalies too.

A rollout gives a Kubernetes Deployment new pods; the old pods' series (one per `k8s.pod.name`,
`service.instance.id` or `host.name`) stop, so no later window of theirs can clear an anomaly they
hold. An instance that has sent no metric point for `gone_after`, and for three of its own report
intervals (an exporter that reports every minute is not gone after one quiet minute), is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from operators.otlp.metrics import INSTANCE_KEYS
from sre_space.records import SignalWindow
from sre_space.timeutil import NS_PER_S

MISSED_REPORTS = 3

Instance = tuple[str, str]  # (service, instance)


def instance_of(sig: SignalWindow) -> Instance | None:
    """The instance a metric series belongs to; None for a service-wide signal."""
    attrs = sig.attributes or {}
    name = next((attrs[k] for k in INSTANCE_KEYS if attrs.get(k)), None)
    return (sig.service or "", str(name)) if name is not None else None


@dataclass(slots=True)
class _Seen:
    last_ns: int
    interval_ns: int | None = None  # the shortest gap between two of its reports so far
    keys: set[str] = field(default_factory=set)


class InstanceWatch:
    """When each instance last reported, and which series keys it owns."""

    def __init__(self, gone_after_s: float) -> None:
        self.gone_after_ns = round(gone_after_s * NS_PER_S)
        self.seen: dict[Instance, _Seen] = {}

    def report(self, instance: Instance, key: str, at_ns: int) -> None:
        """Series `key` of `instance` has a window ending at `at_ns`."""
        seen = self.seen.get(instance)
        if seen is None:
            seen = self.seen[instance] = _Seen(at_ns)
        elif at_ns > seen.last_ns:
            gap = at_ns - seen.last_ns
            seen.interval_ns = gap if seen.interval_ns is None else min(seen.interval_ns, gap)
            seen.last_ns = at_ns
        seen.keys.add(key)

    def gone(self, now_ns: int) -> list[str]:
        """Series keys of the instances gone by `now_ns` (each instance is told once)."""
        out: list[str] = []
        for instance in sorted(self.seen):
            seen = self.seen[instance]
            quiet = max(self.gone_after_ns, MISSED_REPORTS * (seen.interval_ns or 0))
            if now_ns - seen.last_ns > quiet:
                out.extend(sorted(seen.keys))
                del self.seen[instance]
        return out

    def snapshot(self) -> list[list[Any]]:
        """Plain picklable state."""
        return [
            [service, name, s.last_ns, s.interval_ns, sorted(s.keys)]
            for (service, name), s in sorted(self.seen.items())
        ]

    @classmethod
    def from_snapshot(cls, gone_after_s: float, data: list[list[Any]]) -> InstanceWatch:
        """Rebuild from `snapshot()`."""
        out = cls(gone_after_s)
        for service, name, last_ns, interval_ns, keys in data:
            out.seen[(str(service), str(name))] = _Seen(int(last_ns), interval_ns, set(keys))
        return out
