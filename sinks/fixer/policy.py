"""Remediation policy: whether a planned change may merge on its own, needs a person, or is refused.

Decisions are pure: the caller passes the event time and the recent changes, the policy never reads
the wall clock or the store, so a replay decides the same way every time and every decision can be
explained from its inputs (which the `Decision` carries for the audit log).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from sinks.fixer.playbook import SPECS, Bounds
from sre_space.settings import FrozenModel
from sre_space.timeutil import NS_PER_S, datetime_to_ns, ns_to_datetime

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.yaml")

Verdict = Literal["auto_merge", "approval", "dry_run", "refuse"]


class PolicyError(ValueError):
    """The policy file is invalid; the message names the key and the fix."""


_DOW = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MON = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, _MON),
    (0, 7, _DOW),
)


def _parse_field(text: str, lo: int, hi: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.lower().split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"step {step_text!r} must be positive")
        if rng == "*":
            a, b = lo, hi
        else:
            first, dash, last = rng.partition("-")
            a = names[first] if first in names else int(first)
            b = (names[last] if last in names else int(last)) if dash else a
            if step_text and not dash:
                b = hi
        if not (lo <= a <= hi and lo <= b <= hi and a <= b):
            raise ValueError(f"{part!r} is outside {lo}..{hi}")
        values.update(range(a, b + 1, step))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class Cron:
    """A five-field UTC cron expression: minute hour day-of-month month day-of-week."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_any: bool
    weekdays_any: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        """Parse `m h dom mon dow`; ranges, lists, steps and day/month names are accepted."""
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"cron {text!r} needs 5 fields (minute hour day month weekday)")
        sets = [
            _parse_field(p, lo, hi, names)
            for p, (lo, hi, names) in zip(parts, _FIELDS, strict=True)
        ]
        weekdays = frozenset(d % 7 for d in sets[4])  # 7 is Sunday too
        return cls(sets[0], sets[1], sets[2], sets[3], weekdays, parts[2] == "*", parts[4] == "*")

    def matches(self, t: datetime) -> bool:
        """Whether the cron fires at minute `t` (UTC)."""
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        # Classic cron: when both day fields are restricted, either one matching is enough.
        if not self.days_any and not self.weekdays_any:
            return dom or dow
        return dom and dow


class FreezeWindow(FrozenModel):
    """No automated change inside: an explicit [start, end) range, or a cron start + duration."""

    reason: str = "change freeze"
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    duration_minutes: int | None = Field(None, gt=0, le=7 * 24 * 60)

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("freeze times must carry a timezone (use Z for UTC)")
        return value

    @model_validator(mode="after")
    def _shape(self) -> FreezeWindow:
        explicit = self.start is not None and self.end is not None
        cron = self.cron is not None and self.duration_minutes is not None
        if explicit == cron:
            raise ValueError("a freeze window is either start+end or cron+duration_minutes")
        if self.cron is not None:
            Cron.parse(self.cron)
        return self

    def active(self, now: int) -> bool:
        """Whether event time `now` (ns) falls inside the window."""
        if self.start is not None and self.end is not None:
            return datetime_to_ns(self.start) <= now < datetime_to_ns(self.end)
        assert self.cron is not None and self.duration_minutes is not None
        cron = Cron.parse(self.cron)
        minute = ns_to_datetime(now).replace(second=0, microsecond=0)
        # The window is active when the cron fired within the last `duration_minutes` minutes.
        return any(
            cron.matches(minute - timedelta(minutes=m)) for m in range(self.duration_minutes)
        )


class VerificationConfig(FrozenModel):
    """How the responder decides that a fix worked."""

    healthy_windows: int = Field(3, ge=1, le=100)
    deadline_minutes: float = Field(10, gt=0)
    deploy_attempts: int = Field(3, ge=1, le=20)
    approval_timeout_minutes: float = Field(60, gt=0)
    # a backlog still draining at the deadline gets the time it needs at its rate, up to this
    drain_grace_max_minutes: float = Field(20, ge=0)


class BoundsConfig(FrozenModel):
    """Playbook bounds; they may tighten the built-in ones, never loosen them."""

    memory_ceiling_mib: int = Field(8192, ge=64, le=8192)
    memory_max_step_ratio: float = Field(2.0, gt=1.0, le=2.0)
    replicas_max: int = Field(20, ge=1, le=20)
    replicas_max_step_up: int = Field(3, ge=1, le=3)
    timeout_ceiling_ms: int = Field(30000, ge=50, le=30000)
    timeout_max_step_ratio: float = Field(2.0, gt=1.0, le=2.0)
    # Not a limit but the sizing goal; kept within a sane band (below 0.3 over-provisions).
    target_utilization: float = Field(0.65, ge=0.3, le=0.9)

    def to_bounds(self) -> Bounds:
        """The playbook's bounds object."""
        return Bounds(
            memory_ceiling_mib=self.memory_ceiling_mib,
            memory_max_step_ratio=self.memory_max_step_ratio,
            replicas_max=self.replicas_max,
            replicas_max_step_up=self.replicas_max_step_up,
            timeout_ceiling_ms=self.timeout_ceiling_ms,
            timeout_max_step_ratio=self.timeout_max_step_ratio,
            target_utilization=self.target_utilization,
        )


class PolicyConfig(FrozenModel):
    """The policy file's content (`default_policy.yaml` documents every key)."""

    dry_run: bool = False
    auto_merge: tuple[str, ...] = ()
    require_approval: tuple[str, ...] = ()
    approval_services: tuple[str, ...] = ()
    one_service_per_change: bool = True
    min_score_share: float = Field(0.5, ge=0, le=1)
    cooldown_minutes: float = Field(30, ge=0)
    max_changes_per_hour: int = Field(3, ge=0)
    freeze: tuple[FreezeWindow, ...] = ()
    verification: VerificationConfig = VerificationConfig()
    bounds: BoundsConfig = BoundsConfig()

    @model_validator(mode="after")
    def _known_actions(self) -> PolicyConfig:
        unknown = sorted((set(self.auto_merge) | set(self.require_approval)) - set(SPECS))
        if unknown:
            raise ValueError(f"unknown actions {unknown}; the playbook has {sorted(SPECS)}")
        both = sorted(set(self.auto_merge) & set(self.require_approval))
        if both:
            raise ValueError(f"actions {both} are in both auto_merge and require_approval")
        return self


@dataclass(frozen=True, slots=True)
class PastChange:
    """A change the Fixer made before (from the pull request records)."""

    service: str
    action: str
    at: int  # ns
    automated: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's verdict with every reason behind it and the inputs it looked at."""

    verdict: Verdict
    reasons: tuple[str, ...]
    inputs: dict[str, Any] = field(default_factory=dict)
    mode: Literal["auto_merge", "approval", ""] = ""  # what would happen outside dry-run

    @property
    def allowed(self) -> bool:
        """True when a pull request may be opened (merged automatically or after approval)."""
        return self.verdict in ("auto_merge", "approval")

    @property
    def reason(self) -> str:
        """All reasons in one line."""
        return "; ".join(self.reasons)


class Policy:
    """Pure decisions over a validated `PolicyConfig`."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()

    def decide(
        self,
        action: str,
        services: Sequence[str],
        now: int,
        recent: Sequence[PastChange] = (),
    ) -> Decision:
        """Whether a change by `action` to `services` at event time `now` (ns) may go ahead, and
        how."""
        cfg = self.config
        hour_ago = now - 3600 * NS_PER_S
        automated_last_hour = [c for c in recent if c.automated and hour_ago < c.at <= now]
        inputs: dict[str, Any] = {
            "action": action,
            "services": list(services),
            # isoformat, not RFC 3339 with milliseconds: the form audit rows have always had
            "now": ns_to_datetime(now).isoformat().replace("+00:00", "Z"),
            "dry_run": cfg.dry_run,
            "changes_last_hour": len(automated_last_hour),
        }
        refusals: list[str] = []
        if action not in cfg.auto_merge and action not in cfg.require_approval:
            refusals.append(f"action {action!r} is not allowed by the policy")
        if not services:
            refusals.append("the change touches no service")
        if cfg.one_service_per_change and len(set(services)) > 1:
            refusals.append(f"one service per change, this one touches {sorted(set(services))}")
        for window in cfg.freeze:
            if window.active(now):
                refusals.append(f"freeze window active: {window.reason}")
        cooldown = round(cfg.cooldown_minutes * 60 * NS_PER_S)
        for service in sorted(set(services)):
            last = max((c.at for c in recent if c.service == service and c.at <= now), default=None)
            if last is not None and now - last < cooldown:
                left = cooldown - (now - last)
                refusals.append(
                    f"{service} is cooling down: last change {(now - last) // NS_PER_S}s"
                    f" ago, {left // NS_PER_S}s left of {cfg.cooldown_minutes:g} min"
                )
        if len(automated_last_hour) >= cfg.max_changes_per_hour:
            refusals.append(
                f"{len(automated_last_hour)} automated changes in the last hour"
                f" (cap {cfg.max_changes_per_hour})"
            )
        if refusals:
            return Decision("refuse", tuple(refusals), inputs)
        needs_person = action in cfg.require_approval or any(
            s in cfg.approval_services for s in services
        )
        mode: Literal["auto_merge", "approval"] = "approval" if needs_person else "auto_merge"
        why = (
            f"{action} needs a person's approval"
            if action in cfg.require_approval
            else f"changes to {sorted(set(services) & set(cfg.approval_services))} need approval"
            if needs_person
            else f"{action} may merge automatically"
        )
        if cfg.dry_run:
            return Decision(
                "dry_run", (f"dry-run mode: would {mode.replace('_', '-')}", why), inputs, mode
            )
        return Decision(mode, (why,), inputs, mode)


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy from a YAML file (the packaged default when None); errors name the key."""
    source = Path(path) if path is not None else DEFAULT_POLICY_PATH
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read policy {source}: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"policy {source} must be a mapping at the top level")
    try:
        return Policy(PolicyConfig(**data))
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        ]
        raise PolicyError(f"invalid policy {source}:\n  " + "\n  ".join(lines)) from None
