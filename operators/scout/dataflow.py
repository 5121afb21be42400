"""Scout in the dataflow: one stateful step over every closed signal window and learned edge.

All signals go to one key: Scout correlates across services, and there are only a few hundred
signals per window, so one worker holds it. The logic is `operators.scout.stage.ScoutStage`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax import operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from operators.scout.detect.events import AnomalyCleared, ChangeEvent
from operators.scout.stage import EdgesSeen, ScoutRecord, ScoutStage
from sre_space.records import Anomaly, Incident, SignalWindow
from sre_space.settings import PipelineConfig

SCOUT_KEY = "scout"


@dataclass(frozen=True, slots=True)
class ScoutStreams:
    """Scout's outputs: detections (anomalies, cleared, changes) and incident events."""

    detections: Stream[Anomaly | AnomalyCleared | ChangeEvent]
    incidents: Stream[Incident]


class _ScoutLogic(StatefulBatchLogic[Any, ScoutRecord, dict[str, Any]]):
    def __init__(self, stage: ScoutStage, live: bool) -> None:
        self.stage = stage
        self.live = live

    def on_batch(self, values: list[Any]) -> tuple[Iterable[ScoutRecord], bool]:
        return self.stage.on_batch(values), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[ScoutRecord], bool]:
        # Live runs: a quiet stream must not hold a complete window back forever.
        return self.stage.flush(), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[ScoutRecord], bool]:
        return self.stage.flush(), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if not self.live or not self.stage.pending:
            return None
        return datetime.now(UTC) + timedelta(seconds=self.stage.hold_ns / 1e9)

    def snapshot(self) -> dict[str, Any]:
        return self.stage.snapshot()


@operator
def _scout_step(
    step_id: str, up: KeyedStream[Any], builder: Callable[[Any], _ScoutLogic]
) -> KeyedStream[ScoutRecord]:
    # The step ids `op.stateful` gave it ("scout.stateful_batch"), so recovery state resumes.
    return op.stateful_batch("stateful_batch", up, builder)


def build_scout(
    signals: Stream[SignalWindow],
    edges: Stream[EdgesSeen],
    config: PipelineConfig,
    *,
    live: bool,
    awaited: tuple[str, ...] = (),
    wait_disorder: bool = False,
) -> ScoutStreams:
    """Add the Scout step behind the signal and edge streams; `awaited` names the sources
    (`operators.scout.stage.SOURCES`) read from separate inputs whose windows wait for each other;
    `wait_disorder`: hold each window for the disorder seen lately (replays)."""

    def builder(resume: dict[str, Any] | None) -> _ScoutLogic:
        stage = (
            ScoutStage(config, awaited=awaited, wait_disorder=wait_disorder)
            if resume is None
            else ScoutStage.from_snapshot(
                config, resume, awaited=awaited, wait_disorder=wait_disorder
            )
        )
        return _ScoutLogic(stage, live)

    items = op.merge("scout_in", signals, edges)
    keyed = op.key_on("scout_key", items, lambda _item: SCOUT_KEY)
    out = op.map("scout_unkey", _scout_step("scout", keyed, builder), lambda kv: kv[1])
    split = op.branch("scout_split", out, lambda r: isinstance(r, Incident))
    return ScoutStreams(detections=split.falses, incidents=split.trues)  # type: ignore[arg-type]
