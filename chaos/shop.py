"""The simulated shop: desired state from GitOps, a cluster of pods, traffic, and OTLP out.

    shop = Shop(seed=1, gitops_path="state/gitops")
    traces, metrics = shop.step(60)          # protobuf export requests for one simulated minute
    injection = shop.inject("oom", intensity=2)
    for batch in shop.advance(60): batch.json_line()   # or batch.proto()

Time is event time: it starts at `epoch_ns` and moves only when the shop is stepped, so a recording
runs as fast as the machine allows and the same seed and manifests give the same bytes.
"""

from __future__ import annotations

import heapq
import itertools
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chaos import otlp
from chaos.catalog import Behaviour, Catalog, behaviour
from chaos.cluster import Cluster
from chaos.gitops import GitOpsRepo
from chaos.manifests import Desired, default_docs
from chaos.metrics import PodPoints, snapshot
from chaos.rand import Rand
from chaos.requests import Simulator, Span
from chaos.topology import CART_TO_CHECKOUT, CHECKOUT_ROUTE, QUEUE, ROUTE_MIX, SERVICES
from chaos.traffic import UTC_OFFSET_H, Traffic
from sre_space.timeutil import NS_PER_S, rfc3339_to_ns

DEFAULT_EPOCH = "2026-01-05T00:00:00Z"
DEFAULT_EPOCH_NS = rfc3339_to_ns(DEFAULT_EPOCH)


@dataclass
class Batch:
    """One export request's worth of telemetry: the spans of a tick, or a metrics snapshot."""

    kind: str  # "spans" or "metrics"
    time_ns: int
    spans: list[Span] = field(default_factory=list)
    points: list[PodPoints] = field(default_factory=list)

    def proto(self) -> ExportTraceServiceRequest | ExportMetricsServiceRequest:
        """The protobuf export request."""
        if self.kind == "spans":
            return otlp.traces_proto(self.spans)
        return otlp.metrics_proto(self.points, self.time_ns)

    def proto_bytes(self) -> bytes:
        """The serialized export request (the Kafka record value for `otlp_proto`)."""
        if self.kind == "spans":
            return otlp.traces_bytes(self.spans)
        return self.proto().SerializeToString()

    def json_doc(self) -> dict[str, Any]:
        """The OTLP/JSON export request (hex ids) as data."""
        if self.kind == "spans":
            return otlp.traces_json(self.spans)
        return otlp.metrics_json(self.points, self.time_ns)

    def json_line(self) -> str:
        """The OTLP/JSON export request as one line (no newline)."""
        if self.kind == "spans":
            return otlp.traces_json_line(self.spans)
        return otlp.dumps(self.json_doc())


@dataclass
class ShopConfig:
    """Knobs of the shop (all in simulated time)."""

    rate_rps: float = 20.0  # mean frontend request rate
    tick_s: float = 1.0  # one trace export request per tick
    metric_interval_s: float = 10.0
    reload_interval_s: float = 5.0  # how often the shop looks at main
    epoch_ns: int = DEFAULT_EPOCH_NS
    utc_offset_h: float = UTC_OFFSET_H  # the customers' time zone, for the traffic's cycles


class Shop:
    """A deterministic simulated shop driven by the GitOps repository at `gitops_path`."""

    def __init__(
        self,
        seed: int = 0,
        gitops_path: str | Path | None = None,
        config: ShopConfig | None = None,
        **overrides: Any,
    ) -> None:
        self.config = config or ShopConfig(**overrides)
        self.seed = seed
        self.now_ns = self.config.epoch_ns
        if gitops_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="chaos-gitops-")
            gitops_path = Path(self._tmp.name) / "gitops"
        self.repo = GitOpsRepo.create(gitops_path, when_ns=self.now_ns)
        # Trace ids also depend on the start: a second drill of one seed an hour later in the
        # same archive must not carry the first one's ids. The default start keeps the seed's ids.
        self.rand = Rand(seed, id_salt=self.config.epoch_ns - DEFAULT_EPOCH_NS)
        # separate streams so that an injection (or its absence) does not shift the traffic draws
        self.traffic = Traffic(Rand(seed + 7_919), self.config.rate_rps, self.config.utc_offset_h)
        self.catalog = Catalog()
        self.cluster = Cluster(self.rand, seed)
        self.sim = Simulator(self.rand, self.cluster)
        # until main is read (and while it has never rendered), the defaults hold
        self.desired: dict[str, Desired] = {
            name: Desired.from_doc(doc) for name, doc in default_docs().items()
        }
        self.behaviour: dict[str, Behaviour] = {}
        self.manifest_errors: list[str] = []
        self.head = ""
        self.injections: dict[str, Any] = {}
        self._events: list[tuple[int, int, Callable[[Shop], None]]] = []
        self._seq = itertools.count()
        self._next_reload = self.now_ns
        self._next_metrics = self.now_ns + int(self.config.metric_interval_s * NS_PER_S)
        self._consume_credit = 0.0
        self.reload(force=True)

    # -- desired state --------------------------------------------------------------------------
    def reload(self, force: bool = False) -> bool:
        """Re-read main if it moved (or when forced); returns True when desired state changed."""
        head = self.repo.head()
        if head == self.head and not force:
            return False
        desired, errors = self.repo.read_desired(head)
        # a main that does not render is not applied: every service keeps its last good state
        self.desired = {**self.desired, **desired}
        self.manifest_errors = errors
        self.head = head
        self.cluster.sync(self.desired, self.now_ns)
        self.refresh_behaviour()
        return True

    def refresh_behaviour(self) -> None:
        """Recompute what each service does from the active defects."""
        self.behaviour = behaviour(list(SERVICES), self.catalog.active(self.desired))
        self.sim.configure(self.desired, self.behaviour)

    def commit(self, service: str, change: Callable[[dict[str, Any]], None], message: str) -> str:
        """Commit a manifest change to main at the current event time and apply it now."""
        sha = self.repo.commit(service, change, message, when_ns=self.now_ns)
        self.reload()
        return sha

    # -- faults ---------------------------------------------------------------------------------
    def inject(self, scenario: str, service: str | None = None, intensity: float = 1.0) -> Any:
        """Inject a scenario now; returns its Injection (ground truth and how to clear it)."""
        from chaos.scenarios import get  # scenarios import the shop's API, not the other way round

        injection = get(scenario).inject(self, service, intensity)
        self.injections[injection.tag] = injection
        self.refresh_behaviour()
        return injection

    def clear(self, tag: str | None = None) -> None:
        """End one injection (or all): drop runtime faults, undo its manifest changes if still there."""
        for key in [tag] if tag else list(self.injections):
            injection = self.injections.pop(key, None)
            if injection is None:
                continue
            self.catalog.remove_tag(injection.tag)
            injection.undo(self)
        self.refresh_behaviour()

    def at(self, time_ns: int, action: Callable[[Shop], None]) -> None:
        """Run `action(shop)` at the first tick at or after event time `time_ns`."""
        heapq.heappush(self._events, (time_ns, next(self._seq), action))

    # -- time -----------------------------------------------------------------------------------
    def advance(self, seconds: float) -> list[Batch]:
        """Simulate `seconds` of event time; the export batches produced, in time order."""
        return list(self.iter_batches(seconds))

    def iter_batches(self, seconds: float) -> Iterator[Batch]:
        """Like `advance`, lazily (constant memory for long recordings)."""
        end = self.now_ns + int(seconds * NS_PER_S)
        while self.now_ns < end:
            yield from self._tick()

    def step(
        self, seconds: float
    ) -> tuple[list[ExportTraceServiceRequest], list[ExportMetricsServiceRequest]]:
        """Simulate `seconds`; the trace and metric export requests (protobuf messages)."""
        traces: list[ExportTraceServiceRequest] = []
        metrics: list[ExportMetricsServiceRequest] = []
        for batch in self.iter_batches(seconds):
            msg = batch.proto()
            if isinstance(msg, ExportTraceServiceRequest):
                traces.append(msg)
            else:
                metrics.append(msg)
        return traces, metrics

    def _tick(self) -> Iterator[Batch]:
        cfg = self.config
        dt = cfg.tick_s
        now = self.now_ns
        tick_ns = int(dt * NS_PER_S)
        while self._events and self._events[0][0] <= now:
            _, _, action = heapq.heappop(self._events)
            action(self)
        if now >= self._next_reload:
            self._next_reload = now + int(cfg.reload_interval_s * NS_PER_S)
            self.reload()
        self.cluster.tick(now, dt, self.desired, self.behaviour)
        self._user_traffic(now, dt, tick_ns)
        self._consume(now, dt, tick_ns)
        spans, self.sim.spans = self.sim.spans, []
        if spans:
            yield Batch("spans", now, spans=spans)
        self.now_ns = now + tick_ns
        if self.now_ns >= self._next_metrics:
            self._next_metrics += int(cfg.metric_interval_s * NS_PER_S)
            yield Batch(
                "metrics",
                self.now_ns,
                points=snapshot(self.cluster, self.desired, len(self.sim.queue)),
            )

    def _user_traffic(self, now: int, dt: float, tick_ns: int) -> None:
        rate = self.traffic.rate(now, dt)
        rand = self.traffic.rand
        surges = self.behaviour["frontend"].surges
        starts: list[tuple[int, str]] = []
        carts = 0
        for route, share in ROUTE_MIX:
            n = rand.poisson(rate * share * dt + surges.get(route, 0.0) * dt)
            if route == "POST /api/cart":
                carts = n
            starts.extend((now + int(rand.uniform() * tick_ns), route) for _ in range(n))
        # the journey: a share of this tick's cart additions go on to check out
        checkouts = sum(1 for _ in range(carts) if rand.uniform() < CART_TO_CHECKOUT)
        starts.extend(
            (now + int(rand.uniform() * tick_ns), CHECKOUT_ROUTE) for _ in range(checkouts)
        )
        starts.sort()
        for start, route in starts:
            self.sim.user_request(route, start)

    def _consume(self, now: int, dt: float, tick_ns: int) -> None:
        workers = self.cluster.ready.get(QUEUE.consumer_service, [])
        factor = self.behaviour[QUEUE.consumer_service].consumer_factor
        per_worker = 1000.0 / (QUEUE.consumer_ms_per_message * factor)
        self._consume_credit = min(self._consume_credit + len(workers) * per_worker * dt, 1e6)
        queue = self.sim.queue
        n = min(int(self._consume_credit), len(queue))
        if not workers or not queue:
            self._consume_credit = min(self._consume_credit, 1.0)  # no banking idle capacity
            return
        self._consume_credit -= n
        for i in range(n):
            msg = queue.popleft()
            start = max(msg.enqueued_ns + 2_000_000, now + i * tick_ns // max(n, 1))
            self.sim.consume(msg, start)
        if not queue:
            self._consume_credit = min(self._consume_credit, 1.0)
