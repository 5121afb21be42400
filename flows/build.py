"""The dataflow: raw OTLP messages -> decoded batches -> partials -> event-time windows -> signals.

Wiring only: every step calls a pure function from `operators`; inputs and outputs are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from bytewax import operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators import windowing as win

from flows.clock import AlignedClock
from flows.health import EndOffsets, build_health
from flows.tuning import tune_process
from operators.otlp.errors import DecodeLimits
from operators.otlp.messages import Decoded, RawMessage, decode_poll, span_batches
from operators.scout import EdgesSeen, edges_seen
from operators.signals import (
    CujPartial,
    Partial,
    SignalSpec,
    SpanPartial,
    finalize,
    merge_partials,
    metric_partials,
)
from operators.signals.aggregate import view_partials
from operators.signals.batches import joinable_ends, span_view
from operators.signals.graph import call_edges, sampled
from operators.signals.limit import SeriesLimit
from operators.signals.partials import MetricPartial
from sre_space.records import DeadLetter, SignalWindow
from sre_space.settings import PipelineConfig
from sre_space.timeutil import NS_PER_S

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FlowStreams:
    """The streams a caller attaches outputs to."""

    signals: Stream[SignalWindow]
    deadletters: Stream[DeadLetter]
    decoded: Stream[Decoded]
    edges: Stream[EdgesSeen]


def partials_of(
    poll: list[Decoded | DeadLetter], spec: SignalSpec, lateness_ns: int
) -> list[Partial]:
    """All partials of one poll's decoded requests: their spans aggregated together when that
    cannot change what is late (`joinable`), else request by request."""
    requests = [d for d in poll if isinstance(d, Decoded) and d.span_count()]
    out: list[Partial] = []
    if requests and joinable_ends((d.end_range() for d in requests), lateness_ns):
        # the poll's spans in as few batches as they came (a batch per joint walk's requests)
        out.extend(view_partials(span_view(span_batches(requests)), spec))
    else:
        for request in requests:
            assert request.spans is not None
            out.extend(view_partials(span_view([request.spans]), spec))
    for d in poll:
        if isinstance(d, Decoded) and d.metrics is not None:
            out.extend(metric_partials(d.metrics, spec))
    return out


def sourced_partials(
    poll: list[Decoded | DeadLetter], spec: SignalSpec, lateness_ns: int
) -> list[Sourced]:
    """`partials_of` a poll, each with the poll's source ("topic:partition"): one source per poll,
    as a source partition polls one Kafka partition (or one file)."""
    first = next((d for d in poll if isinstance(d, Decoded)), None)
    if first is None:
        return []
    source = f"{first.source}:{first.partition}"
    return [(source, p) for p in partials_of(poll, spec, lateness_ns)]


def _each(poll: list[Decoded | DeadLetter]) -> list[Decoded | DeadLetter]:
    return poll


# A partial and the source it came from, for the windows' clock (`operators.signals.clock`).
Sourced = tuple[str, Partial]


def late_signal(partial: Partial, window_ns: int) -> SignalWindow:
    """A partial that arrived after its window closed, counted as a pipeline signal."""
    start = partial.window * window_ns
    n = (
        partial.count
        if isinstance(partial, SpanPartial)
        else (partial.steps[0] if isinstance(partial, CujPartial) else partial.n)
    )
    name = partial.key
    return SignalWindow(
        kind="pipeline",
        metric="late",
        service=name,
        window_start=start,
        window_end=start + window_ns,
        count=n,
        late=n,
    )


def decode_limits(config: PipelineConfig, archived: bool) -> DecodeLimits:
    """The decoder's bounds; with `archived`, the archive's selected attributes, whose text the
    compiled decoder then extracts in its one walk over the spans."""
    return DecodeLimits(
        config.signals.max_message_bytes,
        config.signals.max_attribute_bytes,
        tuple(config.signals.selected_attributes) if archived else None,
    )


def build_signals(
    flow: Dataflow,
    raw: Stream[list[RawMessage]],
    config: PipelineConfig,
    *,
    deterministic_clock: bool,
    live: bool = False,
    end_offsets: EndOffsets | None = None,
    topics: tuple[str, ...] = (),
    partitions: Mapping[str, tuple[str, ...]] | None = None,
    archived: bool | None = None,
) -> FlowStreams:
    """Add decode, aggregation and windowing steps behind `raw` (one item per poll).

    With `deterministic_clock` the watermark moves only with event time (replays and backtests:
    same input, same output); otherwise it also advances with the system clock so quiet keys
    still close their windows in a live run. `live` adds the wall-clock health heartbeat
    (watermark delay, and consumer lag when `end_offsets` can ask the broker); `topics` names
    Kafka topics whose pipeline signals wait for each other (event time only), `partitions` the
    sources ("topic:N") each topic's windows wait for from the start. `archived`: the decoded
    spans go to the span archive (None: when `config.archive.enabled`), so the decoder extracts
    the archive's text columns in its walk. Building a flow also tunes the process's GC and
    allocator (`flows.tuning`).
    """
    tune_process()
    spec = SignalSpec.from_config(config)
    limits = decode_limits(config, config.archive.enabled if archived is None else archived)
    window_ns = spec.window_ns

    polls = op.map("decode", raw, partial(decode_poll, limits=limits))
    decoded = op.flat_map("requests", polls, _each)
    split = op.branch("split_dead", decoded, lambda d: isinstance(d, Decoded))
    ok: Stream[Decoded] = split.trues  # type: ignore[assignment]
    dead: Stream[DeadLetter] = split.falses  # type: ignore[assignment]

    lateness_ns = config.signals.lateness_seconds * NS_PER_S
    parts = op.flat_map(
        "partials", polls, partial(sourced_partials, spec=spec, lateness_ns=lateness_ns)
    )
    parts = _series_cap(parts, config, window_ns)
    keyed = op.key_on("key", parts, lambda p: p[1].key)

    clock = _event_clock(config, deterministic_clock, partitions or {})
    windower = win.TumblingWindower(
        length=timedelta(seconds=config.signals.window_seconds), align_to=EPOCH
    )
    windows: win.WindowOut[Sourced, Partial | None] = win.fold_window(
        "windows",
        keyed,
        clock,
        windower,
        builder=_no_partial,
        folder=_fold,
        merger=_merge_windows,
        ordered=False,
    )
    closed = op.map("finalize", windows.down, lambda kv: _finalize(kv[1][1], window_ns))
    late = op.map("late", windows.late, lambda kv: late_signal(kv[1][1][1], window_ns))
    health = build_health(ok, dead, window_ns, live=live, end_offsets=end_offsets, awaited=topics)
    signals = op.merge("signals", closed, late, health)
    every = config.signals.graph_sample_every
    edges = op.filter_map(
        "edges",
        ok,
        lambda d: (
            # sampled first: a request decoded with its poll makes its own batch when read
            _edges_of(d, window_ns) if sampled(d.offset, every) and d.spans is not None else None
        ),
    )
    return FlowStreams(signals=signals, deadletters=dead, decoded=ok, edges=edges)


def _series_cap(parts: Stream[Sourced], config: PipelineConfig, window_ns: int) -> Stream[Sourced]:
    """Metric series partials through a per-service cap (`operators.signals.limit`)."""
    series = op.branch(
        "series_split",
        parts,
        lambda p: isinstance(p[1], MetricPartial) and not (p[1].saturation or p[1].pipeline),
    )
    cfg = config.metrics.series
    idle_ns = int(cfg.idle * NS_PER_S)

    def mapper(limit: SeriesLimit | None, item: Sourced) -> tuple[SeriesLimit, list[Sourced]]:
        # The state is the object itself (Bytewax pickles it at snapshots only).
        limit = limit or SeriesLimit(cfg.max_per_service, idle_ns, window_ns)
        source, part = item
        return limit, [(source, p) for p in limit.admit(part)]

    keyed = op.key_on("series_service", series.trues, _service_of)
    capped = op.stateful_map("series_cap", keyed, mapper)
    admitted = op.flat_map("series_unkey", capped, lambda kv: kv[1])
    return op.merge("series_capped", series.falses, admitted)


def _service_of(item: Sourced) -> str:
    assert isinstance(item[1], MetricPartial)
    return item[1].service


def _no_partial() -> Partial | None:
    return None


def _fold(acc: Partial | None, item: Sourced) -> Partial:
    return merge_partials(acc, item[1])


def _merge_windows(a: Partial | None, b: Partial | None) -> Partial | None:
    # Tumbling windows never merge; Bytewax still requires the function.
    return b if a is None else (a if b is None else merge_partials(a, b))


def _finalize(acc: Partial | None, window_ns: int) -> SignalWindow:
    # A window exists only once a partial arrived, so its accumulator is never empty.
    assert acc is not None
    return finalize(acc, window_ns)


def _ts_ns(partial: Partial) -> int:
    return partial.max_ts_ns


def _event_clock(
    config: PipelineConfig, deterministic: bool, partitions: Mapping[str, tuple[str, ...]]
) -> AlignedClock[Partial]:
    """Event-time clock: each key's watermark waits for the slowest partition it hears from, and
    `deterministic` keeps the system clock out of it entirely (windows close on data or at the
    end of input: replays give the same output however fast they run)."""
    return AlignedClock(
        _ts_ns,
        timedelta(seconds=config.signals.lateness_seconds),
        max_skew_ns=config.signals.partition_skew_seconds * NS_PER_S,
        awaited=partitions,
        deterministic=deterministic,
    )


def _edges_of(decoded: Decoded, window_ns: int) -> EdgesSeen | None:
    assert decoded.spans is not None
    found = call_edges(decoded.spans)
    if not found:
        return None
    end = (int(decoded.spans.end_ns.max()) // window_ns + 1) * window_ns
    return edges_seen(end, found)
