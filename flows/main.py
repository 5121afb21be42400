"""The Kafka dataflow: `python -m bytewax.run flows.main` (settings from the environment).

Reads `otlp_spans` / `otlp_metrics`; writes `sre.signals`, `sre.deadletter`, `sre.anomalies`
and `sre.incidents`, and the state folder's store and span archive (`state_outputs`).
Scale with Bytewax's own `-w` (threads) and `-i/-a` (processes) options and Kafka partitions.
"""

from __future__ import annotations

import sys

from bytewax import operators as op
from bytewax.dataflow import Dataflow

from flows.build import build_signals
from flows.sources import kafka_end_offsets, kafka_input, kafka_partitions
from flows.state_outputs import attach_state_outputs
from operators.scout import build_scout
from operators.scout.stage import SOURCES
from sinks.outputs.kafka_out import to_kafka
from sre_space.settings import ConfigError, Settings, load_settings


def build_kafka_flow(settings: Settings | None = None) -> Dataflow:
    """The production flow over Kafka."""
    settings = settings or load_settings()
    flow = Dataflow("sre_space")
    deterministic = settings.deterministic_clock
    partitions = kafka_partitions(settings)  # one metadata request: the clock and the consumers
    raw, consumer_errors = kafka_input(
        flow, settings, tail=settings.kafka_tail, partitions=sum(map(len, partitions.values()))
    )
    streams = build_signals(
        flow,
        raw,
        settings.pipeline,
        deterministic_clock=settings.deterministic_clock,
        # The wall-clock heartbeat only means something when event time is the wall clock.
        live=settings.kafka_tail and not settings.deterministic_clock,
        end_offsets=kafka_end_offsets(settings),
        topics=(settings.spans_topic, settings.metrics_topic) if deterministic else (),
        partitions=partitions,
    )
    dead = op.merge("all_dead", streams.deadletters, consumer_errors)
    scout = build_scout(
        streams.signals,
        streams.edges,
        settings.pipeline,
        live=not settings.deterministic_clock,
        # Event time only: whichever topic's polls are read first, the other is waited for. A
        # live run pages on the newest signal instead.
        awaited=SOURCES if deterministic else (),
    )
    brokers = settings.kafka_bootstrap_servers.split(",")
    to_kafka("signals_out", streams.signals, brokers, settings.signals_topic)
    to_kafka("dead_out", dead, brokers, settings.deadletter_topic)
    to_kafka("anomalies_out", scout.detections, brokers, settings.anomalies_topic)
    to_kafka("incidents_out", scout.incidents, brokers, settings.incidents_topic)
    attach_state_outputs(streams, scout, dead, settings)
    return flow


def _flow_or_exit() -> Dataflow:
    try:
        return build_kafka_flow()
    except ConfigError as exc:
        # The message names every bad key with its path; a traceback above it only buries it.
        print(f"flows.main: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


# `python -m bytewax.run flows.main` looks for this; importing the module only builds the graph.
flow = _flow_or_exit()
