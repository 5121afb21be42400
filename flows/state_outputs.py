"""Outputs under the state folder, shared by the Kafka flow and the embedded flow."""

from __future__ import annotations

from bytewax import operators as op
from bytewax.dataflow import Stream

from flows.build import FlowStreams
from operators.scout import ScoutStreams
from sinks.archive import ArchiveSink
from sinks.outputs.store_sink import StoreSink
from sre_space.records import DeadLetter
from sre_space.settings import Settings


def attach_state_outputs(
    streams: FlowStreams, scout: ScoutStreams, dead: Stream[DeadLetter], settings: Settings
) -> None:
    """The SQLite store (signals, dead letters, detections, incidents) and the span archive (with
    its retention)."""
    if settings.pipeline.archive.enabled:
        op.output(
            "archive_out",
            streams.decoded,
            ArchiveSink.from_config(settings.paths.spans, settings.pipeline),
        )
    op.output(
        "store_out",
        op.merge("to_store", streams.signals, dead, scout.detections, scout.incidents),
        StoreSink(settings.paths.db),
    )
