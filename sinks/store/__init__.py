"""Embedded stores the dashboard and the responders read: SQLite documents (and the span archive)."""

from sinks.store.sqlite import Store

__all__ = ["Store"]
