"""The span aggregator's group-bys: spans by (service, operation) pair and window, and per group
its counts, extremes and the distinct values of a column.

Compiled (`_groups.c`, one pass over the spans each where numpy made several: a fifth of the
aggregation) when built and SRE_PURE_PYTHON is not 1; else numpy. Both give the same arrays.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from operators.signals.dense import unique_counts, unique_inverse

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

_groups: Any = None
if os.environ.get("SRE_PURE_PYTHON") != "1":
    with contextlib.suppress(ImportError):
        _groups = importlib.import_module("operators.signals._groups")


class Groups(NamedTuple):
    """Spans grouped by (pair, window): `gids` sorted, each `pair * width + window - wmin`."""

    gids: Ints
    ginv: Ints  # each span's index into gids
    wmin: int
    width: int


class GroupStats(NamedTuple):
    counts: Ints
    errors: Ints
    max_ts: Ints  # newest end
    lo: Floats  # shortest duration
    hi: Floats  # longest duration


class ValueCounts(NamedTuple):
    """Per group its distinct values ascending and their counts: group g's are rows[g]:rows[g+1]."""

    values: Ints
    counts: Ints
    rows: list[int]


def _ints(data: bytes) -> Ints:
    return np.frombuffer(data, dtype=np.int64)


def group_spans(pair: Ints, end_ns: Ints, window_ns: int, n_pairs: int) -> Groups:
    """Each span's group by its pair (0 to n_pairs - 1) and its window, end_ns // window_ns."""
    if _groups is not None and len(pair):
        out = _groups.groups(pair, end_ns, window_ns, n_pairs)
        if out is not None:
            gids, ginv, wmin, width = out
            return Groups(_ints(gids), _ints(ginv), wmin, width)
    window = end_ns // window_ns
    wmin = int(window.min())
    width = int(window.max()) - wmin + 1
    gids, ginv = unique_inverse(pair * width + (window - wmin))
    return Groups(gids, ginv, wmin, width)


def group_stats(
    ginv: Ints, ng: int, end_ns: Ints, dur_ms: Floats, is_error: npt.NDArray[np.bool_]
) -> GroupStats:
    """Per group: its spans, failing spans, newest end and shortest and longest duration."""
    if _groups is not None:
        counts, errors, max_ts, lo, hi = _groups.group_stats(ginv, ng, end_ns, dur_ms, is_error)
        return GroupStats(
            _ints(counts),
            _ints(errors),
            _ints(max_ts),
            np.frombuffer(lo, dtype=np.float64),
            np.frombuffer(hi, dtype=np.float64),
        )
    max_ts = np.full(ng, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(max_ts, ginv, end_ns)
    lo = np.full(ng, np.inf)
    hi = np.full(ng, -np.inf)
    np.minimum.at(lo, ginv, dur_ms)
    np.maximum.at(hi, ginv, dur_ms)
    return GroupStats(
        np.bincount(ginv, minlength=ng).astype(np.int64),
        np.bincount(ginv, weights=is_error, minlength=ng).astype(np.int64),
        max_ts,
        lo,
        hi,
    )


def newest(ginv: Ints, ng: int, end_ns: Ints, kind: npt.NDArray[np.int8], of_kind: int) -> Ints:
    """Per group, the index of its newest span of kind `of_kind` (of equal ends, the last to
    arrive), or -1 where it has none."""
    if _groups is not None:
        return _ints(_groups.newest(ginv, ng, end_ns, kind, of_kind))
    found = np.full(ng, -1, dtype=np.int64)
    chosen = np.flatnonzero(kind == of_kind)
    if not len(chosen):
        return found
    end = end_ns[chosen]
    group = ginv[chosen]
    latest = np.full(ng, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(latest, group, end)
    last = chosen[end == latest[group]]
    found[ginv[last]] = last  # indexes ascend: among equals the last write wins
    return found


def value_counts(ginv: Ints, ng: int, values: Ints, lowest: int | None = None) -> ValueCounts:
    """Per group, its distinct `values` ascending with their counts. `lowest` (say, a sentinel
    far below the rest) is below every other value: counted apart, it costs no range."""
    if _groups is not None:
        sentinel = np.iinfo(np.int64).min if lowest is None else lowest
        out = _groups.value_counts(ginv, ng, values, sentinel)
        if out is not None:
            uniq, counts, rows = out
            return ValueCounts(_ints(uniq), _ints(counts), _ints(rows).tolist())
    if not len(values):
        return ValueCounts(values, np.zeros(0, dtype=np.int64), [0] * (ng + 1))
    keyed = values
    base = 0
    if lowest is not None:
        # the sentinel just below the others, so that the keys span their range only
        low = values == lowest
        base = int(values[~low].min()) - 1 if not low.all() else lowest
        keyed = np.where(low, base, values)
    vmin = int(keyed.min())
    span = int(keyed.max()) - vmin + 1
    uniq, counts = unique_counts(ginv * span + (keyed - vmin))
    rows = np.searchsorted(uniq // span, np.arange(ng + 1), side="left").tolist()
    found = uniq % span + vmin
    if lowest is not None:
        found[found == base] = lowest
    return ValueCounts(found, counts, rows)
