"""Bytewax sinks for the flow's records: Kafka topics, the SQLite store, JSON-lines files."""
