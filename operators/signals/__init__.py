"""Windowed signals: batches to mergeable partials, and closed windows to SignalWindow records."""

from operators.signals.aggregate import SignalSpec, metric_partials, span_partials
from operators.signals.finalize import finalize
from operators.signals.partials import (
    CujPartial,
    MetricPartial,
    Partial,
    SpanPartial,
    merge_partials,
)

__all__ = [
    "CujPartial",
    "MetricPartial",
    "Partial",
    "SignalSpec",
    "SpanPartial",
    "finalize",
    "merge_partials",
    "metric_partials",
    "span_partials",
]
