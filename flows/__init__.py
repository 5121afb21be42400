"""Bytewax dataflow wiring: the Kafka flow, replays of recordings and the embedded flow."""
