"""`Scout`: every detector and the correlator behind one call per closed window.

The reference wiring of this package, for replays, backtests and tests: signals of one window in,
detections and incident events out, in a deterministic order. The Bytewax flow may instead spread
`SeriesDetector`s and `SloEvaluator`s over workers by key and run one `Correlator`; the outputs
are the same as long as each window's detections reach the correlator before it closes that window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from operators.scout.detect.config import DetectionConfig, SlosConfig
from operators.scout.detect.events import ChangeEvent, Detection
from operators.scout.detect.instances import InstanceWatch, instance_of
from operators.scout.detect.series import SeriesDetector, signal_key
from operators.scout.detect.slo import SloEvaluator, slo_instances
from operators.scout.incidents.config import IncidentsConfig
from operators.scout.incidents.correlator import Correlator
from sre_space.records import Incident, SignalWindow


@dataclass(slots=True)
class ScoutOutput:
    """What one window produced."""

    detections: list[Detection] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)


class Scout:
    """Per-series detectors, SLO evaluators and the correlator, with one snapshot for all."""

    def __init__(
        self,
        detection: DetectionConfig,
        slos: SlosConfig,
        incidents: IncidentsConfig,
        journeys: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.detection = detection
        self.slos = slos
        self.incidents_config = incidents
        self.journeys = {k: sorted(v) for k, v in (journeys or {}).items()}
        self.series: dict[str, SeriesDetector] = {}
        self.evaluators: dict[str, SloEvaluator] = {}
        self.correlator = Correlator(incidents, self.journeys)
        self.instances = InstanceWatch(detection.instance_gone)
        self._slices: dict[str, int] = {}  # journey -> slices judged (a cache of `series`)
        # what `slo_instances` said per signal route (its fields that matching reads)
        self._slo_routes: dict[tuple[Any, ...], list[str]] = {}

    def on_window(
        self,
        window_end: int,
        signals: Sequence[SignalWindow],
        edges: Iterable[tuple[str, str]] = (),
        lag_ns: int = 0,
    ) -> ScoutOutput:
        """Judge every signal of the window ending at `window_end`, then correlate; `lag_ns`: how
        far behind it windows may still arrive, so an instance that quiet is not yet gone."""
        out = ScoutOutput()
        # Keyed once (the sort key was built again in the loop); the position keeps the order
        # of equal keys that a stable sort would, and spares comparing the signals themselves.
        keyed = sorted((signal_key(s), s.window_end, i, s) for i, s in enumerate(signals))
        for key, _, _, sig in keyed:
            det = self.series.get(key)
            if det is None:
                if self._slice_over_cap(sig):
                    continue
                det = self.series[key] = SeriesDetector(self.detection)
            out.detections += det.on_signal(sig)
            instance = instance_of(sig)
            if instance is not None:
                self.instances.report(instance, key, sig.window_end)
            for slo_key in self._slo_keys(sig):
                ev = self.evaluators.get(slo_key)
                if ev is None:
                    ev = self.evaluators[slo_key] = SloEvaluator(self.slos, slo_key)
                out.detections += ev.on_signal(sig)
        for slo_key in sorted(self.evaluators):
            out.detections += self.evaluators[slo_key].flush(window_end)
        # A gone instance's series end: their anomalies clear and their state is let go (a
        # cluster's pods come and go; their series would otherwise pile up here).
        for key in self.instances.gone(window_end - lag_ns):
            ended = self.series.pop(key, None)
            if ended is not None:
                out.detections += ended.end(window_end)
        self._share_changes(out.detections)
        out.incidents = self.correlator.process(window_end, out.detections, edges)
        return out

    def _slo_keys(self, sig: SignalWindow) -> list[str]:
        """`slo_instances` of the signal, looked up once per route: matching every window
        against every objective (globs, span kinds) was a tenth of judging a span window."""
        route = (sig.kind, sig.service, sig.operation, sig.span_kind, sig.cuj, not sig.attributes)
        keys = self._slo_routes.get(route)
        if keys is None:
            keys = self._slo_routes[route] = slo_instances(sig, self.slos)
        return keys

    def _slice_over_cap(self, sig: SignalWindow) -> bool:
        """Whether a journey slice new to Scout is past `rates.max_slices` of its journey."""
        if sig.kind != "cuj" or not sig.attributes:
            return False
        cuj = sig.cuj or ""
        judged = self._slices.get(cuj)
        if judged is None:  # first asked since start or restore: count the series held
            judged = sum(1 for k in self.series if k.startswith(f"cuj//{cuj}{{"))
        if judged >= self.detection.rates.max_slices:
            return True
        self._slices[cuj] = judged + 1
        return False

    def _share_changes(self, detections: list[Detection]) -> None:
        """Tell the series a change concerns about the deploys and flag flips the spans showed.

        Versions and flags travel on spans, memory on metrics: without this a leak's trend would
        be fitted across the deploy that brought it. A journey's rates are told about changes of
        its services, so they are judged since the change too. Applies from the next point on.
        """
        changes: dict[str, ChangeEvent] = {}
        for det in detections:
            if isinstance(det.item, ChangeEvent) and det.item.change in ("deploy", "flag"):
                changes.setdefault(det.item.id, det.item)
        for event in sorted(changes.values(), key=lambda e: e.id):
            prefixes = [f"metric/{event.service}/"]
            # A change of a service on a journey: the journey's rates are judged since it.
            prefixes += [f"cuj//{c}" for c, svcs in self.journeys.items() if event.service in svcs]
            for key in sorted(k for k in self.series if k.startswith(tuple(prefixes))):
                self.series[key].on_change(event)

    def set_state(self, incident_id: str, state: str, at: int, note: str = "") -> list[Incident]:
        """Apply a later lifecycle state (see `Correlator.set_state`)."""
        return self.correlator.set_state(incident_id, state, at, note)

    def snapshot(self) -> dict[str, Any]:
        """Plain picklable state of every part."""
        return {
            "series": {k: v.snapshot() for k, v in sorted(self.series.items())},
            "evaluators": {k: v.snapshot() for k, v in sorted(self.evaluators.items())},
            "correlator": self.correlator.snapshot(),
            "instances": self.instances.snapshot(),
        }

    @classmethod
    def from_snapshot(
        cls,
        detection: DetectionConfig,
        slos: SlosConfig,
        incidents: IncidentsConfig,
        data: dict[str, Any],
        journeys: Mapping[str, Iterable[str]] | None = None,
    ) -> Scout:
        """Rebuild from `snapshot()` with the (possibly reloaded) configs."""
        out = cls(detection, slos, incidents, journeys)
        out.series = {
            k: SeriesDetector.from_snapshot(detection, v) for k, v in data["series"].items()
        }
        out.evaluators = {
            k: SloEvaluator.from_snapshot(slos, v) for k, v in data["evaluators"].items()
        }
        out.correlator = Correlator.from_snapshot(incidents, data["correlator"], out.journeys)
        out.instances = InstanceWatch.from_snapshot(
            detection.instance_gone, data.get("instances", [])
        )
        return out
