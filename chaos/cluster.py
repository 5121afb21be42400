"""Pods and their resources: memory, CPU, restarts, connection pools; reconciled from desired state.

Each tick the cluster turns last tick's load into saturation (CPU utilization and queueing delay,
memory with leaks and OOM kills, pool usage) and decides which pods are ready. The request simulator
reads `ready`, `latency_factor`, `pool_fail` and adds load back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from chaos.catalog import Behaviour
from chaos.manifests import Desired
from chaos.rand import Rand
from chaos.topology import BACKENDS, ENVIRONMENT, NAMESPACE, PROFILES, ServiceProfile
from sre_space.timeutil import NS_PER_S as NS

RESTART_DOWN_S = 20.0  # an OOM-killed container is back after this long
CRASH_UP_S = 8.0  # a crash-looping container lives this long before it fails its probe
MAX_BACKOFF_S = 300.0
MAX_BACKLOG_MS = 600.0  # a full request queue: past it the pod sheds load (fails fast with 503)
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated names


def _k8s_suffix(text: str, n: int) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:n])


@dataclass(eq=False)
class Pod:
    """One running instance of a service (one container)."""

    service: str
    version: str
    name: str
    resource: tuple[tuple[str, str], ...]
    jitter: float  # per-pod spread of leak rate and base memory
    started_ns: int
    created_ns: int = 0
    ready: bool = True
    down_until_ns: int = 0
    leaked_mib: float = 0.0
    restarts: int = 0
    last_reason: str = ""
    crash_backoff_s: float = 0.0
    # load accounting (this tick) and derived saturation (from the previous ticks)
    requests: int = 0
    work_ms: float = 0.0
    rps: float = 0.0
    rho: float = 0.0
    backlog_ms: float = 0.0
    latency_factor: float = 1.0
    memory_mib: float = 0.0
    pool_used: float = 0.0
    pool_fail: float = 0.0
    throttled: float = 0.0
    shed: float = 0.0  # share of requests refused because the request queue is full
    # cumulative business counters
    checkouts: int = 0
    orders: int = 0
    cache_hits: int = 0  # a cache's key lookups, as its redis receiver counts them
    cache_misses: int = 0
    queue_lag: float = 0.0


def resource_attributes(service: str, version: str, pod_name: str) -> tuple[tuple[str, str], ...]:
    """Resource attributes of a pod (semantic conventions)."""
    attrs = [
        ("service.name", service),
        ("service.namespace", NAMESPACE),
        ("service.version", version),
        ("service.instance.id", pod_name),
        ("deployment.environment", ENVIRONMENT),
        ("deployment.environment.name", ENVIRONMENT),
        ("k8s.namespace.name", NAMESPACE),
        ("k8s.deployment.name", service),
        ("k8s.pod.name", pod_name),
        ("k8s.container.name", service),
        ("telemetry.sdk.name", "opentelemetry"),
    ]
    if service in BACKENDS:
        attrs.append(("db.system", BACKENDS[service]))
    return tuple(attrs)


class Cluster:
    """All pods of the shop, reconciled from desired state."""

    def __init__(self, rand: Rand, seed: int) -> None:
        self.rand = rand
        self.seed = seed
        self.pods: dict[str, list[Pod]] = {}
        self.ready: dict[str, list[Pod]] = {}
        self._spec: dict[str, str] = {}  # service -> the pod template's hash

    def sync(self, desired: dict[str, Desired], now_ns: int) -> None:
        """Create, replace or remove pods so that each service matches its manifest."""
        for name, d in desired.items():
            pods = self.pods.setdefault(name, [])
            spec = d.pod_template()
            if self._spec.get(name) != spec:
                pods.clear()  # a rollout: new ReplicaSet, new pod names, fresh containers
                self._spec[name] = spec
            rs = _k8s_suffix(f"{self.seed}/{name}/{spec}", 10)
            while len(pods) < d.replicas:
                idx = len(pods)
                pod_name = f"{name}-{rs}-{_k8s_suffix(f'{rs}/{idx}', 5)}"
                pods.append(
                    Pod(
                        service=name,
                        version=d.version,
                        name=pod_name,
                        resource=resource_attributes(name, d.version, pod_name),
                        jitter=0.85 + 0.3 * self.rand.uniform(),
                        started_ns=now_ns,
                        created_ns=now_ns,
                    )
                )
            del pods[d.replicas :]
        self.refresh_ready()

    def refresh_ready(self) -> None:
        """Recompute the ready pods per service."""
        self.ready = {s: [p for p in pods if p.ready] for s, pods in self.pods.items()}

    def tick(
        self, now_ns: int, dt_s: float, desired: dict[str, Desired], beh: dict[str, Behaviour]
    ) -> None:
        """Advance resources by one tick using the load recorded since the last tick."""
        changed = False
        for service, pods in self.pods.items():
            d = desired[service]
            b = beh[service]
            prof = PROFILES[service]
            for pod in pods:
                changed |= self._tick_pod(pod, d, b, prof, now_ns, dt_s)
        if changed:
            self.refresh_ready()

    def _tick_pod(
        self, pod: Pod, d: Desired, b: Behaviour, prof: ServiceProfile, now_ns: int, dt_s: float
    ) -> bool:
        was_ready = pod.ready
        rps = pod.requests / dt_s
        pod.rps = 0.7 * pod.rps + 0.3 * rps
        # CPU: work per second over the limit (1000 millicores = 1000 ms of CPU per second)
        demand = pod.work_ms / dt_s / d.cpu_limit_millicores
        pod.rho = 0.6 * pod.rho + 0.4 * demand
        pod.throttled = max(0.0, 1.0 - 1.0 / pod.rho) if pod.rho > 1.0 else 0.0
        # past full utilization the run queue grows; below it, it drains
        pod.backlog_ms = min(
            MAX_BACKLOG_MS, max(0.0, pod.backlog_ms + (pod.rho - 1.0) * 1000.0 * dt_s)
        )
        pod.shed = pod.throttled if pod.backlog_ms >= MAX_BACKLOG_MS else 0.0
        r = min(pod.rho, 0.9)
        factor = 1.0 + r / (1.0 - r) * 0.5
        pod.requests = 0
        pod.work_ms = 0.0
        # memory: base + working set + leak; the kernel kills the container at the limit
        if pod.ready:
            pod.leaked_mib += b.leak_mib_per_s * pod.jitter * dt_s
        working = prof.base_memory_mib * pod.jitter + prof.memory_per_rps_mib * pod.rps
        pod.memory_mib = working + pod.leaked_mib + 2.0 * self.rand.normal()
        pressure = pod.memory_mib / d.memory_limit_mib
        if pressure > 0.85:
            factor *= 1.0 + 8.0 * (pressure - 0.85)  # garbage collection thrashes near the limit
        pod.latency_factor = factor
        # connection pool: held connections plus Little's law for requests in flight
        if prof.db_hold_ms:
            want = prof.db_conns_held + pod.rps * prof.db_hold_ms / 1000.0 * factor
            pod.pool_used = min(float(d.pool_max), want)
            pod.pool_fail = max(0.0, 1.0 - d.pool_max / want) if want > d.pool_max else 0.0
        if pod.ready and pod.memory_mib >= d.memory_limit_mib:
            self._kill(pod, now_ns, "OOMKilled", RESTART_DOWN_S)
        elif pod.ready and b.crashloop and now_ns - pod.started_ns >= CRASH_UP_S * NS:
            pod.crash_backoff_s = min(MAX_BACKOFF_S, max(10.0, pod.crash_backoff_s * 2))
            self._kill(pod, now_ns, b.crashloop, pod.crash_backoff_s)
        elif not pod.ready and (
            now_ns >= pod.down_until_ns
            or (pod.last_reason == "CrashLoopBackOff" and not b.crashloop)
        ):
            # back up when the back-off ends, or at once when the config that crashed it is gone
            pod.ready = True
            pod.started_ns = now_ns
            if not b.crashloop:
                pod.crash_backoff_s = 0.0
            pod.backlog_ms = 0.0
        return was_ready != pod.ready

    def _kill(self, pod: Pod, now_ns: int, reason: str, down_s: float) -> None:
        pod.ready = False
        pod.restarts += 1
        pod.last_reason = reason
        pod.down_until_ns = now_ns + int(down_s * NS)
        pod.leaked_mib = 0.0
        pod.memory_mib = 0.0
        pod.cache_hits = pod.cache_misses = 0  # a restarted redis counts from zero
        pod.rps = 0.0
        pod.rho = 0.0
        pod.backlog_ms = 0.0
        pod.shed = 0.0
