"""`SeriesDetector`: all per-series detection for one SignalWindow key, with explicit state.

Put one in a Bytewax `stateful_flat_map` keyed by `signal_key(sig)`:

    def mapper(state, sig):
        det = state or SeriesDetector(detection_cfg)
        return det, det.on_signal(sig)

It emits `Detection(at=window_end, item=...)` with `item` an `Anomaly` (when a field's anomaly
starts), an `AnomalyCleared` (when it ends) or a `ChangeEvent` (deploy, restart, flag).
Only event time is used: the signal's window bounds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from functools import lru_cache
from typing import Any

from operators.scout.detect.baseline import RateBaseline, RobustBaseline, Verdict
from operators.scout.detect.changes import ChangeTracker
from operators.scout.detect.config import DetectionConfig, SeriesRule
from operators.scout.detect.events import AnomalyCleared, ChangeEvent, Detection, anomaly_id
from operators.scout.detect.forecast import Forecaster
from operators.scout.detect.persistence import Streak
from operators.scout.detect.plan import FieldPlan, plan_key
from operators.scout.detect.reports import (
    QUANTILE_FIELDS,
    anomaly_record,
    cleared,
    exemplars_of,
    trend_detail,
)
from operators.scout.detect.saturation import FreshInstances, TrendToLimit
from sre_space.records import SignalWindow
from sre_space.timeutil import NS_PER_S, ns_to_datetime

# A quantile says something once at least one request lies beyond it: p95 needs 20, p99 100.
_MIN_COUNT = {"p50_ms": 2, "p95_ms": 20, "p99_ms": 100, "max_ms": 1}
_DETECTOR = {"robust": "baseline", "binomial": "significance", "threshold": "threshold"}


def signal_key(sig: SignalWindow) -> str:
    """The routing key of a signal's series: `kind/service/name`."""
    kind, service, name = sig.key
    return f"{kind}/{service}/{name}"


class _FieldState:
    """State of one judged field of one series."""

    def __init__(self, streak: Streak) -> None:
        self.streak = streak
        self.robust: RobustBaseline | None = None
        self.rate: RateBaseline | None = None
        self.model: Forecaster | None = None
        self.exemplars: deque[list[str]] = deque(maxlen=streak.n)
        self.last: tuple[float, float] = (0.0, 0.0)  # (observed, expected) at the last verdict
        self.score = 0.0
        # The active anomaly is "info": only a pooled test saw it, no single point (see
        # `_forecast_field`).
        self.subtle = False
        self.unlearned = 0
        # (successes, trials, windows) pooled since the last change of the journey (None: none)
        self.since_change: list[int] | None = None


class SeriesDetector:
    """Baselines, rate significance, saturation trend and change events for one series."""

    def __init__(self, config: DetectionConfig) -> None:
        self.config = config
        self.fields: dict[str, _FieldState] = {}
        self.trend: TrendToLimit | None = None
        self.fresh: FreshInstances | None = None
        self.trend_streak: Streak | None = None
        self.restart_streak: Streak | None = None
        self.changes = ChangeTracker()
        self.prev_value: tuple[int, float] | None = None  # (t_ns, value) for cumulative rates
        # A counter's rate is forecast as its increase per first sampling step (`count_step`):
        # counts carry Poisson noise the forecaster knows; a per-second rate of few events spikes.
        self.count_step: float | None = None
        self.increase: float | None = None  # the last increase, per count_step
        self.window_s = 0.0  # length of the last signal window seen
        self.anchored_by: str | None = None  # the deploy the trend was last anchored at
        self.open: dict[str, AnomalyCleared] = {}  # active anomalies, as their clear would read
        self._plan: FieldPlan | None = None  # derived from config and the series' key

    # ------------------------------------------------------------------ input

    def on_signal(self, sig: SignalWindow) -> list[Detection]:
        """Judge one closed window of this series; returns what started, ended or changed."""
        at = sig.window_end
        t_ns = at
        out: list[Detection] = []
        kind, service, name = sig.key
        # Config names a metric, not one of its series (`metric{attributes}` in the key).
        metric = sig.metric or name
        cfg = self.config

        if kind == "span" and cfg.changes.deploys and sig.versions:
            out += [Detection(at, ev) for ev in self.changes.on_versions(service, sig.versions, at)]
        flags = getattr(sig, "flags", None)
        if isinstance(flags, dict):
            out += [Detection(at, ev) for ev in self.changes.on_flags(service, flags, at)]
        key = plan_key(sig, kind, service, name)
        plan = self._plan
        if plan is None or plan.key != key:
            plan = self._plan = FieldPlan(cfg, sig, key, metric)
        if plan.restarts and sig.value is not None:
            out += self._restarts(sig, t_ns)

        rate = self._cumulative_rate(sig, t_ns) if kind == "metric" and plan.cumulative else None
        self.window_s = (t_ns - sig.window_start) / NS_PER_S
        for field, rule, forecast in plan.fields:
            if forecast:
                out += self._forecast_field(sig, field, rule, t_ns, rate)
            else:
                out += self._judge_field(sig, field, rule, t_ns, rate)

        if plan.saturation and sig.utilization is not None:
            out += self._trend(sig, t_ns)
        return out

    def on_change(self, event: ChangeEvent) -> None:
        """A change seen on another series of the same service (the Scout routes them here).

        A deploy anchors the saturation trend at the window the new version appeared in: the
        points before it describe the old version and would flatten a new leak's slope.
        """
        if event.change in ("deploy", "flag") and self.config.rates.change_windows:
            # Rates are judged from here on over every window since the change too.
            for st in self.fields.values():
                if st.rate is not None:
                    st.since_change = st.rate.since(event.at)
        if (
            event.change != "deploy"
            or self.trend is None
            or not self.config.saturation.anchor_on_deploy
            or event.id == self.anchored_by
        ):
            return  # a deploy is seen once per operation of the service: anchor on the first
        self.anchored_by = event.id
        # The version appeared within the window ending at `event.at`; the point of the window
        # before it stays in as the pre-deploy level.
        at_s = event.at / NS_PER_S
        self.trend.anchor(at_s - self.window_s)

    # ------------------------------------------------------------------ fields

    def _cumulative_rate(self, sig: SignalWindow, t_ns: int) -> float | None:
        """The per-second increase of a cumulative sum (its plan says it is one)."""
        if sig.value is None:
            return None
        prev, self.prev_value = self.prev_value, (t_ns, sig.value)
        self.increase = None
        if prev is None or t_ns <= prev[0] or sig.value < prev[1]:
            return None  # first point, out of order, or a counter reset
        dt = (t_ns - prev[0]) / NS_PER_S
        delta = sig.value - prev[1]
        if self.count_step is None:
            self.count_step = dt
        self.increase = delta if dt == self.count_step else delta * self.count_step / dt
        return delta / dt

    def _state(self, field: str, rule: SeriesRule) -> _FieldState:
        st = self.fields.get(field)
        if st is None:
            b = self.config.baseline
            st = _FieldState(Streak(b.persistence.k, b.persistence.n, b.clear_after))
            if rule.test == "binomial":
                st.rate = RateBaseline(b, self.config.rates)
            elif rule.test == "robust":
                st.robust = RobustBaseline(b)
            self.fields[field] = st
        return st

    def _forecast_field(
        self, sig: SignalWindow, field: str, rule: SeriesRule, t_ns: int, rate: float | None
    ) -> list[Detection]:
        """A metric field judged by its online forecaster (which learns every point itself)."""
        value = rate if field == "rate" else getattr(sig, field, None)
        if value is None:
            return []
        st = self.fields.get(field)
        if st is None:
            b = self.config.baseline
            st = self.fields[field] = _FieldState(
                Streak(b.persistence.k, b.persistence.n, self.config.metrics.clear_after)
            )
        if st.model is None:
            st.model = Forecaster(self.config.metrics)
        observed = float(value)
        modelled, per = observed, 1.0  # the model sees a rate as increases per count_step
        if field == "rate" and self.increase is not None and self.count_step:
            modelled, per = self.increase, self.count_step
        j = st.model.judge(
            t_ns / NS_PER_S,
            modelled,
            rule.direction,
            st.streak.active,
            self.config.baseline.hold_factor,
        )
        if j is None:
            return []  # warming up, or a point refused (not finite, duplicate, out of order)
        expected = j.expected / per
        d = observed - expected
        d = abs(d) if rule.direction == "both" else (-d if rule.direction == "down" else d)
        f = self.config.baseline.hold_factor if st.streak.active else 1.0
        big_enough = d >= f * rule.min_abs
        if rule.min_level is not None:
            big_enough = big_enough and (
                observed <= rule.min_level
                if rule.direction == "down"
                else observed >= rule.min_level
            )
        abnormal = j.abnormal and big_enough
        st.exemplars.append(exemplars_of(sig, field) if abnormal else [])
        st.last = (observed, expected)
        st.score = min(abs(j.z), 1e6)
        # A change only a pooled test sees (a small lasting shift, wider noise: no point past
        # its bar) is severity "info": a ticket's worth, which opens no incident alone. Once a
        # point of it passes the full bar, it is re-emitted as a warning (same id and onset).
        point = j.point and big_enough
        grown = st.streak.active and st.subtle and point
        out = self._transition(
            sig,
            st,
            field,
            "forecast",
            abnormal,
            t_ns,
            conclusive=abnormal and j.conclusive,
            severity="warning" if point else "info",
        )
        if grown and st.streak.anomaly_id is not None:
            st.subtle = False
            warning = anomaly_record(
                sig,
                field,
                "forecast",
                st.streak.anomaly_id,
                st.streak,
                st.exemplars,
                st.last,
                st.score,
            )
            out.append(Detection(sig.window_end, warning))
        return out

    def _judge_field(
        self, sig: SignalWindow, field: str, rule: SeriesRule, t_ns: int, rate: float | None
    ) -> list[Detection]:
        if (
            rule.test != "binomial"
            and (rate if field == "rate" else getattr(sig, field, None)) is None
        ):
            # Nothing to judge and nothing to learn: no state either until a value comes (every
            # metric series without a utilization kept an empty median/MAD history, ~5 KB).
            # A binomial field's state is made at once: a deploy pools its windows from then on.
            return []
        st = self._state(field, rule)
        verdict: Verdict | None
        lax: Verdict | None
        observed: float
        holding = st.streak.active
        conclusive = False
        trials: int | None = None
        successes: int | None = None
        if rule.test == "binomial":
            trials, successes = _trials(sig, field)
            if trials is None or successes is None or st.rate is None:
                return []
            verdict = st.rate.judge(successes, trials, rule)
            lax = st.rate.judge(successes, trials, rule, holding=True)
            if st.since_change is not None and not holding:
                since = st.since_change
                since[0] += successes
                since[1] += trials
                since[2] += 1
                pooled = st.rate.judge_pool(since[0], since[1], rule)
                if pooled is not None and pooled.abnormal:
                    conclusive = True
                    if not (verdict and verdict.abnormal):
                        verdict = pooled
                if since[2] >= self.config.rates.change_windows:
                    st.since_change = None
            if trials > 0:
                # Every window feeds the pools, small ones most of all (they are judged there).
                st.rate.observe(successes, trials, sig.window_end)
            observed = successes / trials if trials else 0.0
        else:
            value = rate if field == "rate" else getattr(sig, field, None)
            if value is None:
                return []
            if field in QUANTILE_FIELDS and sig.count < max(
                self.config.rates.min_trials, _MIN_COUNT[field]
            ):
                return []  # quantiles of a handful of requests say nothing
            observed = float(value)
            if rule.test == "threshold":
                assert rule.above is not None
                # score: how far past the threshold (`above: 0` means any at all)
                score = observed / rule.above if rule.above else observed
                verdict = Verdict(observed > rule.above, rule.above, score)
                lax = verdict
            else:
                assert st.robust is not None
                verdict, lax = st.robust.judge_both(observed, rule, _hour(t_ns), t_ns / NS_PER_S)
        if holding:
            # Hysteresis: an active anomaly stays abnormal until the lax verdict says normal.
            verdict = lax
        abnormal = verdict is not None and verdict.abnormal
        # Learn only what is clearly normal, so a fault's windows do not drag the baseline
        # towards the fault; after relearn_after unlearned observations in a row the new level is
        # accepted, so a lasting change stops alerting.
        # A rate is not censored by the lax test: at a rare event's counts one event is already a
        # lax surprise, and leaving those windows out drove the baseline rate to zero (then every
        # event alarmed). Each window its verdict holds normal is learned once it has left the
        # pools instead, unless an anomaly fires first.
        learnable = not abnormal if st.rate is not None else lax is None or not lax.abnormal
        st.unlearned = 0 if learnable else st.unlearned + 1
        if learnable or st.unlearned >= self.config.baseline.relearn_after:
            if st.robust is not None:
                st.robust.learn(observed, _hour(t_ns), t_ns / NS_PER_S)
            if st.rate is not None and trials is not None and successes is not None:
                if learnable and verdict is not None:
                    st.rate.learn_later(successes, trials)
                else:  # not judged yet (nothing can fire), or a lasting new level
                    st.rate.learn(successes, trials)
        if verdict is None:
            return []  # not judged yet: the streak neither advances nor forgets
        st.exemplars.append(exemplars_of(sig, field) if abnormal else [])
        st.last = (observed, verdict.expected)
        st.score = verdict.score
        out = self._transition(
            sig, st, field, _DETECTOR[rule.test], abnormal, t_ns, conclusive=conclusive
        )
        if st.rate is not None and st.streak.active:
            st.rate.forget_pending()  # the run-up to an anomaly is no baseline
        return out

    def _transition(
        self,
        sig: SignalWindow,
        st: _FieldState,
        field: str,
        detector: str,
        abnormal: bool,
        t_ns: int,
        detail: str = "",
        streak: Streak | None = None,
        conclusive: bool = False,
        severity: str = "warning",
    ) -> list[Detection]:
        streak = streak or st.streak
        max_gap = int(self.config.baseline.max_gap * NS_PER_S)
        change = streak.update(abnormal, sig.window_start, t_ns, max_gap, conclusive)
        if change == "fire":
            assert streak.onset is not None
            aid = anomaly_id(sig.key, detector, field, streak.onset)
            streak.anomaly_id = aid
            st.subtle = severity == "info"
            anomaly = anomaly_record(
                sig, field, detector, aid, streak, st.exemplars, st.last, st.score, severity, detail
            )
            self.open[aid] = cleared(sig, aid, detector, field)
            return [Detection(sig.window_end, anomaly)]
        if change == "clear" and streak.anomaly_id is not None:
            aid = streak.anomaly_id
            self.open.pop(aid, None)
            streak.anomaly_id = None
            return [Detection(sig.window_end, cleared(sig, aid, detector, field))]
        return []

    def end(self, at: int) -> list[Detection]:
        """The series ended (its instance is gone): every anomaly it holds clears at `at`."""
        out = [Detection(at, replace(c, at=at)) for _, c in sorted(self.open.items())]
        self.open.clear()
        return out

    # ------------------------------------------------------------------ restarts and trend

    def _restarts(self, sig: SignalWindow, t_ns: int) -> list[Detection]:
        assert sig.value is not None
        service = sig.service or ""
        delta, event = self.changes.on_restarts(service, sig.value, sig.window_end)
        out: list[Detection] = []
        if event is not None:
            out.append(Detection(sig.window_end, event))
        if not self.config.changes.restart_anomaly:
            return out
        if self.restart_streak is None:
            # A crash is certain on the first increase: no persistence needed.
            self.restart_streak = Streak(1, 1, self.config.baseline.clear_after)
        st = _FieldState(self.restart_streak)
        st.last = (float(delta), 0.0)
        st.score = float(delta)
        detail = f"{service}: {delta} restart(s) in the window" if delta else ""
        out += self._transition(
            sig, st, "restarts", "restarts", delta > 0, t_ns, detail, self.restart_streak
        )
        return out

    def _trend(self, sig: SignalWindow, t_ns: int) -> list[Detection]:
        assert sig.utilization is not None
        cfg = self.config
        if self.trend is None:
            self.trend = TrendToLimit(cfg.saturation)
            p = cfg.saturation.persistence
            self.trend_streak = Streak(p.k, p.n, cfg.baseline.clear_after)
        assert self.trend_streak is not None
        verdict = self.trend.on_point(t_ns / NS_PER_S, sig.utilization)
        per_instance = None
        if sig.instances and cfg.saturation.per_instance:
            if self.fresh is None:
                self.fresh = FreshInstances(cfg.saturation)
            per_instance = self.fresh.on_window(t_ns / NS_PER_S, sig.instances)
        # The containers that started lately speak first; and a fit anchored on a deploy straddles
        # the rollout's swap of old containers for new ones (a step, not a trend), so once the new
        # ones can be fitted one by one, their common slope is the test.
        if per_instance is not None and (
            per_instance.abnormal or verdict is None or verdict.anchored
        ):
            verdict = per_instance
        st = _FieldState(self.trend_streak)
        abnormal = verdict is not None and verdict.abnormal
        tte = verdict.time_to_exhaustion_s if verdict is not None else None
        st.last = (sig.utilization, cfg.saturation.exhaustion_level)
        st.score = cfg.saturation.horizon / max(tte, 1.0) if tte is not None else 0.0
        detail = trend_detail(sig, verdict, t_ns) if verdict is not None else ""
        # A steady rise since a deploy, over several points and well above the noise, is its own
        # persistence (a step up after a healthy deploy is not steady); so is a common slope of
        # fresh containers at instance_z standard errors.
        conclusive = (
            abnormal
            and verdict is not None
            and (
                verdict.instances > 0
                or (verdict.anchored and cfg.saturation.anchored_fires_at_once)
            )
        )
        return self._transition(
            sig,
            st,
            "time_to_exhaustion",
            "saturation_trend",
            abnormal,
            t_ns,
            detail,
            st.streak,
            conclusive=conclusive,
        )

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """Plain picklable state (the config is not part of it)."""
        fields = {}
        for name, st in self.fields.items():
            fields[name] = {
                "streak": st.streak.snapshot(),
                "robust": st.robust.snapshot() if st.robust else None,
                "rate": st.rate.snapshot() if st.rate else None,
                "model": st.model.snapshot() if st.model else None,
                "exemplars": [list(e) for e in st.exemplars],
                "last": list(st.last),
                "score": st.score,
                "subtle": st.subtle,
                "unlearned": st.unlearned,
                "since_change": st.since_change,
            }
        return {
            "fields": fields,
            "trend": self.trend.snapshot() if self.trend else None,
            "fresh": self.fresh.snapshot() if self.fresh else None,
            "trend_streak": self.trend_streak.snapshot() if self.trend_streak else None,
            "restart_streak": self.restart_streak.snapshot() if self.restart_streak else None,
            "changes": self.changes.snapshot(),
            "prev_value": list(self.prev_value) if self.prev_value else None,
            "window_s": self.window_s,
            "anchored_by": self.anchored_by,
            "open": [c.to_dict() for _, c in sorted(self.open.items())],
            "count_step": self.count_step,
            "increase": self.increase,
        }

    @classmethod
    def from_snapshot(cls, config: DetectionConfig, data: dict[str, Any]) -> SeriesDetector:
        """Rebuild from `snapshot()` with the (possibly reloaded) config."""
        out = cls(config)
        b = config.baseline
        for name, fd in data["fields"].items():
            st = _FieldState(Streak.from_snapshot(fd["streak"]))
            if fd["robust"] is not None:
                st.robust = RobustBaseline.from_snapshot(b, fd["robust"])
            if fd["rate"] is not None:
                st.rate = RateBaseline.from_snapshot(b, config.rates, fd["rate"])
            if fd.get("model") is not None:
                st.model = Forecaster.from_snapshot(config.metrics, fd["model"])
            st.exemplars.extend(list(e) for e in fd["exemplars"])
            st.last = (float(fd["last"][0]), float(fd["last"][1]))
            st.score = fd["score"]
            st.subtle = bool(fd.get("subtle", False))
            st.unlearned = fd["unlearned"]
            st.since_change = fd.get("since_change")
            out.fields[name] = st
        if data["trend"] is not None:
            out.trend = TrendToLimit.from_snapshot(config.saturation, data["trend"])
        if data.get("fresh") is not None:
            out.fresh = FreshInstances.from_snapshot(config.saturation, data["fresh"])
        if data["trend_streak"] is not None:
            out.trend_streak = Streak.from_snapshot(data["trend_streak"])
        if data["restart_streak"] is not None:
            out.restart_streak = Streak.from_snapshot(data["restart_streak"])
        out.changes = ChangeTracker.from_snapshot(data["changes"])
        if data["prev_value"] is not None:
            out.prev_value = (int(data["prev_value"][0]), float(data["prev_value"][1]))
        out.window_s = float(data.get("window_s", 0.0))
        out.anchored_by = data.get("anchored_by")
        out.open = {c["id"]: AnomalyCleared.from_dict(c) for c in data.get("open", [])}
        out.count_step = data.get("count_step")
        out.increase = data.get("increase")
        return out


# Every series of a window asks for the same window end's hour, up to three times each.
@lru_cache(maxsize=64, typed=True)
def _hour(t_ns: int) -> int:
    return ns_to_datetime(t_ns).hour


def _trials(sig: SignalWindow, field: str) -> tuple[int | None, int | None]:
    if field == "error_rate":
        return sig.count, sig.errors
    if field == "conversion":
        if sig.started is None or sig.completed is None:
            return None, None
        return sig.started, sig.completed
    if field.startswith("step_conversion."):
        i = int(field.partition(".")[2])
        steps = sig.steps or []
        if i >= len(steps):
            return None, None
        # Steps are counted per window, so a journey's last step may land in the next window
        # (more completions than starts): clip, a step cannot convert more than it received.
        return steps[i - 1], min(steps[i], steps[i - 1])
    return None, None
