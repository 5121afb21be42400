"""A closed window's merged partial to the SignalWindow record that leaves the flow."""

from __future__ import annotations

from operators.otlp.span_kind import KIND_NAMES
from operators.signals.partials import CujPartial, MetricPartial, Partial, SpanPartial
from sre_space.records import SignalWindow


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def finalize(partial: Partial, window_ns: int) -> SignalWindow:
    """The signal record of one key's window."""
    start_ns = partial.window * window_ns
    start, end = start_ns, start_ns + window_ns
    if isinstance(partial, SpanPartial):
        return _span(partial, start, end)
    if isinstance(partial, CujPartial):
        started, completed = partial.steps[0], partial.steps[-1]
        return SignalWindow(
            kind="cuj",
            cuj=partial.cuj,
            window_start=start,
            window_end=end,
            steps=list(partial.steps),
            started=started,
            completed=completed,
            count=started,
            conversion=_r(completed / started, 6) if started else None,
            attributes=dict([partial.slice]) if partial.slice else None,
        )
    return _metric(partial, start, end)


def _span(p: SpanPartial, start: int, end: int) -> SignalWindow:
    p50, p95, p99 = p.sketch.quantiles((0.5, 0.95, 0.99))
    kind = min(p.kinds.items(), key=lambda kv: (-kv[1], kv[0]))[0] if p.kinds else 0
    return SignalWindow(
        kind="span",
        service=p.service,
        operation=p.operation,
        window_start=start,
        window_end=end,
        count=p.count,
        errors=p.errors,
        error_rate=_r(p.errors / p.count, 6) if p.count else 0.0,
        p50_ms=_r(p50),
        p95_ms=_r(p95),
        p99_ms=_r(p99),
        max_ms=_r(p.sketch.max if p.count else None),
        span_kind=KIND_NAMES.get(kind, str(kind)),
        slowest_trace_ids=[t for _, t in sorted(p.slowest, reverse=True)],
        failing_trace_ids=[t for _, t in sorted(p.failing, reverse=True)],
        versions=dict(sorted(p.versions.items())),
        flags={k: v for k, (_, v) in sorted(p.flags.items())} or None,
    )


def _metric(p: MetricPartial, start: int, end: int) -> SignalWindow:
    if p.pipeline:
        # Points the pipeline set aside (invalid, or over the series cap): counted, never lost.
        return SignalWindow(
            kind="pipeline",
            service=p.service,
            metric=p.metric,
            window_start=start,
            window_end=end,
            count=p.n,
            value=float(p.n),
        )
    lasts = {inst: v for inst, (_, v) in p.last.items()}
    limits = {inst: v for inst, (_, v) in p.limit_last.items()}
    per_instance: dict[str, float] = {}
    utilization, limit = None, None
    if p.saturation:
        # Saturation is about the worst instance: its usage against its own limit.
        value = max(lasts.values()) if lasts else None
        if p.ratio:
            per_instance = dict(lasts)
        else:
            per_instance = {i: v / limits[i] for i, v in lasts.items() if limits.get(i)}
        utilization = max(per_instance.values()) if per_instance else None
        limit = max(limits.values()) if limits else None
    elif p.temporality == "delta":
        # Each point of a delta sum is the increase since the previous one: the window's sum.
        value = p.total_micro / 1_000_000 if p.n else None
    else:
        # A gauge or a cumulative sum: the series' newest point.
        value = max(lasts.values()) if lasts else None
    return SignalWindow(
        # The Collector's own metrics (OpenTelemetry's `otelcol_` namespace) are pipeline health.
        kind="pipeline" if p.metric.startswith("otelcol_") else "metric",
        service=p.service,
        metric=p.metric,
        window_start=start,
        window_end=end,
        count=p.n,
        value=_r(value, 6),
        min=_r(p.lo, 6) if p.n else None,
        max=_r(p.hi, 6) if p.n else None,
        mean=_r(p.total_micro / 1_000_000 / p.n, 6) if p.n else None,
        limit=_r(limit, 6),
        utilization=_r(utilization, 6),
        instances={i: round(u, 6) for i, u in sorted(per_instance.items())} or None,
        unit=p.unit or None,
        attributes=dict(sorted(p.attributes.items())) or None,
        temporality=p.temporality or None,
    )
