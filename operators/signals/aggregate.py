"""One decoded batch to its partials per (key, window), vectorised.

Per batch, spans are grouped by an integer code for (service, operation, version) and window, so
the cost per span is a few array operations (the group-bys compiled, `groups.py`), not a Python
object. Only the group loop (tens of groups per batch) runs in Python.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from operators.otlp.metrics import MetricBatch
from operators.otlp.span_kind import SPAN_KIND_SERVER
from operators.otlp.spans import SpanBatch
from operators.signals.batches import SpanView, span_view
from operators.signals.groups import ValueCounts, group_spans, group_stats, newest, value_counts
from operators.signals.partials import CujPartial, Exemplar, MetricPartial, Partial, SpanPartial
from operators.sketch import ZERO_BUCKET, QuantileSketch, mapping_for
from sre_space.records import series_name
from sre_space.settings import PipelineConfig


@dataclass(frozen=True, slots=True)
class StepMatcher:
    """A journey step: service, operation (prefix when it ends in '*'), attribute equalities."""

    name: str
    service: str
    operation: str
    attributes: tuple[tuple[str, str], ...]

    def matches_key(self, service: str, operation: str) -> bool:
        if service != self.service:
            return False
        if self.operation.endswith("*"):
            return operation.startswith(self.operation[:-1])
        return operation == self.operation


@dataclass(frozen=True, slots=True)
class MetricRole:
    """What a metric name feeds: a saturation signal's usage or limit."""

    signal: str
    role: str  # "usage" | "limit"
    ratio: bool = False
    filter: tuple[tuple[str, str], ...] = ()


# Pipeline signals of points set aside, per service: never judged as the service's own metrics.
INVALID_POINTS = "metric_points_invalid"
SERIES_OVERFLOW = "metric_series_overflow"


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """The compiled signal configuration used by the aggregator."""

    window_ns: int
    exemplars: int
    journeys: tuple[tuple[str, tuple[StepMatcher, ...]], ...]
    metric_roles: dict[str, tuple[MetricRole, ...]]
    accuracy: float = 0.005
    # every other gauge and sum: one signal per series unless its name matches `exclude`
    series: bool = True
    exclude: re.Pattern[str] | None = None
    state_attributes: frozenset[str] = frozenset()
    # journey -> the span attributes its counts are also sliced by (`Journey.slice_by`)
    slices: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: PipelineConfig) -> SignalSpec:
        """Compile the pipeline config once at start-up."""
        journeys = tuple(
            (
                name,
                tuple(
                    StepMatcher(s.name, s.service, s.operation, tuple(sorted(s.attributes.items())))
                    for s in j.steps
                ),
            )
            for name, j in sorted(config.journeys.items())
        )
        roles: dict[str, list[MetricRole]] = {}
        for sig, m in sorted(config.metrics.saturation.items()):
            flt = tuple(sorted(m.usage_filter.items()))
            for name in m.usage:
                roles.setdefault(name, []).append(MetricRole(sig, "usage", m.ratio, flt))
            for name in m.limit:
                roles.setdefault(name, []).append(MetricRole(sig, "limit", m.ratio))
        exclude = config.metrics.series.exclude
        return cls(
            window_ns=config.signals.window_seconds * 1_000_000_000,
            exemplars=config.signals.exemplars,
            journeys=journeys,
            metric_roles={k: tuple(v) for k, v in roles.items()},
            series=config.metrics.series.enabled,
            exclude=re.compile("|".join(fnmatch.translate(g) for g in exclude))
            if exclude
            else None,
            state_attributes=frozenset(config.metrics.series.state_attributes),
            slices={n: j.slice_by for n, j in sorted(config.journeys.items()) if j.slice_by},
        )

    def is_series(self, name: str) -> bool:
        """Whether a metric name outside the saturation mappings becomes series signals."""
        return self.series and not (self.exclude is not None and self.exclude.match(name))


def span_partials(batch: SpanBatch, spec: SignalSpec) -> list[Partial]:
    """Span and journey partials of one batch."""
    return view_partials(span_view([batch]), spec)


def view_partials(batch: SpanView, spec: SignalSpec) -> list[Partial]:
    """Span and journey partials of the batches in one view (`batches.span_view`)."""
    n = len(batch)
    if n == 0:
        return []
    codes, keys = batch.codes, batch.keys
    # (service, operation) groups over the interned triples
    pair_code: dict[tuple[str, str], int] = {}
    triple_to_pair = np.array([pair_code.setdefault((s, o), len(pair_code)) for s, o, _ in keys])
    pairs = list(pair_code)
    pair_of_span = triple_to_pair[codes]

    gids, ginv, wmin, width = group_spans(pair_of_span, batch.end_ns, spec.window_ns, len(pairs))
    ng = len(gids)

    err = batch.is_error
    dur_ns = batch.duration_ns
    dur_ms = dur_ns / 1e6
    counts, errors, max_ts, lo, hi = group_stats(ginv, ng, batch.end_ns, dur_ms, err)
    # Each group's sketch buckets (the zero bucket first), kept packed: a partial may cross to
    # another worker.
    buckets = value_counts(ginv, ng, mapping_for(spec.accuracy).index(dur_ms), ZERO_BUCKET)

    # Versions and kinds per group.
    # Within a group (one service and operation) the triples differ by version only, so each
    # triple code present stands for exactly one version.
    by_code = _split_dicts(value_counts(ginv, ng, codes))
    versions = [{keys[code][2]: count for code, count in d.items()} for d in by_code]
    kinds = _split_dicts(value_counts(ginv, ng, batch.kind.astype(np.int64)))

    flags = _flags_per_group(batch, ginv, ng)
    slowest = _top_per_group(ginv, dur_ns, None, batch.trace_ids_at, ng, spec)
    failing = _top_per_group(ginv, dur_ns, err, batch.trace_ids_at, ng, spec)

    out: list[Partial] = []
    for g in range(ng):
        pair, w = divmod(int(gids[g]), width)
        service, operation = pairs[pair]
        rows = slice(buckets.rows[g], buckets.rows[g + 1])
        sketch = QuantileSketch.of_packed(
            buckets.values[rows],
            buckets.counts[rows],
            int(counts[g]),
            float(lo[g]),
            float(hi[g]),
            spec.accuracy,
        )
        out.append(
            SpanPartial(
                service=service,
                operation=operation,
                window=wmin + w,
                max_ts_ns=int(max_ts[g]),
                count=int(counts[g]),
                errors=int(errors[g]),
                sketch=sketch,
                kinds=kinds[g],
                versions=versions[g],
                slowest=slowest[g],
                failing=failing[g],
                exemplars=spec.exemplars,
                flags=flags[g],
            )
        )
    out.extend(_journey_partials(batch, spec, pairs, pair_of_span))
    return out


def _flags_per_group(
    batch: SpanView, ginv: np.ndarray, ng: int
) -> list[dict[str, tuple[int, str]]]:
    """The feature flags of each group's newest server span (its `feature_flag` events).

    One span per group is read: flags change by deploy or config, not from one request to the
    next, and reading events is a per-span walk that the hot path cannot pay for every span.
    """
    out: list[dict[str, tuple[int, str]]] = [{} for _ in range(ng)]
    found = newest(ginv, ng, batch.end_ns, batch.kind, SPAN_KIND_SERVER)
    for g in np.flatnonzero(found >= 0).tolist():
        i = int(found[g])
        end_ns = int(batch.end_ns[i])
        for event in batch.events(i):
            if event.get("name") != "feature_flag":
                continue
            attrs = event.get("attributes") or {}
            key, variant = attrs.get("feature_flag.key"), attrs.get("feature_flag.variant")
            if key is not None and variant is not None:
                out[g][str(key)] = (end_ns, str(variant))
    return out


def _split_dicts(found: ValueCounts) -> list[dict[int, int]]:
    """Each group's {value: count} (one C-level dict build each)."""
    k, c = found.values.tolist(), found.counts.tolist()
    return [dict(zip(k[lo:hi], c[lo:hi], strict=True)) for lo, hi in itertools.pairwise(found.rows)]


def _top_per_group(
    ginv: np.ndarray,
    dur_ns: np.ndarray,
    mask: np.ndarray | None,
    trace_ids_at: Callable[[np.ndarray], list[bytes]],
    ng: int,
    spec: SignalSpec,
) -> list[list[Exemplar]]:
    """Each group's k longest spans of `mask` (None: of all), longest first, ties by trace id."""
    out: list[list[Exemplar]] = [[] for _ in range(ng)]
    k = spec.exemplars
    sel = _contenders(ginv, dur_ns, None if mask is None else np.flatnonzero(mask), ng, k)
    if sel.size == 0 or k <= 0:
        return out
    # Sort the selected spans by group, then by duration descending; take each group's first k.
    order = sel[_by_group_longest_first(ginv[sel], dur_ns[sel], ng)]
    g_sorted = ginv[order]
    d_sorted = dur_ns[order]
    starts = np.searchsorted(g_sorted, np.arange(ng), side="left").tolist()
    ends = np.searchsorted(g_sorted, np.arange(ng), side="right").tolist()
    lasts = []
    for g in range(ng):
        lo, hi = starts[g], ends[g]
        last = min(hi, lo + k)
        # Spans as long as the k-th compete on trace id too (the exemplars' total order), so a
        # request's top k is the same whichever requests are aggregated together.
        while lo < last < hi and d_sorted[last] == d_sorted[last - 1]:
            last += 1
        lasts.append(last)
    # Every group's candidates' trace ids in one look-up (one search of the view's batches).
    taken = np.array(lasts, dtype=np.int64) - np.array(starts, dtype=np.int64)
    before = np.cumsum(taken) - taken
    rows = order[np.arange(int(taken.sum())) + np.repeat(np.array(starts) - before, taken)]
    candidates = iter(zip(dur_ns[rows].tolist(), trace_ids_at(rows), strict=True))
    for g, size in enumerate(taken.tolist()):
        top = [(d, t.hex()) for d, t in itertools.islice(candidates, size)]
        out[g] = sorted(top, reverse=True)[:k]
    return out


def _contenders(
    ginv: np.ndarray, dur_ns: np.ndarray, sel: np.ndarray | None, ng: int, k: int
) -> np.ndarray:
    """The spans of `sel` (None: all) that can be among their group's k longest (ties
    included), so that only they are sorted.

    Dealt round-robin into k hands, each group's k hands' longest spans are k distinct spans: the
    shortest of them is at most the group's k-th longest, so nothing shorter can make the top k.
    """
    size = len(ginv) if sel is None else sel.size
    if k <= 0 or size <= 4 * k * ng:
        return np.arange(size) if sel is None else sel
    groups = ginv if sel is None else ginv[sel]
    dur = dur_ns if sel is None else dur_ns[sel]
    longest = np.full((k, ng), -1, dtype=np.int64)  # -1: an empty hand admits the whole group
    for hand in range(k):  # a hand's spans are every k-th, from its own first
        np.maximum.at(longest[hand], groups[hand::k], dur[hand::k])
    keep = dur >= longest.min(axis=0)[groups]
    return np.flatnonzero(keep) if sel is None else sel[keep]


def _by_group_longest_first(groups: np.ndarray, dur_ns: np.ndarray, ng: int) -> np.ndarray:
    """The order sorting by group, then duration descending (ties in any order)."""
    group_bits = max(1, (ng - 1).bit_length())
    dur_bits = 62 - group_bits
    if len(dur_ns) and int(dur_ns.max()) < (1 << dur_bits):
        # Both keys in one int64: one argsort is several times faster than a two-key lexsort.
        key = (groups.astype(np.int64) << dur_bits) | ((1 << dur_bits) - 1 - dur_ns)
        return np.argsort(key)
    return np.lexsort((-dur_ns, groups))


def _journey_partials(
    batch: SpanView,
    spec: SignalSpec,
    pairs: list[tuple[str, str]],
    pair_of_span: np.ndarray,
) -> Iterable[Partial]:
    if not spec.journeys:
        return []
    window = batch.end_ns // spec.window_ns
    out: list[Partial] = []
    for name, steps in spec.journeys:
        slice_by = spec.slices.get(name, ())
        # (window, slice) -> counts per step; the slice () is the whole journey
        per_window: dict[tuple[int, tuple[str, str] | None], list[int]] = {}
        max_ts: dict[tuple[int, tuple[str, str] | None], int] = {}
        for s_index, step in enumerate(steps):
            hits = _step_hits(batch, step, pairs, pair_of_span)
            if hits.size == 0:
                continue
            groups: list[tuple[tuple[str, str] | None, np.ndarray]] = [(None, hits)]
            for key in slice_by:
                values = np.array([_slice_value(batch.attribute(i, key)) for i in hits.tolist()])
                groups += [((key, str(v)), hits[values == v]) for v in np.unique(values) if v != ""]
            for slice_, rows in groups:
                wu, wc = np.unique(window[rows], return_counts=True)
                for w, c in zip(wu.tolist(), wc.tolist(), strict=True):
                    per_window.setdefault((w, slice_), [0] * len(steps))[s_index] += c
                    ts = int(batch.end_ns[rows][window[rows] == w].max())
                    max_ts[(w, slice_)] = max(max_ts.get((w, slice_), ts), ts)
        names = tuple(s.name for s in steps)
        for (w, slice_), counts in sorted(
            per_window.items(), key=lambda kv: (kv[0][0], kv[0][1] or ())
        ):
            out.append(CujPartial(name, w, max_ts[(w, slice_)], counts, names, slice_))
    return out


def _step_hits(
    batch: SpanView, step: StepMatcher, pairs: list[tuple[str, str]], pair_of_span: np.ndarray
) -> np.ndarray:
    """Indices of the spans of `batch` that match one journey step."""
    codes = [c for c, (svc, op) in enumerate(pairs) if step.matches_key(svc, op)]
    if not codes:
        return np.empty(0, dtype=np.int64)
    hits = np.flatnonzero(np.isin(pair_of_span, codes))
    if step.attributes:
        # Only the few spans that already match service+operation pay the attribute walk.
        hits = np.array(
            [
                i
                for i in hits.tolist()
                if all(str(batch.attribute(i, k)) == v for k, v in step.attributes)
            ],
            dtype=np.int64,
        )
    return hits


def metric_partials(batch: MetricBatch, spec: SignalSpec) -> list[Partial]:
    """Saturation partials, one partial per metric series, and counts of invalid points.

    A metric named in a saturation mapping feeds that signal (judged on utilization and its
    trend); every other gauge and sum is a series per (service, instance, point attributes)
    unless excluded. A non-finite value, or a negative one on a monotonic sum, cannot be
    aggregated: it is counted in the service's `metric_points_invalid` pipeline signal instead.
    """
    acc: dict[str, MetricPartial] = {}
    roles = spec.metric_roles
    series_of: dict[str, bool] = {}
    for i in range(len(batch)):
        name = batch.metric[i]
        ts = batch.ts_ns[i]
        w = ts // spec.window_ns
        svc = batch.service[i]
        value = batch.value[i]
        if not math.isfinite(value) or (batch.monotonic[i] and value < 0):
            _counted(acc, svc, INVALID_POINTS, w, ts)
            continue
        metric_roles = roles.get(name)
        if metric_roles:
            for role in metric_roles:
                if role.filter and any(
                    str(batch.attributes[i].get(k)) != v for k, v in role.filter
                ):
                    continue
                key = f"sat|{svc}|{role.signal}|{w}"
                part = acc.get(key)
                if part is None:
                    part = acc[key] = MetricPartial(
                        service=svc,
                        metric=role.signal,
                        window=w,
                        max_ts_ns=ts,
                        unit="1" if role.ratio else batch.unit[i],
                        is_sum=batch.is_sum[i],
                        saturation=True,
                        ratio=role.ratio,
                    )
                if role.role == "limit":
                    part.add_limit(batch.instance[i], ts, value)
                else:
                    part.add_usage(batch.instance[i], ts, value)
            continue
        wanted = series_of.get(name)
        if wanted is None:
            wanted = series_of[name] = spec.is_series(name)
        if not wanted:
            continue
        attrs = {
            k: _text(v) for k, v in batch.attributes[i].items() if k not in spec.state_attributes
        }
        if batch.instance_key[i]:
            attrs[batch.instance_key[i]] = batch.instance[i]
        key = f"{series_name(name, attrs)}|{svc}|{w}"
        part = acc.get(key)
        if part is None:
            part = acc[key] = MetricPartial(
                service=svc,
                metric=name,
                window=w,
                max_ts_ns=ts,
                unit=batch.unit[i],
                is_sum=batch.is_sum[i],
                attributes=attrs,
                temporality=batch.temporality[i],
            )
        part.add_usage("", ts, value)
    return [acc[k] for k in sorted(acc)]


def _counted(acc: dict[str, MetricPartial], svc: str, name: str, w: int, ts: int) -> None:
    key = f"pipeline|{svc}|{name}|{w}"
    part = acc.get(key)
    if part is None:
        part = acc[key] = MetricPartial(svc, name, w, ts, "", False, pipeline=True)
    part.count(ts)


def _slice_value(value: object) -> str:
    # A span without the attribute is in no slice of it (but in the whole journey).
    return "" if value is None else _text(value)


def _text(value: object) -> str:
    # Attribute values name the series: strings as they are, the rest as JSON (true, 3, [..]).
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
