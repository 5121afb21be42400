"""Change events from signals: restarts (a cumulative restart count rising), deploys (a version
never seen before appearing in a span series), and flag changes (when the flow sees flag states).

Change ids depend only on what changed (and for restarts when), so the same deploy seen from
every operation of a service has one id.
"""

from __future__ import annotations

from typing import Any

from operators.scout.detect.events import ChangeEvent, stable_id
from sre_space.timeutil import ns_to_rfc3339


def _dominant(versions: dict[str, int]) -> str | None:
    if not versions:
        return None
    # Highest count, then name, so ties resolve the same way on every replay.
    return sorted(versions.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


class ChangeTracker:
    """Per-series memory of versions, restart count and flag values."""

    def __init__(self) -> None:
        self.versions: set[str] | None = None
        self.dominant: str | None = None
        self.restarts: float | None = None
        self.flags: dict[str, str] = {}

    def on_versions(self, service: str, versions: dict[str, int], at: int) -> list[ChangeEvent]:
        """Deploy events for versions this series has not seen before (none on the first call)."""
        out: list[ChangeEvent] = []
        seen = {v for v, c in versions.items() if c > 0 and v}
        if self.versions is None:
            self.versions = seen
        else:
            for version in sorted(seen - self.versions):
                out.append(
                    ChangeEvent(
                        id=stable_id("chg", service, "deploy", version),
                        change="deploy",
                        service=service,
                        at=at,
                        name="version",
                        before=self.dominant,
                        after=version,
                        detail=f"{service}: version {version} appeared (was {self.dominant})",
                    )
                )
            self.versions |= seen
        self.dominant = _dominant({v: c for v, c in versions.items() if v}) or self.dominant
        return out

    def on_restarts(
        self, service: str, cumulative: float, at: int
    ) -> tuple[int, ChangeEvent | None]:
        """The restart increase since the last point and its change event (None if no increase).

        A falling sum means instances were replaced; it resets the reference, it is no restart.
        """
        previous, self.restarts = self.restarts, cumulative
        if previous is None or cumulative <= previous:
            return 0, None
        delta = round(cumulative - previous)
        if delta <= 0:
            return 0, None
        event = ChangeEvent(
            id=stable_id("chg", service, "restart", ns_to_rfc3339(at)),
            change="restart",
            service=service,
            at=at,
            name="restarts",
            before=f"{previous:g}",
            after=f"{cumulative:g}",
            count=delta,
            detail=f"{service}: {delta} container restart(s)",
        )
        return delta, event

    def on_flags(self, service: str, flags: dict[str, Any], at: int) -> list[ChangeEvent]:
        """Flag change events for flags whose value differs from the last seen (none at first)."""
        out: list[ChangeEvent] = []
        for name in sorted(flags):
            value = str(flags[name]).lower()
            before = self.flags.get(name)
            if before is not None and before != value:
                out.append(
                    ChangeEvent(
                        id=stable_id("chg", service, "flag", name, value, ns_to_rfc3339(at)),
                        change="flag",
                        service=service,
                        at=at,
                        name=name,
                        before=before,
                        after=value,
                        detail=f"{service}: flag {name} {before} -> {value}",
                    )
                )
            self.flags[name] = value
        return out

    def snapshot(self) -> dict[str, Any]:
        """Plain picklable state."""
        return {
            "versions": None if self.versions is None else sorted(self.versions),
            "dominant": self.dominant,
            "restarts": self.restarts,
            "flags": dict(self.flags),
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> ChangeTracker:
        """Rebuild from `snapshot()`."""
        out = cls()
        out.versions = None if data["versions"] is None else set(data["versions"])
        out.dominant = data["dominant"]
        out.restarts = data["restarts"]
        out.flags = dict(data["flags"])
        return out
