"""The request simulator: one user request becomes a tree of server, client, database, cache and
messaging spans across the shop's services.

Spans are plain tuples (see `Span`) appended to `Simulator.spans`; the encoders turn them into OTLP.
Latency is drawn per operation (lognormal), slowed by the serving pod's saturation and by active
defects; failures propagate to callers as HTTP/gRPC errors; a caller whose deadline passes gives up
(its client span is an error) while the callee runs to completion (its span is long but not an error).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from chaos.catalog import Behaviour
from chaos.cluster import Cluster, Pod
from chaos.manifests import Desired
from chaos.rand import Rand
from chaos.topology import (
    CACHE_CPU_MS,
    DB_QUERIES,
    DB_QUERY_CPU_MS,
    LOYALTY_LEVELS,
    OPERATIONS,
    PAYMENT_DECLINE_RATE,
    PRODUCT_IDS,
    QUEUE,
    Call,
    Operation,
)
from sre_space.timeutil import NS_PER_MS as MS

# Span tuple fields, in order (tuples are the cheapest record in CPython)
TRACE, SPAN, PARENT, POD, NAME, KIND, START, END, STATUS, MESSAGE, ATTRS, EVENTS = range(12)
Attrs = list[tuple[str, Any]]
Event = tuple[str, int, tuple[tuple[str, Any], ...]]  # (name, time_ns, attributes)
# (trace_id, span_id, parent_id or 0, pod, name, kind, start_ns, end_ns, status, status message,
#  attributes, events or None)
Span = tuple[int, int, int, Pod, str, int, int, int, int, str, Attrs, list[Event] | None]
KIND_INTERNAL, KIND_SERVER, KIND_CLIENT, KIND_PRODUCER, KIND_CONSUMER = 1, 2, 3, 4, 5
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
Status = tuple[int, str]  # (status code, status message)
UNSET: Status = (STATUS_UNSET, "")
REFUSED: Status = (STATUS_ERROR, "connection refused")
SHED: Status = (STATUS_ERROR, "request queue full, shedding load")

NET_MS = 0.3  # one network hop
RETRY_BACKOFF_MS = 25.0
POOL_TIMEOUT_MS = 1000.0
GRPC_OK, GRPC_DEADLINE, GRPC_INTERNAL, GRPC_UNAVAILABLE = 0, 4, 13, 14


@dataclass
class Outcome:
    """What a caller sees of a call."""

    end_ns: int
    failed: bool
    code: int  # HTTP status or gRPC code
    error: str  # error.type when failed
    retryable: bool = False
    timed_out: bool = False


@dataclass
class Message:
    """An order waiting in the queue."""

    enqueued_ns: int
    trace_id: int
    producer_span_id: int
    ctx: dict[str, Any]


class Simulator:
    """Generates the spans of user requests against the current cluster and behaviour."""

    def __init__(self, rand: Rand, cluster: Cluster) -> None:
        self.rand = rand
        self.cluster = cluster
        self.spans: list[Span] = []
        self.queue: deque[Message] = deque()
        self.desired: dict[str, Desired] = {}
        self.beh: dict[str, Behaviour] = {}
        self.flag_events: dict[str, list[tuple[str, Any]]] = {}
        self.db_calls = 0
        self._breaker: dict[tuple[str, str], float] = {}
        self._loyalty = [name for name, _ in LOYALTY_LEVELS]
        cum, acc = [], 0.0
        for _, share in LOYALTY_LEVELS:
            acc += share
            cum.append(acc)
        self._loyalty_cum = cum

    def configure(self, desired: dict[str, Desired], beh: dict[str, Behaviour]) -> None:
        """Take new desired state and behaviour (after a reload or an injection)."""
        self.desired = desired
        self.beh = beh
        # the feature_flag events each service's server spans carry (one per flag it evaluates)
        self.flag_events = {
            name: [
                (
                    "feature_flag",
                    (
                        ("feature_flag.key", flag),
                        ("feature_flag.variant", "on" if on else "off"),
                        ("feature_flag.provider_name", "gitops"),
                    ),
                )
                for flag, on in d.flags
            ]
            for name, d in desired.items()
        }

    # -- entry points ---------------------------------------------------------------------------
    def user_request(self, route: str, start_ns: int) -> None:
        """One request from a user's browser to the frontend (a new trace)."""
        r = self.rand
        u = r.uniform()
        loyalty = self._loyalty[-1]
        for name, edge in zip(self._loyalty, self._loyalty_cum, strict=True):
            if u < edge:
                loyalty = name
                break
        ctx: dict[str, Any] = {
            "app.product.id": PRODUCT_IDS[int(r.uniform() * len(PRODUCT_IDS))],
            "app.loyalty_level": loyalty,
            "app.cart.value": round(18.0 * r.lognormal_ms(4.0, 0.6), 2),
        }
        ready = self.cluster.ready.get("frontend")
        if not ready:
            return  # the load balancer refuses the connection: no span anywhere
        self._serve("frontend", route, start_ns, r.trace_id(), 0, ctx, KIND_SERVER)

    def consume(self, msg: Message, start_ns: int) -> None:
        """The order consumer processes one message (same trace as its producer)."""
        self._serve(
            QUEUE.consumer_service,
            QUEUE.consumer_op,
            start_ns,
            msg.trace_id,
            msg.producer_span_id,
            msg.ctx,
            KIND_CONSUMER,
        )

    def _span(
        self,
        kind: int,
        trace_id: int,
        span_id: int,
        parent_id: int,
        pod: Pod,
        name: str,
        start: int,
        end: int,
        attrs: Attrs,
        status: Status = UNSET,
        events: list[Event] | None = None,
    ) -> None:
        code, msg = status
        self.spans.append(
            (trace_id, span_id, parent_id, pod, name, kind, start, end, code, msg, attrs, events)
        )

    # -- server side ----------------------------------------------------------------------------
    def _serve(
        self,
        service: str,
        opname: str,
        start_ns: int,
        trace_id: int,
        parent_id: int,
        ctx: dict[str, Any],
        kind: int,
    ) -> Outcome:
        r = self.rand
        op: Operation = OPERATIONS[(service, opname)]
        ready = self.cluster.ready[service]
        pod: Pod = ready[int(r.uniform() * len(ready))]
        beh = self.beh[service]
        pod.requests += 1
        span_id = r.span_id()
        if pod.shed and r.chance(pod.shed):
            return self._shed(pod, op, kind, start_ns, trace_id, span_id, parent_id)
        pod.work_ms += op.cpu_ms
        self_ms = r.lognormal_ms(op.median_ms, op.sigma) * pod.latency_factor + pod.backlog_ms
        if kind == KIND_CONSUMER:
            self_ms *= beh.consumer_factor
        if beh.hang_ms:
            self_ms += r.lognormal_ms(beh.hang_ms, 0.4)  # stuck on something it does not trace
        t = start_ns + int(self_ms * 0.5 * MS)
        failed = False
        code = 200
        err = ""
        exc: tuple[str, str] | None = None
        timed_out = False
        route_err = beh.route_errors.get(opname)
        if route_err and r.chance(route_err[0]):
            failed, code, err, exc = True, 500, route_err[1], (route_err[1], route_err[2])
        elif op.error_rate and r.chance(op.error_rate):
            failed, code, err, exc = True, 500, op.error[0], op.error
        else:
            for call in op.calls:
                if call.p < 1.0 and not r.chance(call.p):
                    continue
                if call.kind == "publish" and ctx.get("app.payment.outcome") != "approved":
                    continue  # a declined payment places no order
                out = self._call(pod, call, t, trace_id, span_id, ctx)
                t = out.end_ns
                if out.failed and not call.optional:
                    failed, err = True, out.error
                    timed_out = out.timed_out
                    code = 504 if out.timed_out else (503 if out.code in (503, 429) else 502)
                    callee = call.service or ("postgres" if call.kind == "db" else call.op)
                    if out.error == "PoolTimeout":
                        code, err = 500, "TimeoutError"
                        exc = (
                            "TimeoutError",
                            f"QueuePool limit of size {self.desired[service].pool_max} overflow 0 reached, connection timed out, timeout 1.00",
                        )
                    elif out.timed_out:
                        exc = (
                            "TimeoutError",
                            f"{callee} did not answer within {self.desired[service].downstream_timeout_ms} ms",
                        )
                    else:
                        exc = ("UpstreamError", f"{callee} failed: {out.error}")
                    break
        end = t + int(self_ms * 0.5 * MS)
        attrs: list[tuple[str, Any]]
        if op.protocol == "http":
            attrs = [
                ("http.request.method", opname.split(" ", 1)[0]),
                ("http.route", opname.split(" ", 1)[1]),
                ("http.response.status_code", code),
            ]
        elif op.protocol == "grpc":
            gcode = GRPC_OK
            if failed:
                gcode = (
                    GRPC_DEADLINE
                    if timed_out
                    else (GRPC_UNAVAILABLE if code in (502, 503) else GRPC_INTERNAL)
                )
            attrs = _grpc_attrs(opname, gcode)
            code = gcode
        else:
            attrs = [
                ("messaging.system", "kafka"),
                ("messaging.destination.name", QUEUE.topic),
                ("messaging.operation.type", "process"),
                ("messaging.consumer.group.name", QUEUE.consumer_service),
            ]
        for key in op.ctx_attrs:
            attrs.append((key, ctx[key]))
        events: list[tuple[str, int, tuple[tuple[str, Any], ...]]] | None = None
        flags = self.flag_events.get(service)
        if flags:
            events = [(name, start_ns, a) for name, a in flags]
        if service == "payment" and not failed:
            outcome = "approved"
            decline = beh.declines.get(ctx["app.loyalty_level"])
            if (decline and r.chance(decline[0])) or r.chance(PAYMENT_DECLINE_RATE):
                outcome = "declined"
            ctx["app.payment.outcome"] = outcome
            attrs.append(("app.payment.outcome", outcome))
        if service == "checkout":
            pod.checkouts += 1
        if kind == KIND_CONSUMER and not failed:
            pod.orders += 1
        status = UNSET
        if failed:
            status = (STATUS_ERROR, exc[1] if exc else err)
            attrs.append(("error.type", err))
            if exc:
                ev = _exception(end, *exc)
                events = [*events, ev] if events else [ev]
        self._span(
            kind, trace_id, span_id, parent_id, pod, opname, start_ns, end, attrs, status, events
        )
        return Outcome(
            end, failed, code, err, retryable=code in (503, GRPC_UNAVAILABLE), timed_out=timed_out
        )

    def _shed(
        self,
        pod: Pod,
        op: Operation,
        kind: int,
        start_ns: int,
        trace_id: int,
        span_id: int,
        parent_id: int,
    ) -> Outcome:
        # an overloaded pod refuses at once: cheap, a 503 the caller must not retry into the overload
        pod.work_ms += 0.5
        end = start_ns + int(self.rand.lognormal_ms(0.5, 0.3) * MS)
        if op.protocol == "grpc":
            attrs = _grpc_attrs(op.name, GRPC_UNAVAILABLE)
            code = GRPC_UNAVAILABLE
        else:
            method, _, route = op.name.partition(" ")
            attrs = [
                ("http.request.method", method),
                ("http.route", route),
                ("http.response.status_code", 503),
            ]
            code = 503
        attrs.append(("error.type", "Overloaded"))
        ev = _exception(end, "Overloaded", SHED[1])
        self._span(
            kind, trace_id, span_id, parent_id, pod, op.name, start_ns, end, attrs, SHED, [ev]
        )
        return Outcome(end, True, code, "Overloaded", retryable=False)

    # -- client side ----------------------------------------------------------------------------
    def _call(
        self, pod: Pod, call: Call, t: int, trace_id: int, parent_id: int, ctx: dict[str, Any]
    ) -> Outcome:
        if call.kind == "db":
            return self._db(pod, call.op, t, trace_id, parent_id)
        if call.kind == "cache":
            return self._cache(pod, call, t, trace_id, parent_id)
        if call.kind == "publish":
            return self._publish(pod, t, trace_id, parent_id, ctx)
        return self._rpc(pod, call, t, trace_id, parent_id, ctx)

    def _rpc(
        self, pod: Pod, call: Call, t: int, trace_id: int, parent_id: int, ctx: dict[str, Any]
    ) -> Outcome:
        r = self.rand
        mine = self.desired[pod.service]
        timeout_ns = mine.downstream_timeout_ms * MS
        key = (pod.service, call.service)
        out = Outcome(t, True, 0, "")
        for attempt in range(call.retries + 1):
            client_id = r.span_id()
            start = t
            ready = self.cluster.ready.get(call.service)
            if mine.circuit_breaker and self._breaker.get(key, 0.0) > 0.5 and not r.chance(0.05):
                # the breaker is open: fail fast, let one call in twenty probe the callee
                out = Outcome(start + MS // 2, True, 503, "CircuitOpen", retryable=False)
            elif not ready:
                out = Outcome(start + MS, True, 503, "ConnectionRefused", retryable=True)
            else:
                srv = self._serve(
                    call.service,
                    call.op,
                    start + int(NET_MS * MS),
                    trace_id,
                    client_id,
                    ctx,
                    KIND_SERVER,
                )
                end = srv.end_ns + int(NET_MS * MS)
                if end - start > timeout_ns:
                    # the deadline is spent: retrying would only add load to a slow callee
                    out = Outcome(
                        start + timeout_ns, True, 0, "timeout", retryable=False, timed_out=True
                    )
                else:
                    out = Outcome(end, srv.failed, srv.code, srv.error, retryable=srv.retryable)
            if mine.circuit_breaker:
                self._breaker[key] = 0.9 * self._breaker.get(key, 0.0) + (
                    0.1 if out.failed else 0.0
                )
            attrs: list[tuple[str, Any]]
            if call.kind == "http":
                method, _, route = call.op.partition(" ")
                attrs = [
                    ("http.request.method", method),
                    ("url.template", route),
                    ("server.address", call.service),
                    ("peer.service", call.service),
                ]
                if out.code:
                    attrs.append(("http.response.status_code", out.code))
                if attempt:
                    attrs.append(("http.request.resend_count", attempt))
            else:
                code = GRPC_DEADLINE if out.timed_out else out.code
                if out.failed and code in (503, 502):
                    code = GRPC_UNAVAILABLE
                attrs = _grpc_attrs(call.op, code)
                attrs += [("server.address", call.service), ("peer.service", call.service)]
            status = UNSET
            if out.failed:
                status = (
                    STATUS_ERROR,
                    f"deadline of {mine.downstream_timeout_ms} ms exceeded"
                    if out.timed_out
                    else out.error,
                )
                attrs.append(("error.type", out.error))
            self._span(
                KIND_CLIENT,
                trace_id,
                client_id,
                parent_id,
                pod,
                call.op,
                start,
                out.end_ns,
                attrs,
                status,
            )
            if not (out.failed and out.retryable) or attempt == call.retries:
                break
            t = out.end_ns + int(RETRY_BACKOFF_MS * MS)
        return out

    def _db(self, pod: Pod, query_name: str, t: int, trace_id: int, parent_id: int) -> Outcome:
        r = self.rand
        if pod.pool_fail and r.chance(pod.pool_fail):
            return Outcome(t + int(POOL_TIMEOUT_MS * MS), True, 0, "PoolTimeout")
        if pod.pool_fail:
            t += int(r.uniform() * POOL_TIMEOUT_MS * 0.5 * MS)  # waited for a connection, got one
        q = DB_QUERIES[query_name]
        db_pods = self.cluster.ready.get("postgres")
        span_id = r.span_id()
        attrs: list[tuple[str, Any]] = [
            ("db.system", "postgresql"),
            ("db.operation.name", q.operation),
            ("db.collection.name", q.collection),
            ("db.namespace", "shop"),
            ("server.address", "postgres"),
            ("peer.service", "postgres"),
        ]
        if not db_pods:
            end = t + 2 * MS
            attrs.append(("error.type", "OperationalError"))
            self._span(
                KIND_CLIENT, trace_id, span_id, parent_id, pod, q.name, t, end, attrs, REFUSED
            )
            return Outcome(end, True, 503, "OperationalError")
        db = db_pods[int(r.uniform() * len(db_pods))]
        db.requests += 1
        db.work_ms += DB_QUERY_CPU_MS
        self.db_calls += 1
        ms = r.lognormal_ms(q.median_ms, q.sigma) * self.beh[pod.service].slow_db.get(q.name, 1.0)
        ms = ms * db.latency_factor + db.backlog_ms
        end = t + int((ms + 2 * NET_MS) * MS)
        self._span(KIND_CLIENT, trace_id, span_id, parent_id, pod, q.name, t, end, attrs)
        return Outcome(end, False, 0, "")

    def _cache(self, pod: Pod, call: Call, t: int, trace_id: int, parent_id: int) -> Outcome:
        r = self.rand
        caches = self.cluster.ready.get("redis")
        attrs: list[tuple[str, Any]] = [
            ("db.system", "redis"),
            ("db.operation.name", call.op),
            ("server.address", "redis"),
            ("peer.service", "redis"),
        ]
        span_id = r.span_id()
        if not caches:
            end = t + MS
            attrs.append(("error.type", "ConnectionError"))
            self._span(
                KIND_CLIENT, trace_id, span_id, parent_id, pod, call.op, t, end, attrs, REFUSED
            )
            hit = False
        else:
            cache = caches[int(r.uniform() * len(caches))]
            cache.requests += 1
            cache.work_ms += CACHE_CPU_MS
            end = t + int((r.lognormal_ms(0.35, 0.4) * cache.latency_factor + 2 * NET_MS) * MS)
            hit = r.chance(self.beh["redis"].cache_hit_ratio)
            if call.db_op:
                attrs.append(("app.cache.hit", hit))
                if hit:
                    cache.cache_hits += 1
                else:
                    cache.cache_misses += 1
            self._span(KIND_CLIENT, trace_id, span_id, parent_id, pod, call.op, t, end, attrs)
        if hit or not call.db_op:
            return Outcome(end, False, 0, "")
        return self._db(pod, call.db_op, end, trace_id, parent_id)

    def _publish(
        self, pod: Pod, t: int, trace_id: int, parent_id: int, ctx: dict[str, Any]
    ) -> Outcome:
        r = self.rand
        span_id = r.span_id()
        end = t + int(r.lognormal_ms(1.2, 0.3) * MS)
        attrs: list[tuple[str, Any]] = [
            ("messaging.system", "kafka"),
            ("messaging.destination.name", QUEUE.topic),
            ("messaging.operation.type", "send"),
            ("server.address", "kafka"),
        ]
        name = f"{QUEUE.topic} publish"
        self._span(KIND_PRODUCER, trace_id, span_id, parent_id, pod, name, t, end, attrs)
        self.queue.append(Message(end, trace_id, span_id, dict(ctx)))
        return Outcome(end, False, 0, "")


def _grpc_attrs(op_name: str, code: int) -> Attrs:
    """The gRPC attributes of a span of `op_name` (`service/method`) that ended with `code`."""
    svc, _, method = op_name.partition("/")
    return [
        ("rpc.system", "grpc"),
        ("rpc.service", svc),
        ("rpc.method", method),
        ("rpc.grpc.status_code", code),
    ]


def _exception(at_ns: int, exc_type: str, message: str) -> Event:
    """The `exception` event of an error that escaped its span."""
    return (
        "exception",
        at_ns,
        (("exception.type", exc_type), ("exception.message", message), ("exception.escaped", True)),
    )
