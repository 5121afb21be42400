"""What one service's stored signals say it runs: versions, flags, instances and replica counts.

The responders read the running state back from Scout's signals in the store (the one copy of
the telemetry they have), so that a deploy by Argo CD or Flux is confirmed by what the system
reports rather than by the controller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sinks.store.sqlite import Store
from sre_space.timeutil import ns_to_rfc3339, rfc3339_to_ns

# Resource attributes that name one instance (pod) in a metric series, most specific first; the
# decoder keeps the first present one in the series' attributes.
INSTANCE_ATTRIBUTES = ("k8s.pod.name", "service.instance.id", "host.name")
# Replica counts of the k8s cluster receiver (semantic conventions), deployment before replicaset.
AVAILABLE_METRICS = ("k8s.deployment.available", "k8s.replicaset.available")
DESIRED_METRICS = ("k8s.deployment.desired", "k8s.replicaset.desired")


@dataclass(frozen=True, slots=True)
class ServiceState:
    """One service's signals over a time range: what they show running."""

    # span counts per `service.version` in the newest window that had spans of the service
    versions: dict[str, int] = field(default_factory=dict)
    # per feature flag, the variants its evaluations returned in the newest window that has it
    flags: dict[str, frozenset[str]] = field(default_factory=dict)
    # instances (pods) that reported a metric in the range
    instances: frozenset[str] = frozenset()
    # the newest value of each replica-count metric present (`k8s.deployment.available`, ...)
    replicas: dict[str, float] = field(default_factory=dict)
    windows: int = 0  # signal windows of the service read


def _instances(row: Mapping[str, Any]) -> Iterable[str]:
    attrs = row.get("attributes") or {}
    for key in INSTANCE_ATTRIBUTES:
        if attrs.get(key):
            yield str(attrs[key])
            break
    yield from (str(name) for name in (row.get("instances") or {}))


def service_state(store: Store, service: str, since_ns: int, until_ns: int) -> ServiceState:
    """The service's signals with a window starting in [since_ns, until_ns)."""
    rows = [
        r
        for r in store.query(
            "signals", since=ns_to_rfc3339(since_ns), until=ns_to_rfc3339(until_ns)
        )
        if r.get("service") == service
    ]
    versions: dict[int, dict[str, int]] = {}  # window end -> span count per version
    flags: dict[str, tuple[int, set[str]]] = {}  # flag -> (newest window end, its variants)
    instances: set[str] = set()
    replicas: dict[str, tuple[int, float]] = {}
    ends: set[int] = set()
    for row in rows:
        end = rfc3339_to_ns(str(row["window_end"]))
        ends.add(end)
        if row.get("kind") == "span":
            counts = versions.setdefault(end, {})
            for version, n in (row.get("versions") or {}).items():
                counts[str(version)] = counts.get(str(version), 0) + int(n)
            for flag, variant in (row.get("flags") or {}).items():
                seen = flags.get(flag)
                if seen is None or end > seen[0]:
                    flags[flag] = (end, {str(variant)})
                elif end == seen[0]:
                    seen[1].add(str(variant))
        elif row.get("kind") == "metric":
            instances.update(_instances(row))
            metric, value = str(row.get("metric") or ""), row.get("value")
            counted = metric in AVAILABLE_METRICS + DESIRED_METRICS
            if counted and value is not None and end >= replicas.get(metric, (0, 0.0))[0]:
                replicas[metric] = (end, float(value))
    newest = max((end for end, counts in versions.items() if counts), default=None)
    return ServiceState(
        versions=versions[newest] if newest is not None else {},
        flags={flag: frozenset(variants) for flag, (_, variants) in flags.items()},
        instances=frozenset(instances),
        replicas={m: v for m, (_, v) in replicas.items()},
        windows=len(ends),
    )


def metric_levels(
    store: Store, services: Iterable[str], metrics: Iterable[str], since_ns: int, until_ns: int
) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """(service, metric) -> [(window end, worst value over the metric's series)], oldest first."""
    wanted, names = set(services), set(metrics)
    worst: dict[tuple[str, str], dict[int, float]] = {}
    for row in store.query("signals", since=ns_to_rfc3339(since_ns), until=ns_to_rfc3339(until_ns)):
        service, metric, value = row.get("service"), row.get("metric"), row.get("value")
        if row.get("kind") != "metric" or service not in wanted or metric not in names:
            continue
        if value is None:
            continue
        end = rfc3339_to_ns(str(row["window_end"]))
        series = worst.setdefault((str(service), str(metric)), {})
        series[end] = max(series.get(end, float("-inf")), float(value))
    return {key: sorted(points.items()) for key, points in worst.items()}


def span_kind(store: Store, service: str, operation: str) -> str:
    """The span kind of the newest signal of (service, operation), "" when none is stored."""
    rows = store.query("signals", key=f"span|{service}|{operation}", limit=1, newest_first=True)
    return str(rows[0].get("span_kind") or "") if rows else ""
