"""The embedded dataflow: OTLP from an in-process queue instead of Kafka, same signals and Scout.

`sre-space demo` and `sre-space drill` run it when no broker is configured; its outputs are the
state folder's store and span archive, where the responders and the dashboard read them.
"""

from __future__ import annotations

from bytewax import operators as op
from bytewax.dataflow import Dataflow

from flows.build import build_signals
from flows.queue_source import QueueSource
from flows.state_outputs import attach_state_outputs
from operators.scout import build_scout
from sre_space.settings import Settings


def build_embedded_flow(
    settings: Settings, source: QueueSource, *, wall_clock: bool = True
) -> Dataflow:
    """Queue in, store and archive out (event-time windows, Scout).

    `wall_clock`: the shop's event time is the wall clock (a real-time demo), so the pipeline's
    health heartbeat (watermark delay) means something; a simulated clock turns it off.
    """
    flow = Dataflow("sre_space_embedded")
    raw = op.input("shop", flow, source)
    # Event time only: the shop's clock may run faster than the wall clock (--speed).
    streams = build_signals(flow, raw, settings.pipeline, deterministic_clock=True, live=wall_clock)
    scout = build_scout(streams.signals, streams.edges, settings.pipeline, live=False)
    attach_state_outputs(streams, scout, streams.deadletters, settings)
    return flow
