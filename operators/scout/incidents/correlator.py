"""`Correlator`: anomalies in, incident lifecycle events out. One instance sees every anomaly.

Grouping. An anomaly joins an active incident when its node (its service; `cuj:<name>` for a
journey, standing for the journey's services; `sre-space` for the pipeline's own health) is
linked to one of the incident's nodes: the same service, or one calls the other within
`max_hops` in the call graph learned from traces (siblings are not linked). So a caller's errors
and its callee's saturation are one incident. When several active incidents match, the oldest wins.

Flapping and reopening. A new anomaly that links to no active incident first looks at incidents
recovered or resolved within the cool-down: on one of their nodes, or on a linked node with a
symptom class they had, it reopens that incident (same id) instead of opening a new one.

Weak evidence. An SLO burn below `slo_opens`, and an "info" anomaly (a metric change only a
pooled test sees: a small lasting shift or wider noise, no point past its bar), opens no incident
alone: it waits while active and joins the first incident it links to (a ticket's worth of
evidence, not a page). An info anomaly whose points grow past the bar is re-emitted as a warning
and then opens one.

Recovery. An incident has recovered when none of its baseline anomalies is active and the last
cleared `recovery` ago. SLO burn anomalies set severity but do not hold an incident open (long burn
windows lag the signals by design), unless SLO anomalies are all the incident has.

Severity comes from SLO impact: a page-level burn makes the incident `critical`, a ticket-level
burn `major`; without budget burn it is `minor`, whatever the detectors' scores.

Events: `Incident` records whose `event` is opened, updated (new symptom or higher severity),
recovered, reopened, or a later state set through `set_state`. Ids are hashes of the opening
fingerprint and time, so replays give the same ids. Event time only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from operators.scout.detect.events import (
    AnomalyCleared,
    ChangeEvent,
    Detection,
    signal_class,
    stable_id,
)
from operators.scout.incidents.config import IncidentsConfig
from operators.scout.incidents.graph import CallGraph
from operators.scout.incidents.lifecycle import apply_state
from sre_space.records import Anomaly, Incident
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339, rfc3339_to_ns

PIPELINE_NODE = "sre-space"
SEVERITY_RANK = {"minor": 0, "major": 1, "critical": 2}
_FROM_SLO = {"page": "critical", "ticket": "major"}
_ORDER = {ChangeEvent: 0, Anomaly: 1, AnomalyCleared: 2}
MAX_SYMPTOMS = 8


def journey_services(journeys: Mapping[str, Any]) -> dict[str, list[str]]:
    """Journey name -> its services, from `PipelineConfig.journeys` (objects or plain dicts)."""
    out: dict[str, list[str]] = {}
    for name, journey in journeys.items():
        steps = journey["steps"] if isinstance(journey, Mapping) else journey.steps
        services = {s["service"] if isinstance(s, Mapping) else s.service for s in steps}
        out[name] = sorted(services)
    return out


def anomaly_node(anomaly: Anomaly) -> str:
    """The node an anomaly sits on in the call graph."""
    if anomaly.kind == "pipeline":
        return PIPELINE_NODE
    if anomaly.service:
        return anomaly.service
    if anomaly.cuj:
        return f"cuj:{anomaly.cuj}"
    return PIPELINE_NODE


class _Incident:
    """Mutable working state of one incident (snapshots as a plain dict)."""

    def __init__(self, id: str, opened_at: int) -> None:
        self.id = id
        self.fingerprint = ""
        self.state = "open"
        self.opened_at = opened_at
        self.updated_at = opened_at
        self.recovered_at: int | None = None
        self.closed_ns: int | None = None
        self.severity = "minor"
        self.nodes: list[str] = []
        self.pairs: list[list[str]] = []  # [node, class, label], in order of appearance
        self.anomaly_ids: list[str] = []
        self.active: list[str] = []
        self.slo_ids: list[str] = []
        self.has_baseline = False
        self.last_clear_ns = 0
        self.last_symptom_ns = 0  # event time a new anomaly last joined (time-only links)

    @property
    def is_active(self) -> bool:
        return self.closed_ns is None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Incident:
        out = cls(data["id"], data["opened_at"])
        for key, value in data.items():
            setattr(out, key, value)
        return out


class Correlator:
    """Groups anomalies into incidents; emits lifecycle events. See the module docstring.

    Feed detections with `on_detection` (buffered) and close each window with
    `on_window(window_end, edges)`, which handles every buffered detection up to `window_end` in
    a fixed order, then recovery. `process` does both in one call.
    """

    def __init__(
        self, config: IncidentsConfig, journeys: Mapping[str, Iterable[str]] | None = None
    ) -> None:
        self.config = config
        self.journeys = {k: sorted(v) for k, v in (journeys or {}).items()}
        self.graph = CallGraph(int(config.graph_ttl * NS_PER_S))
        self.incidents: dict[str, _Incident] = {}
        self.by_anomaly: dict[str, str] = {}
        self.ignored: set[str] = set()  # silenced anomalies, or ones whose incident was pruned
        self.changes: dict[str, dict[str, Any]] = {}
        # Anomalies too weak to open an incident alone (see `_may_open`), waiting for one to join.
        self.pending: dict[str, dict[str, Any]] = {}
        self.buffer: list[Detection] = []
        self.now_ns = 0

    # ------------------------------------------------------------------ input

    def on_detection(self, detection: Detection) -> None:
        """Buffer one detector output until the window it belongs to is closed."""
        self.buffer.append(detection)

    def on_window(self, window_end: int, edges: Iterable[tuple[str, str]] = ()) -> list[Incident]:
        """Close the window ending at `window_end`: learn edges, handle detections, recover."""
        now_ns = window_end
        self.now_ns = max(self.now_ns, now_ns)
        self.graph.add(sorted(edges), now_ns)
        ready = [d for d in self.buffer if d.at <= now_ns]
        self.buffer = [d for d in self.buffer if d.at > now_ns]
        ready.sort(key=lambda d: (d.at, _ORDER[type(d.item)], d.item.id))
        out: list[Incident] = []
        # Per event time: changes first, then the anomalies together, then the clears.
        by_time: dict[int, list[Detection]] = {}
        for det in ready:
            by_time.setdefault(det.at, []).append(det)
        for at_ns, dets in sorted(by_time.items()):
            batch: list[Anomaly] = []
            for det in dets:
                if isinstance(det.item, ChangeEvent):
                    self.changes.setdefault(det.item.id, det.item.to_dict())
                elif isinstance(det.item, Anomaly):
                    batch.append(det.item)
            out += self._on_anomalies(batch, at_ns)
            for det in dets:
                if isinstance(det.item, AnomalyCleared):
                    self._on_cleared(det.item, at_ns)
        out += self._recover(now_ns)
        self._prune(now_ns)
        return out

    def process(
        self,
        window_end: int,
        detections: Iterable[Detection],
        edges: Iterable[tuple[str, str]] = (),
    ) -> list[Incident]:
        """`on_detection` for each detection, then `on_window`."""
        for det in detections:
            self.on_detection(det)
        return self.on_window(window_end, edges)

    def set_state(self, incident_id: str, state: str, at: int, note: str = "") -> list[Incident]:
        """Apply a later state (diagnosed, mitigating, verifying, resolved, escalated).

        Unknown (already pruned) incidents and repeats of the current state give no event, so
        at-least-once delivery is harmless; a transition the lifecycle forbids raises
        `InvalidTransition`.
        """
        inc = self.incidents.get(incident_id)
        if inc is None or inc.state == state:
            return []
        event = apply_state(self._record(inc, "state"), state, at, note)
        inc.state = state
        inc.updated_at = at
        if state == "resolved" and inc.closed_ns is None:
            inc.closed_ns = at
        return [event]

    def current(self) -> list[Incident]:
        """Every incident still held in state, as records (event `state`)."""
        return [self._record(inc, "state") for _, inc in sorted(self.incidents.items())]

    # ------------------------------------------------------------------ anomalies

    def _suppressed(self, a: Anomaly, at_ns: int) -> bool:
        fields = {
            "service": a.service or "",
            "operation": a.operation or "",
            "cuj": a.cuj or "",
            "metric": a.metric or "",
            "signal": a.signal,
            "detector": a.detector,
        }
        for silence in self.config.silences:
            if silence.active(at_ns) and silence.matches(fields):
                return True
        services = [a.service] if a.service else self.journeys.get(a.cuj or "", [])
        return any(m.covers(s, at_ns) for m in self.config.maintenance for s in services)

    def _on_anomalies(self, batch: list[Anomaly], at_ns: int) -> list[Incident]:
        """Anomalies detected at the same event time: linked ones are handled as one group."""
        out: list[Incident] = []
        fresh: list[Anomaly] = []
        seen: set[str] = set()
        for a in batch:
            if a.id in self.ignored or a.id in seen:
                continue  # silenced, or delivered twice (at-least-once)
            seen.add(a.id)
            self.pending.pop(a.id, None)
            known = self.by_anomaly.get(a.id)
            if known is not None:
                # A re-emission (an SLO escalating): only the severity can change.
                inc = self.incidents[known]
                if self._raise_severity(inc, a):
                    inc.updated_at = at_ns
                    out.append(self._record(inc, "updated"))
            elif self._suppressed(a, at_ns):
                self.ignored.add(a.id)
            else:
                fresh.append(a)
        for group in self._components(fresh):
            out += self._on_group(group, at_ns)
        return out

    def _components(self, anomalies: list[Anomaly]) -> list[list[Anomaly]]:
        """Connected groups of simultaneous anomalies under the link relation, in input order.

        Without this, whichever symptom sorts first would open an incident of its own before
        the rest of the same problem (seen in the same window) arrives.
        """
        parent = list(range(len(anomalies)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        nodes = [anomaly_node(a) for a in anomalies]
        for i in range(len(anomalies)):
            for j in range(i + 1, len(anomalies)):
                if find(i) == find(j):
                    continue
                # Seen at the same time, an unplaceable service belongs with the others.
                unplaced = PIPELINE_NODE not in (nodes[i], nodes[j]) and (
                    self._unplaced(nodes[i]) or self._unplaced(nodes[j])
                )
                if unplaced or self._linked(nodes[i], nodes[j]):
                    parent[find(j)] = find(i)
        groups: dict[int, list[Anomaly]] = {}
        for i, a in enumerate(anomalies):
            groups.setdefault(find(i), []).append(a)
        return list(groups.values())

    def _on_group(self, group: list[Anomaly], at_ns: int) -> list[Incident]:
        nodes = [anomaly_node(a) for a in group]
        classes = [signal_class(a) for a in group]
        active = sorted(
            (i for i in self.incidents.values() if i.is_active), key=lambda i: (i.opened_at, i.id)
        )
        linked = [i for i in active if any(self._links(node, i) for node in nodes)]
        # Time is the only link the graph cannot give: the most recently grown incident wins.
        near = sorted(
            (i for i in active if self._near_unplaced(nodes, i, at_ns)),
            key=lambda i: (-i.last_symptom_ns, i.opened_at, i.id),
        )
        for inc in linked[:1] or near[:1]:
            changed = self._attach_all(inc, group, nodes, classes)
            if changed:
                inc.last_symptom_ns = at_ns
                inc.updated_at = at_ns
                return [self._record(inc, "updated")]
            return []
        cooldown_ns = int(self.config.cooldown * NS_PER_S)
        closed = sorted(
            (
                i
                for i in self.incidents.values()
                if i.closed_ns is not None and i.closed_ns >= at_ns - cooldown_ns
            ),
            key=lambda i: (-(i.closed_ns or 0), i.id),
        )
        for inc in closed:
            if self._returns(inc, nodes, classes):
                inc.closed_ns = None
                inc.recovered_at = None
                inc.state = "open"
                inc.updated_at = at_ns
                inc.last_symptom_ns = at_ns
                self._attach_all(inc, group, nodes, classes)
                return [self._record(inc, "reopened")]
        if not any(self._may_open(a) for a in group):
            # Not strong enough to open an incident alone; they may still join a later one.
            for a in group:
                self.pending[a.id] = a.to_dict()
            return []
        inc = _Incident("", at_ns)
        for a, node, cls in zip(group, nodes, classes, strict=True):
            self._attach(inc, a, node, cls)
        # Hashed in its RFC 3339 form, so ids stay those of the recorded history.
        inc.id = stable_id("inc", inc.fingerprint, ns_to_rfc3339(at_ns))
        inc.last_symptom_ns = at_ns
        self.incidents[inc.id] = inc
        self._attach_all(inc, group, nodes, classes)
        return [self._record(inc, "opened")]

    def _attach_all(
        self, inc: _Incident, group: list[Anomaly], nodes: list[str], classes: list[str]
    ) -> bool:
        """Attach a group and any waiting SLO anomalies it now links to; True if anything new."""
        changed = False
        for a, node, cls in zip(group, nodes, classes, strict=True):
            changed = self._attach(inc, a, node, cls) or changed
            changed = self._raise_severity(inc, a) or changed
        return self._adopt_pending(inc) or changed

    def _adopt_pending(self, inc: _Incident) -> bool:
        adopted = False
        for aid in sorted(self.pending):
            a = Anomaly.from_dict(self.pending[aid])
            node = anomaly_node(a)
            if self._links(node, inc):
                del self.pending[aid]
                self._attach(inc, a, node, signal_class(a))
                self._raise_severity(inc, a)
                adopted = True
        return adopted

    def _on_cleared(self, c: AnomalyCleared, at_ns: int) -> None:
        self.pending.pop(c.id, None)
        if c.id in self.ignored:
            self.ignored.discard(c.id)
            return
        iid = self.by_anomaly.get(c.id)
        if iid is None:
            return
        inc = self.incidents[iid]
        if c.id in inc.active:
            inc.active.remove(c.id)
            inc.last_clear_ns = max(inc.last_clear_ns, at_ns)

    def _returns(self, inc: _Incident, nodes: list[str], classes: list[str]) -> bool:
        """Whether a group is a closed incident's problem come back: on one of its nodes, or
        on a node linked to it with a symptom class it had. A linked service with a symptom of
        its own (errors in a caller after its callee's slowdown was fixed) is a new problem."""
        had = {p[1] for p in inc.pairs}
        return any(
            node in inc.nodes or (cls in had and self._links(node, inc))
            for node, cls in zip(nodes, classes, strict=True)
        )

    def _links(self, node: str, inc: _Incident) -> bool:
        return any(self._linked(node, other) for other in inc.nodes)

    def _unplaced(self, node: str) -> bool:
        """A service the call graph has never seen in an edge: links cannot place it."""
        if node == PIPELINE_NODE or node.startswith("cuj:"):
            return False
        return not self.graph.knows(node)

    def _near_unplaced(self, nodes: list[str], inc: _Incident, at_ns: int) -> bool:
        """Whether a group joins `inc` by time alone: one side cannot be placed in the graph.

        An unplaceable anomaly joins an incident that grew within `unplaced_window`; an
        incident made only of unplaceable services takes in anomalies that soon after it.
        The pipeline's own health never joins by time (it is its own problem).
        """
        if at_ns - inc.last_symptom_ns > int(self.config.unplaced_window * NS_PER_S):
            return False
        if PIPELINE_NODE in nodes or PIPELINE_NODE in inc.nodes:
            return False
        if any(self._unplaced(n) for n in nodes):
            return True
        return bool(inc.nodes) and all(self._unplaced(n) for n in inc.nodes)

    def _services(self, node: str) -> list[str]:
        if node.startswith("cuj:"):
            return self.journeys.get(node[4:], [])
        return [node]

    def _linked(self, a: str, b: str) -> bool:
        if a == b:
            return True
        if PIPELINE_NODE in (a, b):
            return False  # the pipeline's blindness is its own problem
        hops = self.config.max_hops
        return any(
            x == y or self.graph.linked(x, y, hops)
            for x in self._services(a)
            for y in self._services(b)
        )

    def _attach(self, inc: _Incident, a: Anomaly, node: str, cls: str) -> bool:
        if a.id not in inc.anomaly_ids:
            inc.anomaly_ids.append(a.id)
        if a.id not in inc.active:
            inc.active.append(a.id)
        if inc.id:  # a new incident gets its id (from its fingerprint) after the first attach
            self.by_anomaly[a.id] = inc.id
        if a.detector == "slo_burn":
            if a.id not in inc.slo_ids:
                inc.slo_ids.append(a.id)
        else:
            inc.has_baseline = True
        if node not in inc.nodes:
            inc.nodes.append(node)
        new = not any(p[0] == node and p[1] == cls for p in inc.pairs)
        if new:
            label = a.metric or a.operation or a.signal
            inc.pairs.append([node, cls, label])
        inc.fingerprint = self._fingerprint(inc)
        return new

    def _may_open(self, a: Anomaly) -> bool:
        """Whether an anomaly may open an incident alone: not a burn below `slo_opens`, not an
        "info" change (seen only by a pooled test) unless `info_opens`."""
        if a.detector == "slo_burn":
            rank = {"never": 3, "page": 2, "ticket": 1}[self.config.slo_opens]
            return {"page": 2, "ticket": 1}.get(a.severity, 0) >= rank
        return a.severity != "info" or self.config.info_opens

    def _raise_severity(self, inc: _Incident, a: Anomaly) -> bool:
        sev = _FROM_SLO.get(a.severity)
        if sev is not None and SEVERITY_RANK[sev] > SEVERITY_RANK[inc.severity]:
            inc.severity = sev
            return True
        return False

    def _fingerprint(self, inc: _Incident) -> str:
        """Root nodes (those calling no other node of the incident) and the symptom classes."""
        hops = self.config.max_hops
        services = [n for n in inc.nodes if not n.startswith("cuj:")]
        roots = [
            n
            for n in services
            if not any(o != n and self.graph.reaches(n, o, hops) for o in services)
        ] or list(inc.nodes)
        classes = sorted({p[1] for p in inc.pairs})
        return ",".join(sorted(roots)) + "/" + ",".join(classes)

    # ------------------------------------------------------------------ time

    def _recover(self, now_ns: int) -> list[Incident]:
        out: list[Incident] = []
        recovery_ns = int(self.config.recovery * NS_PER_S)
        for _, inc in sorted(self.incidents.items()):
            if not inc.is_active or inc.state == "escalated":
                continue
            blocking = [i for i in inc.active if not (inc.has_baseline and i in inc.slo_ids)]
            if blocking or now_ns - inc.last_clear_ns < recovery_ns:
                continue
            inc.state = "recovered"
            inc.recovered_at = inc.last_clear_ns
            inc.closed_ns = now_ns
            inc.updated_at = now_ns
            out.append(self._record(inc, "recovered"))
        return out

    def _prune(self, now_ns: int) -> None:
        horizon = now_ns - int(self.config.cooldown * NS_PER_S)
        for iid in sorted(self.incidents):
            inc = self.incidents[iid]
            if inc.closed_ns is not None and inc.closed_ns < horizon:
                for aid in inc.anomaly_ids:
                    self.by_anomaly.pop(aid, None)
                    if aid in inc.active:
                        self.ignored.add(aid)  # its clear or re-emission must not open anything
                del self.incidents[iid]
        keep_ns = now_ns - int((self.config.change_lookback + self.config.cooldown) * NS_PER_S)
        for cid in [c for c, ev in self.changes.items() if rfc3339_to_ns(ev["at"]) < keep_ns]:
            del self.changes[cid]

    # ------------------------------------------------------------------ output

    def _summary(self, inc: _Incident) -> str:
        symptoms = [f"{n} {c} ({label})" for n, c, label in inc.pairs[:MAX_SYMPTOMS]]
        if len(inc.pairs) > MAX_SYMPTOMS:
            symptoms.append(f"+{len(inc.pairs) - MAX_SYMPTOMS} more")
        services = {s for n in inc.nodes for s in self._services(n)}
        since = inc.opened_at - int(self.config.change_lookback * NS_PER_S)
        changes = sorted(
            (ev["at"], ev["service"], ev["change"], ev.get("after") or "", ev.get("count", 1))
            for ev in self.changes.values()
            if ev["service"] in services and since <= rfc3339_to_ns(ev["at"]) <= self.now_ns
        )
        text = "; ".join(symptoms)
        if changes:
            parts = []
            for at, service, change, after, count in changes[-5:]:
                what = f"{change} {after}" if change != "restart" else f"restart x{count}"
                parts.append(f"{service} {what} at {at}")
            text += "; changes: " + ", ".join(parts)
        return text

    def _record(self, inc: _Incident, event: str) -> Incident:
        services = sorted(
            {n for n in inc.nodes if not n.startswith("cuj:")}
            | {s for n in inc.nodes if n.startswith("cuj:") for s in self._services(n)}
        )
        return Incident(
            id=inc.id,
            fingerprint=inc.fingerprint,
            state=inc.state,  # type: ignore[arg-type]
            opened_at=inc.opened_at,
            updated_at=inc.updated_at,
            services=services,
            severity=inc.severity,
            anomaly_ids=list(inc.anomaly_ids),
            recovered_at=inc.recovered_at,
            event=event,
            summary=self._summary(inc),
        )

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """Plain picklable state (the config and journeys are not part of it)."""
        return {
            "graph": self.graph.snapshot(),
            "incidents": {k: v.to_dict() for k, v in sorted(self.incidents.items())},
            "by_anomaly": dict(sorted(self.by_anomaly.items())),
            "ignored": sorted(self.ignored),
            "changes": {k: dict(v) for k, v in sorted(self.changes.items())},
            "pending": {k: dict(v) for k, v in sorted(self.pending.items())},
            "buffer": [[d.at, type(d.item).__name__, d.item.to_dict()] for d in self.buffer],
            "now_ns": self.now_ns,
        }

    @classmethod
    def from_snapshot(
        cls,
        config: IncidentsConfig,
        data: dict[str, Any],
        journeys: Mapping[str, Iterable[str]] | None = None,
    ) -> Correlator:
        """Rebuild from `snapshot()`."""
        out = cls(config, journeys)
        out.graph = CallGraph.from_snapshot(data["graph"])
        out.incidents = {k: _Incident.from_dict(dict(v)) for k, v in data["incidents"].items()}
        out.by_anomaly = dict(data["by_anomaly"])
        out.ignored = set(data["ignored"])
        out.changes = {k: dict(v) for k, v in data["changes"].items()}
        pending = data.get("pending", data.get("pending_slo", {}))  # its name before 12-2026
        out.pending = {k: dict(v) for k, v in pending.items()}
        types: dict[str, Any] = {"Anomaly": Anomaly, "AnomalyCleared": AnomalyCleared}
        types["ChangeEvent"] = ChangeEvent
        out.buffer = [
            Detection(at, types[name].from_dict(item)) for at, name, item in data["buffer"]
        ]
        out.now_ns = data["now_ns"]
        return out
