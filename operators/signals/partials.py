"""Mergeable partial aggregates per key and event-time window.

A partial is what one export request contributes to one (key, window). Partials merge exactly and
in any order (sums, sketch bucket counts, top-k by a total order, last-by-timestamp), so one worker
or many, one message or a thousand, give the same window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operators.sketch import QuantileSketch
from sre_space.records import series_name

# (duration_ns, trace id hex): a total order, so top-k is the same whatever the merge order
Exemplar = tuple[int, str]
# (timestamp ns, value): "last" is the largest pair, ties broken by value
Point = tuple[int, float]


def _top(a: list[Exemplar], b: list[Exemplar], k: int) -> list[Exemplar]:
    # Inputs hold at most k items each: sorting the union beats a heap at this size.
    return sorted(set(a).union(b), reverse=True)[:k]


@dataclass(slots=True)
class SpanPartial:
    """Request count, errors, latency sketch and exemplars of one (service, operation)."""

    service: str
    operation: str
    window: int
    max_ts_ns: int
    count: int
    errors: int
    sketch: QuantileSketch
    kinds: dict[int, int]
    versions: dict[str, int]
    slowest: list[Exemplar]
    failing: list[Exemplar]
    exemplars: int = 3
    # flag key -> (end_ns, variant) of the newest server span that evaluated it
    flags: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"span|{self.service}|{self.operation}"

    def merge(self, other: SpanPartial) -> SpanPartial:
        """Fold `other` into self (in place) and return self."""
        self.max_ts_ns = max(self.max_ts_ns, other.max_ts_ns)
        self.count += other.count
        self.errors += other.errors
        self.sketch.merge(other.sketch)
        for kind, c in other.kinds.items():
            self.kinds[kind] = self.kinds.get(kind, 0) + c
        for ver, c in other.versions.items():
            self.versions[ver] = self.versions.get(ver, 0) + c
        self.slowest = _top(self.slowest, other.slowest, self.exemplars)
        self.failing = _top(self.failing, other.failing, self.exemplars)
        for flag, seen in other.flags.items():
            # The newest evaluation wins; ties by variant, so the merge order never matters.
            if flag not in self.flags or seen > self.flags[flag]:
                self.flags[flag] = seen
        return self


@dataclass(slots=True)
class CujPartial:
    """How many spans matched each step of one journey."""

    cuj: str
    window: int
    max_ts_ns: int
    steps: list[int]
    step_names: tuple[str, ...] = ()
    # (attribute, value) of one slice of the journey (`Journey.slice_by`); None: the whole journey
    slice: tuple[str, str] | None = None

    @property
    def key(self) -> str:
        if self.slice is None:
            return f"cuj|{self.cuj}"
        return f"cuj|{series_name(self.cuj, dict([self.slice]))}"

    def merge(self, other: CujPartial) -> CujPartial:
        self.max_ts_ns = max(self.max_ts_ns, other.max_ts_ns)
        self.steps = [a + b for a, b in zip(self.steps, other.steps, strict=True)]
        return self


@dataclass(slots=True)
class MetricPartial:
    """Points of one metric series, one saturation signal, or points the pipeline set aside.

    A series (`attributes` tell it apart) keeps its own last point, min/max/mean and, for a delta
    sum, the total of its points. A saturation signal keeps usage and limit per instance, so that
    utilization is the worst instance's usage / its own limit. With `pipeline` the partial only
    counts points (invalid ones, or points of series over the per-service cap).
    """

    service: str
    metric: str
    window: int
    max_ts_ns: int
    unit: str
    is_sum: bool
    n: int = 0
    # sum in micro-units as an int: integer addition is associative, floats are not
    total_micro: int = 0
    lo: float = float("inf")
    hi: float = float("-inf")
    last: dict[str, Point] = field(default_factory=dict)
    limit_last: dict[str, Point] = field(default_factory=dict)
    saturation: bool = False
    ratio: bool = False
    attributes: dict[str, str] = field(default_factory=dict)
    temporality: str = ""
    pipeline: bool = False

    @property
    def key(self) -> str:
        if self.pipeline:
            return f"pipeline|{self.service}|{self.metric}"
        return f"metric|{self.service}|{series_name(self.metric, self.attributes)}"

    def add_usage(self, instance: str, ts_ns: int, value: float) -> None:
        self.n += 1
        self.total_micro += round(value * 1_000_000)
        self.lo = min(self.lo, value)
        self.hi = max(self.hi, value)
        self.max_ts_ns = max(self.max_ts_ns, ts_ns)
        prev = self.last.get(instance)
        if prev is None or (ts_ns, value) > prev:
            self.last[instance] = (ts_ns, value)

    def add_limit(self, instance: str, ts_ns: int, value: float) -> None:
        self.max_ts_ns = max(self.max_ts_ns, ts_ns)
        prev = self.limit_last.get(instance)
        if prev is None or (ts_ns, value) > prev:
            self.limit_last[instance] = (ts_ns, value)

    def count(self, ts_ns: int, points: int = 1) -> None:
        """Points the pipeline set aside (a `pipeline` partial)."""
        self.n += points
        self.max_ts_ns = max(self.max_ts_ns, ts_ns)

    def merge(self, other: MetricPartial) -> MetricPartial:
        self.n += other.n
        self.total_micro += other.total_micro
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)
        self.max_ts_ns = max(self.max_ts_ns, other.max_ts_ns)
        for inst, p in other.last.items():
            if inst not in self.last or p > self.last[inst]:
                self.last[inst] = p
        for inst, p in other.limit_last.items():
            if inst not in self.limit_last or p > self.limit_last[inst]:
                self.limit_last[inst] = p
        return self


Partial = SpanPartial | CujPartial | MetricPartial


def merge_partials(a: Partial | None, b: Partial) -> Partial:
    """Fold for Bytewax windows: the first partial seeds the accumulator."""
    if a is None:
        return b
    return a.merge(b)  # type: ignore[arg-type]  # keys are per family, so types always match
