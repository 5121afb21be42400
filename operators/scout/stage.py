"""The Scout stage of the flow: closed-window signals in, detections and incident events out.

Signals of one event-time window close at different moments (watermarks are per key), so the stage
holds each window until the stream has moved `hold_windows` windows past it, then judges the whole
window at once with `Scout`. A signal that arrives after its window was judged (a straggler) is
judged with the next window released, so nothing is dropped. At the end of a replay everything
pending is released in window order. Event time only: the same input gives the same output.

Over Kafka, traces and metrics come from different topics, read in polls of different event-time
spans. When the sources are `awaited` (a `SRE_DETERMINISTIC_CLOCK` run over Kafka), a window waits
until both kinds of signal have moved past it (`operators.signals.progress`), so how the polls
interleave cannot turn one kind into stragglers. Bytewax also emits one poll's windows key by key:
the flow hands the stage each activation's signals together (`on_batch`), so a poll's windows are
all pending before any is judged; across activations (`operators.signals.progress.Disorder`) an
instance is not gone while its windows may still be that far behind, and a replay (`wait_disorder`)
holds each window that long too, so it is judged whole. A live run, or a simulated-clock one whose
responders act as it goes, releases on the newest signal, because metrics exported once a minute
must not hold back the page for spans failing now. Call-graph edges apply to the windows at or after
the one they were first seen in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from operators.scout.detect.config import load_detection, load_slos
from operators.scout.detect.events import DetectedItem
from operators.scout.incidents.config import load_incidents
from operators.scout.incidents.correlator import journey_services
from operators.scout.judge import Scout
from operators.signals.progress import Disorder, Progress
from sre_space.records import Incident, SignalKind, SignalWindow
from sre_space.settings import PipelineConfig

ScoutRecord = DetectedItem | Incident
# the input each kind of signal comes from; pipeline signals are derived from both
_SOURCE: dict[SignalKind, str] = {"span": "traces", "cuj": "traces", "metric": "metrics"}
SOURCES = ("traces", "metrics")


@dataclass(frozen=True, slots=True)
class EdgesSeen:
    """Call-graph edges learned from one request, stamped with the window they fall in."""

    window_end: int
    edges: frozenset[tuple[str, str]]


class ScoutStage:
    """Buffers windows, runs `Scout` on each complete one; snapshot/restore for recovery."""

    def __init__(
        self,
        config: PipelineConfig,
        hold_windows: int | None = None,
        *,
        awaited: tuple[str, ...] = (),
        wait_disorder: bool = False,
    ) -> None:
        """`awaited`: the sources (of `SOURCES`) the input is known to carry, waited for even
        before their first signal; `wait_disorder`: hold windows for the disorder seen lately."""
        self.config = config
        self.wait_disorder = wait_disorder
        self.window_ns = window_ns = config.signals.window_seconds * 1_000_000_000
        lateness_ns = config.signals.lateness_seconds * 1_000_000_000
        # Wait past the lateness (the last moment a key may still close the window) plus one.
        self.hold_ns = (
            hold_windows if hold_windows is not None else -(-lateness_ns // window_ns) + 1
        ) * window_ns
        self.scout = Scout(
            load_detection(config.extra),
            load_slos(config.extra),
            load_incidents(config.extra),
            journey_services(config.journeys),
        )
        self.pending: dict[int, list[SignalWindow]] = {}
        # edge -> the end of the first window it was seen in
        self.edges: dict[tuple[str, str], int] = {}
        self.max_end_ns = 0
        # over the window ends each source's signals reached
        self.progress = Progress(awaited)
        self.disorder = Disorder()
        self.judged_end_ns = 0

    def on_signal(self, sig: SignalWindow) -> list[ScoutRecord]:
        """Take one closed window's signal; returns what windows it completed produced."""
        return self.on_batch([sig])

    def on_batch(self, items: Iterable[SignalWindow | EdgesSeen]) -> list[ScoutRecord]:
        """Take what one activation delivered, then judge the windows it completed. A poll's
        windows arrive key by key (one pod's ten minutes before the next pod's first): judged
        after the whole batch, the later keys are not stragglers of the first."""
        took = False
        for item in items:
            if isinstance(item, EdgesSeen):
                self.on_edges(item)
            else:
                self._take(item)
                took = True
        if not took:
            return []
        wait = self.hold_ns
        if self.wait_disorder:
            wait = max(wait, self.disorder.lag_ns + self.window_ns)
        return self._release(self._newest() - wait)

    def _newest(self) -> int:
        reached = self.progress.reached()
        return self.max_end_ns if reached is None else reached

    def _take(self, sig: SignalWindow) -> None:
        end_ns = end = sig.window_end
        if end_ns <= self.judged_end_ns:
            # A straggler: judge it with the next window released rather than drop it.
            end = next(iter(sorted(self.pending)), end)
        self.pending.setdefault(end, []).append(sig)
        self.max_end_ns = max(self.max_end_ns, end_ns)
        source = _SOURCE.get(sig.kind)
        if source is not None:
            self.progress.see(source, end_ns)
        if sig.kind != "pipeline":  # late-data counts carry the old window they were late for
            self.disorder.see(self._newest(), end_ns)

    def on_edges(self, seen: EdgesSeen) -> list[ScoutRecord]:
        """Learn call-graph edges (they apply to windows ending at or after the one seen in)."""
        for edge in seen.edges:
            self.edges[edge] = min(self.edges.get(edge, seen.window_end), seen.window_end)
        return []

    def flush(self) -> list[ScoutRecord]:
        """Judge every pending window (end of input)."""
        return self._release(None)

    def set_state(self, incident_id: str, state: str, at: int, note: str = "") -> list[ScoutRecord]:
        """Apply a lifecycle state set by a responder (diagnosed, mitigating, resolved, ...)."""
        return list(self.scout.set_state(incident_id, state, at, note))

    def _release(self, up_to_ns: int | None) -> list[ScoutRecord]:
        out: list[ScoutRecord] = []
        for end in sorted(self.pending):
            if up_to_ns is not None and end > up_to_ns:
                break
            signals = self.pending.pop(end)
            edges = sorted(e for e, seen in self.edges.items() if seen <= end)
            result = self.scout.on_window(end, signals, edges, self.disorder.lag_ns)
            out.extend(d.item for d in result.detections)
            out.extend(result.incidents)
            self.judged_end_ns = max(self.judged_end_ns, end)
        return out

    def snapshot(self) -> dict[str, Any]:
        """Plain data for Bytewax recovery."""
        return {
            "scout": self.scout.snapshot(),
            "pending": {k: [s.to_dict() for s in v] for k, v in self.pending.items()},
            "edges": sorted([a, b, seen] for (a, b), seen in self.edges.items()),
            "max_end_ns": self.max_end_ns,
            "progress": self.progress.snapshot(),
            "disorder": self.disorder.snapshot(),
            "judged_end_ns": self.judged_end_ns,
        }

    @classmethod
    def from_snapshot(
        cls,
        config: PipelineConfig,
        data: dict[str, Any],
        *,
        awaited: tuple[str, ...] = (),
        wait_disorder: bool = False,
    ) -> ScoutStage:
        """Rebuild from `snapshot()` (one taken before edges had windows: they apply at once)."""
        stage = cls(config, awaited=awaited, wait_disorder=wait_disorder)
        stage.scout = Scout.from_snapshot(
            stage.scout.detection,
            stage.scout.slos,
            stage.scout.incidents_config,
            data["scout"],
            journey_services(config.journeys),
        )
        stage.pending = {
            k: [SignalWindow.from_dict(s) for s in v] for k, v in data["pending"].items()
        }
        stage.edges = {
            (str(e[0]), str(e[1])): int(e[2]) if len(e) > 2 else 0 for e in data["edges"]
        }
        stage.max_end_ns = data["max_end_ns"]
        stage.progress.restore(data.get("progress", {}))
        stage.disorder = Disorder.restore(data.get("disorder"))
        stage.judged_end_ns = data["judged_end_ns"]
        return stage


def edges_seen(window_end: int, edges: Iterable[tuple[str, str]]) -> EdgesSeen:
    """Wrap a request's edges for the stage."""
    return EdgesSeen(window_end, frozenset(edges))
