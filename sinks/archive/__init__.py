"""The span archive: Parquet files partitioned by event hour, for the Brain's deep span analysis."""

from sinks.archive.reader import scan_spans
from sinks.archive.writer import ArchiveSink, Retention, SpanArchive

__all__ = ["ArchiveSink", "Retention", "SpanArchive", "scan_spans"]
