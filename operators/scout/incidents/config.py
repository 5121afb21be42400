"""Config models for the `incidents:` section: grouping, recovery, cool-down, silences, maintenance.

Times in silences and maintenance windows are RFC 3339 (a YAML timestamp is accepted too).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from operators.scout.detect.config import Duration
from sre_space.settings import FrozenModel, load_section
from sre_space.timeutil import datetime_to_ns, ns_to_rfc3339, rfc3339_to_ns


def _rfc3339(value: Any) -> str:
    # YAML turns unquoted timestamps into datetimes; accept both, refuse naive times.
    if isinstance(value, datetime):
        return ns_to_rfc3339(datetime_to_ns(value))
    if isinstance(value, str):
        try:
            return ns_to_rfc3339(rfc3339_to_ns(value))
        except ValueError as exc:
            raise ValueError(
                f"expected an RFC 3339 UTC time like 2026-01-31T02:00:00Z: {exc}"
            ) from None
    raise ValueError(f"expected an RFC 3339 time, got {value!r}")


Timestamp = Annotated[str, BeforeValidator(_rfc3339)]


class Silence(FrozenModel):
    """Anomalies matching every given glob, detected within [starts, ends), open no incident."""

    service: str = "*"
    operation: str = "*"
    cuj: str = "*"
    metric: str = "*"
    signal: str = "*"
    detector: str = "*"
    starts: Timestamp | None = None
    ends: Timestamp | None = None
    comment: str = ""

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.starts and self.ends and rfc3339_to_ns(self.ends) <= rfc3339_to_ns(self.starts):
            raise ValueError(f"ends ({self.ends}) must be after starts ({self.starts})")
        return self

    def active(self, at_ns: int) -> bool:
        """Whether the silence covers the event time `at_ns`."""
        if self.starts is not None and at_ns < rfc3339_to_ns(self.starts):
            return False
        return not (self.ends is not None and at_ns >= rfc3339_to_ns(self.ends))

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether every glob matches the anomaly's field (missing fields are "")."""
        pairs = (
            ("service", self.service),
            ("operation", self.operation),
            ("cuj", self.cuj),
            ("metric", self.metric),
            ("signal", self.signal),
            ("detector", self.detector),
        )
        return all(fnmatch.fnmatchcase(fields.get(k, ""), pat) for k, pat in pairs)


class Maintenance(FrozenModel):
    """A planned window for some services: their anomalies open no incident while it lasts."""

    services: tuple[str, ...] = Field(min_length=1)
    starts: Timestamp
    ends: Timestamp
    comment: str = ""

    @model_validator(mode="after")
    def _order(self) -> Self:
        if rfc3339_to_ns(self.ends) <= rfc3339_to_ns(self.starts):
            raise ValueError(f"ends ({self.ends}) must be after starts ({self.starts})")
        return self

    def covers(self, service: str, at_ns: int) -> bool:
        """Whether `service` is under maintenance at event time `at_ns`."""
        if not rfc3339_to_ns(self.starts) <= at_ns < rfc3339_to_ns(self.ends):
            return False
        return any(fnmatch.fnmatchcase(service, p) for p in self.services)


class IncidentsConfig(FrozenModel):
    """The `incidents:` section."""

    # Two services belong to one problem when one calls the other within this many hops.
    max_hops: int = Field(3, ge=1)
    # Call-graph edges not seen for this long are forgotten.
    graph_ttl: Duration = 3600.0
    # A service the call graph does not know (no spans of its own: a database, a cache seen
    # only through its metrics) cannot be placed by links; its anomalies join the incident that
    # got a new symptom within this long, and an incident of such services only takes in the
    # anomalies that come this soon after it.
    unplaced_window: Duration = 300.0
    # All of an incident's anomalies cleared for this long: the incident has recovered.
    recovery: Duration = 30.0
    # A problem returning this soon after recovery (or resolution) reopens the same incident.
    cooldown: Duration = 900.0
    # Changes (deploys, restarts, flags) this long before an incident are listed in it.
    change_lookback: Duration = 1800.0
    # SLO burn alerts of at least this severity open an incident on their own; weaker ones only
    # join incidents and raise their severity (a ticket-level slow burn files no page).
    slo_opens: Literal["page", "ticket", "never"] = "page"
    # Metric anomalies of severity "info" (a change only a pooled test sees, no point past its
    # bar) join incidents but open none alone: paging needs harm or a clearly abnormal point.
    info_opens: bool = False
    silences: tuple[Silence, ...] = ()
    maintenance: tuple[Maintenance, ...] = ()


def load_incidents(extra: Mapping[str, Any]) -> IncidentsConfig:
    """The `incidents:` section from `PipelineConfig.extra`; errors name the bad key."""
    return load_section(extra, "incidents", IncidentsConfig)
