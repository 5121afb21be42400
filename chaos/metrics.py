"""Metric points per pod: the definitions (names, units, types) and one snapshot of the cluster."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaos.cluster import Cluster, Pod
from chaos.manifests import Desired
from chaos.topology import PROFILES, QUEUE

MIB = 1024 * 1024


@dataclass(frozen=True)
class MetricDef:
    """One metric's shape: OTLP type, unit, monotonicity and value type."""

    name: str
    description: str
    unit: str
    kind: str  # "gauge" or "sum"
    monotonic: bool = False
    is_int: bool = False


DEFS: dict[str, MetricDef] = {
    d.name: d
    for d in (
        MetricDef(
            "container.memory.usage",
            "Memory in use by the container (working set)",
            "By",
            "gauge",
            is_int=True,
        ),
        MetricDef(
            "k8s.container.memory_limit",
            "Memory limit of the container",
            "By",
            "gauge",
            is_int=True,
        ),
        MetricDef(
            "container.cpu.utilization",
            "CPU used as a share of the container's CPU limit",
            "1",
            "gauge",
        ),
        MetricDef(
            "container.cpu.throttling",
            "Share of the CPU the container asked for that CFS throttled",
            "1",
            "gauge",
        ),
        MetricDef(
            "k8s.container.restarts",
            "Container restarts since the pod started",
            "{restart}",
            "sum",
            monotonic=True,
            is_int=True,
        ),
        MetricDef(
            "db.client.connection.count",
            "Connections in the pool by state",
            "{connection}",
            "gauge",
            is_int=True,
        ),
        MetricDef(
            "db.client.connection.max",
            "Maximum connections the pool allows",
            "{connection}",
            "gauge",
            is_int=True,
        ),
        MetricDef(
            "messaging.queue.depth",
            "Messages waiting in the queue (this consumer's partitions)",
            "{message}",
            "gauge",
            is_int=True,
        ),
        MetricDef(
            "messaging.kafka.consumer.lag",
            "Consumer lag of this consumer's partitions",
            "{message}",
            "gauge",
            is_int=True,
        ),
        MetricDef(
            "redis.keyspace.hits",
            "Successful lookups of keys (the Collector's redis receiver)",
            "{hit}",
            "sum",
            monotonic=True,
            is_int=True,
        ),
        MetricDef(
            "redis.keyspace.misses",
            "Failed lookups of keys (the Collector's redis receiver)",
            "{miss}",
            "sum",
            monotonic=True,
            is_int=True,
        ),
        MetricDef(
            "app.checkouts.started",
            "Checkouts started",
            "{checkout}",
            "sum",
            monotonic=True,
            is_int=True,
        ),
        MetricDef(
            "app.orders.placed",
            "Orders placed (processed by the order consumer)",
            "{order}",
            "sum",
            monotonic=True,
            is_int=True,
        ),
    )
}

Point = tuple[str, Any, tuple[tuple[str, Any], ...]]  # (metric name, value, data point attributes)


@dataclass(frozen=True)
class PodPoints:
    """The data points of one pod at one instant."""

    pod: Pod
    start_ns: int  # start of the cumulative series (pod creation)
    points: tuple[Point, ...]


def snapshot(cluster: Cluster, desired: dict[str, Desired], queue_depth: int) -> list[PodPoints]:
    """Data points of every pod now (a stopped container reports restarts only)."""
    out: list[PodPoints] = []
    for service, pods in cluster.pods.items():
        d = desired[service]
        prof = PROFILES[service]
        n = max(1, len(pods))
        for pod in pods:
            pts: list[Point] = []
            if pod.ready:
                pts += [
                    ("container.memory.usage", int(max(0.0, pod.memory_mib) * MIB), ()),
                    ("k8s.container.memory_limit", d.memory_limit_mib * MIB, ()),
                    ("container.cpu.utilization", round(min(1.0, pod.rho), 4), ()),
                    ("container.cpu.throttling", round(pod.throttled, 4), ()),
                ]
            reason = (
                (("k8s.container.status.last_terminated_reason", pod.last_reason),)
                if pod.restarts
                else ()
            )
            pts.append(("k8s.container.restarts", pod.restarts, reason))
            if prof.db_hold_ms and pod.ready:
                pool = (("db.client.connection.pool.name", f"{service}-postgres"),)
                used = round(pod.pool_used)
                pts += [
                    (
                        "db.client.connection.count",
                        used,
                        (*pool, ("db.client.connection.state", "used")),
                    ),
                    (
                        "db.client.connection.count",
                        d.pool_max - used,
                        (*pool, ("db.client.connection.state", "idle")),
                    ),
                    ("db.client.connection.max", d.pool_max, pool),
                ]
            if service == "redis" and pod.ready:
                pts += [
                    ("redis.keyspace.hits", pod.cache_hits, ()),
                    ("redis.keyspace.misses", pod.cache_misses, ()),
                ]
            if service == "checkout":
                pts.append(("app.checkouts.started", pod.checkouts, ()))
            if service == QUEUE.consumer_service:
                # each consumer owns an equal share of the topic's partitions
                share = queue_depth // n + (1 if pods.index(pod) < queue_depth % n else 0)
                dest = (("messaging.destination.name", QUEUE.topic),)
                group = (*dest, ("messaging.consumer.group.name", QUEUE.consumer_service))
                pts += [
                    ("messaging.queue.depth", share, dest),
                    ("messaging.kafka.consumer.lag", share, group),
                    ("app.orders.placed", pod.orders, ()),
                ]
            out.append(PodPoints(pod, pod.created_ns, tuple(pts)))
    return out
