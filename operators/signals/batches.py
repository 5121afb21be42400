"""Several decoded export requests as one set of columns for the aggregator.

Most of the aggregator's cost is per group (service, operation, window), not per span: with 512
spans per request (the SDK's batch size) a request has about as many groups as one of 8192 spans.
Aggregating a poll's worth of requests at once pays that cost once per poll. Only the columns the
aggregator reads are joined; names stay interned (one code per distinct triple), and the per-span
readers (events, attributes) dispatch to the request that holds the span.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from operators.otlp.spans import SpanBatch, joined_errors
from operators.signals.dense import unique_inverse


@dataclass(frozen=True, slots=True)
class SpanView:
    """The columns `span_partials` reads, over one or several batches."""

    batches: tuple[SpanBatch, ...]
    # first row of each batch in the joined columns, and the total as the last entry
    starts: npt.NDArray[np.int64]
    codes: npt.NDArray[np.int64]  # per span: index into `keys`
    keys: list[tuple[str, str, str]]  # (service, operation, version) per code
    kind: npt.NDArray[np.int8]
    end_ns: npt.NDArray[np.int64]
    duration_ns: npt.NDArray[np.int64]
    is_error: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.starts[-1])

    def trace_ids_at(self, rows: npt.NDArray[np.int64]) -> list[bytes]:
        """The trace ids of spans `rows` (the exemplars read a few; no list of them all is made)."""
        which = np.searchsorted(self.starts, rows, side="right") - 1
        local = (rows - self.starts[which]).tolist()
        batches = self.batches
        return [batches[b].trace_id_at(j) for b, j in zip(which.tolist(), local, strict=True)]

    def _locate(self, i: int) -> tuple[SpanBatch, int]:
        b = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.batches[b], i - int(self.starts[b])

    def events(self, i: int) -> list[dict[str, Any]]:
        batch, j = self._locate(i)
        return batch.events(j)

    def attribute(self, i: int, key: str) -> Any:
        batch, j = self._locate(i)
        return batch.attribute(j, key)


def span_view(batches: Sequence[SpanBatch]) -> SpanView:
    """Join `batches` (in order) into one view; codes are renumbered over the union of triples."""
    lengths = [len(b) for b in batches]
    if len(batches) == 1:
        batch = batches[0]
        codes, keys = triples(batch)
        kind, end, duration, errors = batch.kind, batch.end_ns, batch.duration_ns, batch.is_error
    else:
        # A poll's columns joined first, then what derives from them computed once: with 512
        # spans per request, doing it per request cost about as much as the aggregation.
        codes, keys = _joined_triples(batches) or _triples_each(batches)
        kind = np.concatenate([b.kind for b in batches])
        end = np.concatenate([b.end_ns for b in batches])
        duration = np.maximum(end - np.concatenate([b.start_ns for b in batches]), 0)
        errors = joined_errors(batches)
    return SpanView(
        batches=tuple(batches),
        starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        codes=codes,
        keys=keys,
        kind=kind,
        end_ns=end,
        duration_ns=duration,
        is_error=errors,
    )


Triples = tuple[npt.NDArray[np.int64], list[tuple[str, str, str]]]


def _triples_each(batches: Sequence[SpanBatch]) -> Triples:
    """`triples` of each batch, renumbered over the union in order of first appearance."""
    interned: dict[tuple[str, str, str], int] = {}
    codes = []
    for batch in batches:
        local, keys = triples(batch)
        remap = np.array([interned.setdefault(k, len(interned)) for k in keys], dtype=np.int64)
        codes.append(remap[local] if len(keys) else local)
    return np.concatenate(codes), list(interned)


def _joined_triples(batches: Sequence[SpanBatch]) -> Triples | None:
    """`_triples_each` of batches whose names the compiled decoder interned, from their codes:
    Python touches each batch's names only, not each triple. None when a batch has no codes."""
    seen: tuple[dict[str, int], dict[str, int], dict[str, int]] = ({}, {}, {})
    coded: list[tuple[npt.NDArray[np.int32], ...]] = []  # each batch's codes per span
    tables: list[tuple[npt.NDArray[np.int64], ...]] = []  # each batch's codes -> the poll's
    for batch in batches:
        parts = (
            (batch.svc_codes, batch.svc_names),
            (batch.op_codes, batch.op_names),
            (batch.ver_codes, batch.ver_names),
        )
        codes, table = [], []
        for ids, (local, names) in zip(seen, parts, strict=True):
            if local is None or names is None:
                return None
            codes.append(local)
            table.append(np.array([ids.setdefault(n, len(ids)) for n in names], dtype=np.int64))
        coded.append(tuple(codes))
        tables.append(tuple(table))
    counts = [len(b) for b in batches]
    total = sum(counts)
    if not total:
        return np.zeros(0, dtype=np.int64), []
    # Each span's triple in the poll's names as one int64, a batch at a time: gathers from the
    # batch's small tables, in place (joining the codes first, then shifting and gathering them
    # all, made three times the passes over the poll's spans: 85 against 30 ns a span).
    n_op, n_ver = len(seen[1]), len(seen[2])
    joined = np.empty(total, dtype=np.int64)
    at = 0
    for (svc, op, ver), (to_svc, to_op, to_ver), n in zip(coded, tables, counts, strict=True):
        if n:
            out = joined[at : at + n]
            np.take(to_svc, svc, out=out)
            out *= n_op
            out += to_op.take(op)
            out *= n_ver
            out += to_ver.take(ver)
            at += n
    uniq, inverse = unique_inverse(joined)
    # `_triples_each` numbers the triples in order of first appearance: batch by batch, and in a
    # batch by its (service, operation, version) codes (`triples` sorts them). So each distinct
    # triple ranks by its first span's batch, then by its codes in that batch.
    first = np.full(len(uniq), total, dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(total, dtype=np.int64))
    starts = np.cumsum([0, *counts])
    ranks = []
    first_batch = np.searchsorted(starts, first, "right") - 1
    for f, b in zip(first.tolist(), first_batch.tolist(), strict=True):
        (svc, op, ver), (_, to_op, to_ver), j = coded[b], tables[b], f - int(starts[b])
        within = (int(svc[j]) * len(to_op) + int(op[j])) * len(to_ver) + int(ver[j])
        ranks.append((b, within))
    order = sorted(range(len(uniq)), key=ranks.__getitem__)
    renumber = np.empty(len(uniq), dtype=np.int64)
    renumber[order] = np.arange(len(uniq), dtype=np.int64)
    services, operations, versions = (list(ids) for ids in seen)
    keys = []
    for code in uniq[order].tolist():
        rest, v = divmod(code, n_ver)
        s, o = divmod(rest, n_op)
        keys.append((services[s], operations[o], versions[v]))
    return renumber[inverse], keys


def joinable(batches: Sequence[SpanBatch], lateness_ns: int) -> bool:
    """Whether aggregating `batches` together marks the same spans late as one at a time.

    A window's partial is late when its newest span is older than the watermark, the newest
    event time seen for its key minus the lateness. One at a time, a request's partials can be
    late behind an earlier request of the same poll; joined, they are not (the joined partial
    carries the newest span of both). So join only when no request holds a span older than the
    newest of the requests before it minus the lateness, over every key at once (conservative).
    """
    return joinable_ends(((int(b.end_ns.min()), int(b.end_ns.max())) for b in batches), lateness_ns)


def joinable_ends(ends: Iterable[tuple[int, int]], lateness_ns: int) -> bool:
    """`joinable` of requests given by their oldest and newest span end."""
    newest: int | None = None
    for lo, hi in ends:
        if newest is not None and lo <= newest - lateness_ns:
            return False
        newest = hi if newest is None else max(newest, hi)
    return True


def triples(batch: SpanBatch) -> tuple[npt.NDArray[np.int64], list[tuple[str, str, str]]]:
    """A code per span for its (service, operation, version), and the triple of each code."""
    n = len(batch)
    if (
        batch.op_codes is not None
        and batch.op_names is not None
        and batch.svc_codes is not None
        and batch.svc_names is not None
        and batch.ver_codes is not None
        and batch.ver_names is not None
    ):
        # The compiled decoder interned the names already: combine its codes with numpy.
        n_op, n_ver = len(batch.op_names), len(batch.ver_names)
        raw = (batch.svc_codes.astype(np.int64) * n_op + batch.op_codes) * n_ver + batch.ver_codes
        uniq, codes = unique_inverse(raw)
        keys = []
        for c in uniq.tolist():
            rest, v = divmod(c, n_ver)
            s, o = divmod(rest, n_op)
            keys.append((batch.svc_names[s], batch.op_names[o], batch.ver_names[v]))
        return codes.astype(np.int64), keys
    # Otherwise intern in Python: one comprehension is the only per-span loop.
    interned: dict[tuple[str, str, str], int] = {}
    out = np.fromiter(
        (
            interned.setdefault(k, len(interned))
            for k in zip(batch.service, batch.operation, batch.service_version, strict=True)
        ),
        dtype=np.int64,
        count=n,
    )
    return out, list(interned)
