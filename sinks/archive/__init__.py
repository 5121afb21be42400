"""The span archive: Parquet files partitioned by event hour, for the Brain's deep span analysis."""

from sinks.archive.reader import scan_spans
from sinks.archive.writer import ArchiveSink, SpanArchive

__all__ = ["ArchiveSink", "SpanArchive", "scan_spans"]
