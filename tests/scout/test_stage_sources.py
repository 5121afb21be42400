"""Scout's stage judges the same windows whatever the interleaving of the trace and metric polls.

Over Kafka the two kinds come from different topics, read 64 messages a poll: a poll of metric
exports can cover ten minutes where one of span exports covers one. The stage that awaits both
(a deterministic-clock run over Kafka) must give the same detections and incidents for every
such interleaving.
"""

from __future__ import annotations

from typing import Any

from operators.scout.stage import SOURCES, EdgesSeen, ScoutStage, edges_seen
from sre_space.records import Incident, SignalWindow
from sre_space.settings import load_pipeline_config
from tests.scout.synth import Fault, Shop

POLL = 64  # windows a metric poll can cover
Item = SignalWindow | EdgesSeen


def _windows() -> list[tuple[list[Item], list[Item]]]:
    """Per window: (edges and span/journey/pipeline signals, metric signals)."""
    faults = [Fault("latency", "database", 150, magnitude=6.0), Fault("leak", "payment", 170)]
    out: list[tuple[list[Item], list[Item]]] = []
    for end, sigs, edges in Shop(seed=7, faults=faults).windows(260):
        traces: list[Item] = [edges_seen(end, edges)] if edges else []
        traces += [s for s in sigs if s.kind != "metric"]
        out.append((traces, [s for s in sigs if s.kind == "metric"]))
    return out


def _in_step(windows: list[tuple[list[Item], list[Item]]]) -> list[Item]:
    return [item for traces, metrics in windows for item in traces + metrics]


def _ahead(windows: list[tuple[list[Item], list[Item]]], metrics_first: bool) -> list[Item]:
    """Each block's signals of one kind arrive before any of the other kind's."""
    out: list[Item] = []
    for lo in range(0, len(windows), POLL):
        block = windows[lo : lo + POLL]
        traces = [t for traces, _ in block for t in traces]
        metrics = [m for _, metrics in block for m in metrics]
        out += metrics + traces if metrics_first else traces + metrics
    return out


def _run(items: list[Item], gate: bool) -> list[Any]:
    stage = ScoutStage(load_pipeline_config(), awaited=SOURCES if gate else ())
    out: list[Any] = []
    for item in items:
        out += stage.on_edges(item) if isinstance(item, EdgesSeen) else stage.on_signal(item)
    return out + stage.flush()


def test_the_gated_stage_gives_the_same_output_for_every_interleaving() -> None:
    windows = _windows()
    reference = _run(_in_step(windows), gate=True)
    incidents = [r for r in reference if isinstance(r, Incident) and r.event == "opened"]
    assert incidents, "the faults must open an incident"
    assert _run(_ahead(windows, metrics_first=True), gate=True) == reference
    assert _run(_ahead(windows, metrics_first=False), gate=True) == reference


def test_without_the_gate_a_metric_poll_ahead_changes_the_verdicts() -> None:
    # Why the gate exists: the span signals of a block all arrive as stragglers.
    windows = _windows()
    assert _run(_ahead(windows, metrics_first=True), gate=False) != _run(
        _in_step(windows), gate=False
    )
