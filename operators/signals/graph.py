"""The service call graph learned from traces: caller -> callee edges seen in span batches.

A child span whose parent is in the same export request names an edge when the two spans belong to
different services. Collectors batch many services' spans together, so most calls are seen within
one request; the graph is stable, so a sample of requests is enough to learn it.
"""

from __future__ import annotations

from operators.otlp.spans import SpanBatch

Edge = tuple[str, str]


def call_edges(batch: SpanBatch) -> set[Edge]:
    """(caller service, callee service) for every cross-service parent link inside the batch."""
    owner = dict(zip(batch.span_id, batch.service, strict=True))
    edges: set[Edge] = set()
    for parent, service in zip(batch.parent_span_id, batch.service, strict=True):
        if parent:
            caller = owner.get(parent)
            if caller is not None and caller != service:
                edges.add((caller, service))
    return edges


def sampled(offset: int, every: int) -> bool:
    """Whether the request at `offset` is one the graph learns from (deterministic)."""
    return every <= 1 or offset % every == 0
