"""Bytewax dataflow wiring: the Kafka flow (`main`), the embedded flow (`embedded`), replays
(`replay`), their inputs (`sources`, `queue_source`), signals (`build`), health and outputs."""
