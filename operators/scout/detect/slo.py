"""SLO burn rates: multi-window, multi-burn-rate alerts (SRE Workbook, "Alerting on SLOs").

Each SLO instance (an SLO applied to one service, or to one journey) counts good and bad events
per signal window into sliding rings, one per alert window length. A rule fires when both its long
and its short window burn the error budget at least `burn_rate` times faster than sustainable:

    burn = (bad / (good + bad)) / (1 - objective)

Which windows count and which events are bad is `budget`'s (shared with the post-mortem and the
dashboard); latency's estimated bad events are rounded to whole requests here.

Window lengths are divided by `time_scale` (60: an hour of alerting in a minute) and never made
shorter than one signal window. Rings longer than 120 signal windows use 120 coarser buckets, so
the edges of a 3-day window are exact to 1/120 of its length.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from operators.scout.detect.budget import burn, events_and_bad, matches, subject
from operators.scout.detect.config import BurnAlert, SlosConfig, SloSpec
from operators.scout.detect.events import AnomalyCleared, Detection, anomaly_id
from sre_space.records import Anomaly, SignalWindow
from sre_space.timeutil import NS_PER_S

BUCKETS = 120
_SEVERITY_RANK = {"ticket": 1, "page": 2}


def slo_instances(sig: SignalWindow, config: SlosConfig) -> list[str]:
    """The SLO instance keys (`slo_name/subject`) a signal counts towards; route by these."""
    return [
        f"{name}/{subject(spec, sig)}"
        for name, spec in sorted(config.objectives.items())
        if spec.enabled and matches(spec, sig)
    ]


def good_bad(sig: SignalWindow, spec: SloSpec) -> tuple[int, int]:
    """Good and bad events of one signal window for one SLO (latency's estimate rounded)."""
    events, bad = events_and_bad(spec, sig)
    whole = round(bad)
    return events - whole, whole


def burn_rate(good: int, bad: int, objective: float) -> float:
    """How many times faster than sustainable the error budget burns (0 without events)."""
    return burn(good + bad, bad, objective)


class _Ring:
    """Good/bad counts of the last `length_ns`, in buckets of `width_ns`."""

    def __init__(self, length_ns: int, width_ns: int) -> None:
        self.length_ns = length_ns
        self.width_ns = width_ns
        self.buckets: dict[int, list[int]] = {}
        self.good = 0
        self.bad = 0

    @property
    def count(self) -> int:
        return math.ceil(self.length_ns / self.width_ns)

    def add(self, end_ns: int, good: int, bad: int) -> None:
        b = self.buckets.setdefault((end_ns - 1) // self.width_ns, [0, 0])
        b[0] += good
        b[1] += bad
        self.good += good
        self.bad += bad

    def totals(self, now_ns: int) -> tuple[int, int]:
        """Good and bad events of the buckets within the ring's length before `now_ns`.

        `now_ns` never goes back (it is the latest window end), so running sums suffice.
        """
        low = (now_ns - 1) // self.width_ns - self.count
        for idx in [i for i in self.buckets if i <= low]:
            g, b = self.buckets.pop(idx)
            self.good -= g
            self.bad -= b
        return self.good, self.bad


class SloEvaluator:
    """One SLO instance (`slo_name/subject`): burn-rate rings and the alert state.

    `on_signal` buffers the current window and evaluates a window once a later one starts;
    `flush(now)` evaluates the buffered window when the flow knows that window is complete.
    Emits `Detection`s of an `Anomaly` (detector `slo_burn`, signal `slo:<type>`, severity
    `page` or `ticket`, re-emitted with the same id when it escalates) and `AnomalyCleared`.
    """

    def __init__(self, config: SlosConfig, key: str) -> None:
        name, _, subject = key.partition("/")
        if name not in config.objectives:
            raise ValueError(
                f"unknown SLO {name!r} in key {key!r}; known: {sorted(config.objectives)}"
            )
        self.config = config
        self.key = key
        self.name = name
        self.subject = subject
        self.spec = config.objectives[name]
        self.alerts: tuple[BurnAlert, ...] = self.spec.alerts or config.alerts
        self.min_events = (
            self.spec.min_events if self.spec.min_events is not None else config.min_events
        )
        self.rings: dict[int, _Ring] = {}
        self.pending: dict[str, Any] | None = None
        self.active_id: str | None = None
        self.active_severity: str | None = None
        self.quiet = 0
        self.first_ns: int | None = None
        self.onset = 0
        self.windows: list[int] = []
        self.exemplars: deque[list[str]] = deque(maxlen=3)

    # ------------------------------------------------------------------ input

    def on_signal(self, sig: SignalWindow) -> list[Detection]:
        """Count one signal; evaluates the previous window first when this one is later."""
        out: list[Detection] = []
        end_ns = sig.window_end
        if self.pending is not None and end_ns > self.pending["end_ns"]:
            out = self._evaluate()
        good, bad = good_bad(sig, self.spec)
        if self.pending is None:
            self.pending = {
                "start": sig.window_start,
                "end": sig.window_end,
                "end_ns": end_ns,
                "len_ns": end_ns - sig.window_start,
                "good": 0,
                "bad": 0,
                "ids": [],
            }
        if end_ns < self.pending["end_ns"]:
            # A late window: count it where it belongs, it does not re-judge the past.
            self._rings(self.pending["len_ns"])
            for ring in self.rings.values():
                ring.add(end_ns, good, bad)
            return out
        self.pending["good"] += good
        self.pending["bad"] += bad
        if bad:
            # Exemplars only for windows with bad events (most have none: no lists built then).
            ids = list((sig.slowest_trace_ids if self.spec.type == "latency" else None) or [])
            ids += [i for i in (sig.failing_trace_ids or []) if i not in ids]
            self.pending["ids"] += [i for i in ids if i not in self.pending["ids"]]
        return out

    def flush(self, now: int) -> list[Detection]:
        """Evaluate the buffered window if it ended at or before `now` (event time)."""
        if self.pending is not None and self.pending["end_ns"] <= now:
            return self._evaluate()
        return []

    def burn_rates(self, now: int) -> dict[float, float]:
        """Current burn rate per (scaled) window length in seconds, for dashboards and tests."""
        now_ns = now
        out = {}
        for length, ring in sorted(self.rings.items()):
            g, b = ring.totals(now_ns)
            out[length / NS_PER_S] = burn_rate(g, b, self.spec.objective)
        return out

    # ------------------------------------------------------------------ evaluation

    def _rings(self, window_ns: int) -> None:
        for alert in self.alerts:
            for seconds in (alert.long, alert.short):
                length = max(int(seconds / self.config.time_scale * NS_PER_S), window_ns)
                if length not in self.rings:
                    width = max(window_ns, math.ceil(length / BUCKETS))
                    self.rings[length] = _Ring(length, width)

    def _length(self, seconds: float, window_ns: int) -> int:
        return max(int(seconds / self.config.time_scale * NS_PER_S), window_ns)

    def _evaluate(self) -> list[Detection]:
        p = self.pending
        assert p is not None
        self.pending = None
        self._rings(p["len_ns"])
        for ring in self.rings.values():
            ring.add(p["end_ns"], p["good"], p["bad"])
        if p["bad"]:
            self.exemplars.append(p["ids"])
        totals = {length: ring.totals(p["end_ns"]) for length, ring in self.rings.items()}
        start_ns = p["end_ns"] - p["len_ns"]
        self.first_ns = start_ns if self.first_ns is None else min(self.first_ns, start_ns)
        observed_ns = p["end_ns"] - self.first_ns

        firing: tuple[BurnAlert, float, float] | None = None
        for alert in self.alerts:
            g_long, b_long = totals[self._length(alert.long, p["len_ns"])]
            g_short, b_short = totals[self._length(alert.short, p["len_ns"])]
            if g_long + b_long < self.min_events:
                continue
            if observed_ns < self._length(alert.short, p["len_ns"]):
                # Right after a start the long window holds a few minutes at most; wait until
                # at least the short window is covered, or a cold start pages on a few errors.
                continue
            burn_long = burn_rate(g_long, b_long, self.spec.objective)
            burn_short = burn_rate(g_short, b_short, self.spec.objective)
            if burn_long >= alert.burn_rate and burn_short >= alert.burn_rate:
                rank = _SEVERITY_RANK[alert.severity]
                if firing is None or rank > _SEVERITY_RANK[firing[0].severity]:
                    firing = (alert, burn_long, burn_short)
        return self._transition(p, firing)

    def _transition(
        self, p: dict[str, Any], firing: tuple[BurnAlert, float, float] | None
    ) -> list[Detection]:
        if firing is None:
            if self.active_id is None:
                return []
            self.quiet += 1
            if self.quiet < self.config.clear_after:
                return []
            cleared = AnomalyCleared(
                id=self.active_id,
                detector="slo_burn",
                signal=f"slo:{self.spec.type}",
                at=p["end"],
                **self._subject(),
            )
            self.active_id = self.active_severity = None
            self.quiet = 0
            return [Detection(p["end"], cleared)]
        self.quiet = 0
        alert, burn_long, burn_short = firing
        escalated = (
            self.active_severity is not None
            and _SEVERITY_RANK[alert.severity] > _SEVERITY_RANK[self.active_severity]
        )
        if self.active_id is not None and not escalated:
            return []
        if self.active_id is None:
            kind = "cuj" if self.spec.type == "conversion" else "span"
            self.active_id = anomaly_id(
                (kind, self.subject, self.name), "slo_burn", f"slo:{self.spec.type}", p["start"]
            )
            self.onset = p["start"]
            self.windows = [p["start"]]
        elif p["start"] not in self.windows:
            self.windows.append(p["start"])
        self.active_severity = alert.severity
        ids: list[str] = []
        for batch in self.exemplars:
            ids += [i for i in batch if i not in ids]
        anomaly = Anomaly(
            id=self.active_id,
            detector="slo_burn",
            signal=f"slo:{self.spec.type}",
            kind="cuj" if self.spec.type == "conversion" else "span",
            onset=self.onset,
            observed=round(burn_long, 6),
            expected=alert.burn_rate,
            score=round(burn_long / alert.burn_rate, 6),
            windows=list(self.windows),
            exemplar_trace_ids=ids[:6],
            severity=alert.severity,
            detail=(
                f"SLO {self.name} ({self.spec.type} {self.spec.objective:.4%}) for {self.subject}: "
                f"burn {burn_long:.1f}x over {_fmt(alert.long)} and {burn_short:.1f}x over "
                f"{_fmt(alert.short)} >= {alert.burn_rate:g}x ({alert.severity})"
            ),
            **self._subject(),
        )
        return [Detection(p["end"], anomaly)]

    def _subject(self) -> dict[str, str]:
        if self.spec.type == "conversion":
            return {"cuj": self.subject}
        return {"service": self.subject}

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """Plain picklable state (the config is not part of it)."""
        return {
            "key": self.key,
            "rings": [
                [r.length_ns, r.width_ns, sorted([i, *v] for i, v in r.buckets.items())]
                for r in self.rings.values()
            ],
            "pending": None
            if self.pending is None
            else dict(self.pending, ids=list(self.pending["ids"])),
            "active_id": self.active_id,
            "active_severity": self.active_severity,
            "onset": self.onset,
            "windows": list(self.windows),
            "quiet": self.quiet,
            "first_ns": self.first_ns,
            "exemplars": [list(e) for e in self.exemplars],
        }

    @classmethod
    def from_snapshot(cls, config: SlosConfig, data: dict[str, Any]) -> SloEvaluator:
        """Rebuild from `snapshot()`."""
        out = cls(config, data["key"])
        for length, width, buckets in data["rings"]:
            ring = _Ring(length, width)
            for i, g, b in buckets:
                ring.buckets[i] = [g, b]
                ring.good += g
                ring.bad += b
            out.rings[length] = ring
        out.pending = None if data["pending"] is None else dict(data["pending"])
        out.active_id = data["active_id"]
        out.active_severity = data["active_severity"]
        out.onset = data["onset"]
        out.windows = list(data["windows"])
        out.quiet = data["quiet"]
        out.first_ns = data["first_ns"]
        out.exemplars.extend(list(e) for e in data["exemplars"])
        return out


def _fmt(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
