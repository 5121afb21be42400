"""Exemplar traces the span archive no longer holds, fetched from Jaeger (`SRE_JAEGER_URL`).

Scout keeps trace ids per window (the signals' failing and slowest traces, the anomalies'
exemplars) while the archive samples spans and ages them out. For the exemplars of an incident
with no span in the frame the Brain analyses, `JaegerExemplars` asks Jaeger for up to `limit` of
them and adds the traces that come back. Jaeger only ever adds evidence: every request is bounded
by the client's timeout, the whole look-up by `budget_s`, and the first error (Jaeger down or
broken) ends it, so an incident is never held up by Jaeger.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from sinks.brain.jaeger import JaegerClient, client_from_settings
from sre_space.timeutil import rfc3339_to_ns

Log = Callable[[str], None]
DEFAULT_LIMIT = 5
# Frames of fetched traces kept per process: the responders ask again every minute while the
# Brain is unsure, and a trace Jaeger returned once does not change.
CACHE_TRACES = 64


def _ns(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value:
        return rfc3339_to_ns(value)
    return None


def exemplar_trace_ids(
    anomalies: Iterable[Mapping[str, Any]],
    signals: Iterable[Mapping[str, Any]],
    services: Sequence[str] = (),
    window: tuple[int, int] | None = None,
) -> list[str]:
    """An incident's exemplar trace ids, best first and without duplicates.

    The anomalies' `exemplar_trace_ids` first, then the failing and then the slowest trace ids of
    the span signals (of `services` when given, starting in `window` when given). Records may be
    dicts from the store (times as RFC 3339 text) or `to_dict` output (times in ns).
    """
    rows = [r for r in signals if r.get("kind") == "span"]
    if services:
        rows = [r for r in rows if r.get("service") in set(services)]
    if window is not None:
        rows = [r for r in rows if window[0] <= (_ns(r.get("window_start")) or -1) < window[1]]
    rows.sort(key=lambda r: _ns(r.get("window_start")) or 0)
    ids: list[str] = []
    for a in anomalies:
        ids += list(a.get("exemplar_trace_ids") or [])
    for field in ("failing_trace_ids", "slowest_trace_ids"):
        for r in rows:
            ids += list(r.get(field) or [])
    seen: dict[str, None] = {}
    for t in ids:
        t = str(t).strip().lower()
        if t:
            seen.setdefault(t, None)
    return list(seen)


def missing_trace_ids(spans: pl.DataFrame, trace_ids: Iterable[str]) -> list[str]:
    """The ids (in order) of which `spans` holds no span."""
    held: set[str] = set()
    if "trace_id" in spans.columns and spans.height:
        held = {str(t).lower() for t in spans.get_column("trace_id").unique().to_list()}
    return [t for t in trace_ids if t.lower() not in held]


class JaegerExemplars:
    """Adds exemplar traces missing from a span frame, fetched from Jaeger's API v3."""

    def __init__(
        self,
        client: JaegerClient,
        log: Log,
        *,
        limit: int = DEFAULT_LIMIT,
        budget_s: float | None = None,
    ) -> None:
        self.client = client
        self.log = log
        self.limit = limit
        # Two requests that both time out is the longest a diagnosis waits on Jaeger by default.
        self.budget_s = 2 * client.timeout_s if budget_s is None else budget_s
        self._cache: OrderedDict[str, pl.DataFrame] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Any, log: Log, **kwargs: Any) -> JaegerExemplars | None:
        """The fallback when `SRE_JAEGER_URL` is set, else None."""
        client = client_from_settings(settings)
        return None if client is None else cls(client, log, **kwargs)

    def add_missing(self, spans: pl.DataFrame, trace_ids: Sequence[str]) -> pl.DataFrame:
        """`spans` plus the spans of up to `limit` of `trace_ids` it has none of, from Jaeger.

        Traces Jaeger does not hold are logged and skipped; an error (Jaeger unreachable,
        broken, too slow) is logged and ends the look-up, as does running out of `budget_s`.
        """
        wanted = missing_trace_ids(spans, trace_ids)[: self.limit]
        if not wanted:
            return spans
        deadline = time.monotonic() + self.budget_s
        found: list[pl.DataFrame] = []
        for i, tid in enumerate(wanted):
            cached = self._cache.get(tid)
            if cached is not None:
                found.append(cached)
                continue
            if time.monotonic() >= deadline:
                self.log(
                    f"exemplar traces: {len(wanted) - i} not fetched from Jaeger at "
                    f"{self.client.base_url}: the {self.budget_s:g} s budget is spent"
                )
                break
            result = self.client.trace(tid)
            if result.status == "ok" and result.data is not None:
                self._remember(tid, result.data)
                found.append(result.data)
                self.log(
                    f"exemplar trace {tid}: not in the span archive; "
                    f"{result.data.height} spans from Jaeger"
                )
            elif result.status == "not_found":
                self.log(f"exemplar trace {tid}: neither in the span archive nor in Jaeger")
            else:
                self.log(
                    f"exemplar trace {tid}: Jaeger error, the other exemplars are not "
                    f"fetched: {result.error}"
                )
                break
        if not found:
            return spans
        frames = [spans] if spans.width else []
        return pl.concat([*frames, *found], how="diagonal_relaxed")

    def _remember(self, trace_id: str, frame: pl.DataFrame) -> None:
        self._cache[trace_id] = frame
        while len(self._cache) > CACHE_TRACES:
            self._cache.popitem(last=False)
