"""The SQLite store every part reads (`sqlite.Store`), and the incident tables' one writer
(`incidents`: Scout's events and the responders' moves, applied by the lifecycle's rules)."""

from sinks.store.sqlite import Store

__all__ = ["Store"]
