"""Change evidence: GitOps commits, new versions seen in spans, and feature-flag evaluations that
appeared shortly before (or during) the incident.

Commits are plain data (the caller reads git): `{"sha", "at" (RFC 3339 or ns), "message",
"files"?: [...], "services"?: [...], "diff"?: "..."}`; the chaos labels' spelling `{"commit", "time",
"subject", "files"}` is accepted too. Services are taken from `services` or from
manifest paths `services/<service>.yaml`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import polars as pl

from sinks.brain.config import DiagnosisConfig
from sinks.brain.population import flag_evaluations
from sre_space.records import Evidence
from sre_space.timeutil import rfc3339_to_ns

Window = tuple[int, int]

# What a change touched, from words in its message, paths and diff: decides which fault it can cause.
_TOPICS: tuple[tuple[str, str], ...] = (
    ("connection_pool", r"(?i)(connection[_ ]?pool|pool[_ ]?size|max_?conn|\bpool\b)"),
    ("feature_flag", r"(?i)(feature[_ ]?flag|\bflag\b|toggle)"),
    ("memory", r"(?i)(memory|mem_limit|memory_limit)"),
    ("timeout", r"(?i)(timeout|deadline)"),
    ("version", r"(?i)(\bversion\b|\bbump\b|release|deploy|image)"),
    ("replicas", r"(?i)(replica|scale)"),
    ("probe", r"(?i)(readiness|liveness|probe|healthcheck|startup)"),
    ("cache", r"(?i)(cache|redis)"),
)
_SERVICE_PATH = re.compile(r"(?:^|/)services/([A-Za-z0-9_.-]+)\.ya?ml$")


@dataclass(frozen=True, slots=True)
class ChangeFinding:
    """One change near the onset. `strength` is higher the closer it is to the onset."""

    kind: str
    service: str
    at_ns: int
    description: str
    strength: float
    sha: str | None = None
    topics: tuple[str, ...] = ()
    value: str | None = None  # the flag `key=variant` or the new version
    previous: str | None = None  # the version it replaced

    def evidence(self) -> Evidence:
        """The change as evidence, with what undoing it needs as fields (`value` is `key=variant`
        for a flag, the new version for a version)."""
        return Evidence(
            kind=f"change_{self.kind}",
            description=self.description,
            commit=self.sha if self.kind == "commit" else None,
            version=self.value if self.kind == "version" else None,
            previous_version=self.previous if self.kind == "version" else None,
            flag=self.value.partition("=")[0] if self.kind == "flag" and self.value else None,
        )


def _at(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    return rfc3339_to_ns(str(value))


def commit_changes(
    commits: Iterable[dict[str, Any]], onset_ns: int, window_end_ns: int, cfg: DiagnosisConfig
) -> list[ChangeFinding]:
    """GitOps commits from `change_lookback_s` before the onset up to the window's end, per service."""
    out: list[ChangeFinding] = []
    lookback = int(cfg.change_lookback_s * 1e9)
    for commit in commits:
        try:
            at = _at(commit.get("at") or commit.get("time") or commit.get("date"))
            commit = {
                **commit,
                "sha": commit.get("sha") or commit.get("commit") or "",
                "message": commit.get("message") or commit.get("subject") or "",
            }
        except (TypeError, ValueError):
            continue
        if not onset_ns - lookback <= at <= window_end_ns:
            continue
        files = [str(f) for f in commit.get("files") or ()]
        services = [str(s) for s in commit.get("services") or ()]
        services += [m.group(1) for f in files if (m := _SERVICE_PATH.search(f))]
        text = " ".join(
            [str(commit.get("message") or ""), " ".join(files), str(commit.get("diff") or "")]
        )
        topics = tuple(name for name, pattern in _TOPICS if re.search(pattern, text))
        # Closer to the onset is more suspicious; anything inside the lookback keeps some weight.
        age = max(0, onset_ns - at)
        strength = 1.0 - 0.7 * min(1.0, age / max(lookback, 1))
        sha = str(commit.get("sha") or "")
        first_line = (
            str(commit.get("message") or "").splitlines()[0] if commit.get("message") else ""
        )
        for svc in sorted(set(services)) or [""]:
            out.append(
                ChangeFinding(
                    kind="commit",
                    service=svc,
                    at_ns=at,
                    description=f"commit {sha[:12]} '{first_line[:120]}'",
                    strength=strength,
                    sha=sha or None,
                    topics=topics,
                )
            )
    return sorted(out, key=lambda c: (-c.at_ns, c.service))


def version_changes(
    inc: pl.DataFrame, base: pl.DataFrame, since_ns: int | None = None
) -> list[ChangeFinding]:
    """Service versions running in the incident window that the baseline never saw, and (with
    `since_ns`) those the baseline saw arrive after `since_ns` once another version had run for
    `SETTLED_NS`: a leak is detected minutes after its deploy, which may then fall in the baseline."""
    if inc.height == 0:
        return []
    seen = base.select("service", "service_version").unique()
    new = (
        inc.filter(pl.col("service_version") != "")
        .group_by(["service", "service_version"])
        .agg(pl.col("start_ns").min().alias("first_ns"), pl.len().alias("spans"))
        .join(seen, on=["service", "service_version"], how="anti")
        .sort(["service", "service_version"])
    )
    old = (
        base.filter(pl.col("service_version") != "")
        .sort("start_ns")
        .group_by("service")
        .agg(
            pl.col("service_version").unique().sort().alias("old"),
            pl.col("service_version").last().alias("last"),
        )
    )
    new = new.join(old, on="service", how="left")
    out = [
        ChangeFinding(
            kind="version",
            service=r["service"],
            at_ns=int(r["first_ns"]),
            description=(
                f"new version {r['service_version']} of {r['service']}"
                + (f" (baseline ran {', '.join(v for v in r['old'] if v)})" if r["old"] else "")
            ),
            strength=1.0,
            topics=("version",),
            value=r["service_version"],
            previous=r["last"],
        )
        for r in new.to_dicts()
    ]
    if since_ns is not None:
        out += _deployed_in_baseline(inc, base, since_ns)
    return sorted(out, key=lambda c: (c.service, c.value or ""))


# A version that appears this long after another one of the same service was already running is a
# deploy, not the other half of a fleet that runs both.
SETTLED_NS = 60 * 1_000_000_000


def _deployed_in_baseline(
    inc: pl.DataFrame, base: pl.DataFrame, since_ns: int
) -> list[ChangeFinding]:
    """Versions still running in the incident window that arrived during the baseline."""
    running = inc.filter(pl.col("service_version") != "").select("service", "service_version")
    firsts = (
        base.filter(pl.col("service_version") != "")
        .group_by(["service", "service_version"])
        .agg(pl.col("start_ns").min().alias("first_ns"))
        .sort(["service", "first_ns", "service_version"])
    )
    out = []
    for svc, rows in firsts.group_by("service", maintain_order=True):
        versions = rows.to_dicts()
        live = set(running.filter(pl.col("service") == svc[0]).get_column("service_version"))
        for before, after in pairwise(versions):
            arrived = int(after["first_ns"])
            if (
                after["service_version"] in live
                and arrived >= since_ns
                and arrived - int(versions[0]["first_ns"]) >= SETTLED_NS
            ):
                out.append(
                    ChangeFinding(
                        kind="version",
                        service=str(svc[0]),
                        at_ns=arrived,
                        description=(
                            f"new version {after['service_version']} of {svc[0]}, deployed"
                            f" before the incident (it ran {before['service_version']})"
                        ),
                        strength=1.0,
                        topics=("version",),
                        value=str(after["service_version"]),
                        previous=str(before["service_version"]),
                    )
                )
    return out


def flag_changes(inc: pl.DataFrame, base: pl.DataFrame) -> list[ChangeFinding]:
    """Feature-flag variants evaluated in the incident window but not (or far less) in the baseline.

    Needs the `feature_flag` list column that `population.add_flags` adds; the service is the one
    whose spans record the evaluation.
    """
    if "feature_flag" not in inc.columns or inc.height == 0:
        return []

    def per(frame: pl.DataFrame) -> pl.DataFrame:
        n = max(frame.get_column("trace_id").n_unique(), 1)
        return (
            frame.select("trace_id", "feature_flag", "start_ns")
            .explode("feature_flag")
            .filter(pl.col("feature_flag").is_not_null())
            .group_by("feature_flag")
            .agg(
                (pl.col("trace_id").n_unique() / n).alias("share"),
                pl.col("start_ns").min().alias("first_ns"),
            )
        )

    # The owner of a flag is the service whose spans evaluate it most.
    owners = {
        r["flag"]: r["service"]
        for r in flag_evaluations(inc)
        .group_by(["flag", "service"])
        .agg(pl.len().alias("n"))
        .sort(["flag", "n", "service"], descending=[False, True, False])
        .group_by("flag", maintain_order=True)
        .first()
        .to_dicts()
    }
    i = per(inc)
    b = (
        per(base).select("feature_flag", pl.col("share").alias("base_share"))
        if base.height
        else None
    )
    if b is not None:
        i = i.join(b, on="feature_flag", how="left")
    else:
        i = i.with_columns(pl.lit(None, pl.Float64).alias("base_share"))
    i = i.with_columns(pl.col("base_share").fill_null(0.0)).filter(
        pl.col("share") >= 2 * pl.col("base_share") + 0.01
    )
    return [
        ChangeFinding(
            kind="flag",
            service=owners.get(r["feature_flag"], ""),
            at_ns=int(r["first_ns"]),
            description=(
                f"feature flag {r['feature_flag']} in {r['share']:.0%} of traces "
                f"(baseline {r['base_share']:.0%})"
            ),
            strength=1.0 if r["base_share"] == 0 else 0.6,
            topics=("feature_flag",),
            value=r["feature_flag"],
        )
        for r in i.sort("feature_flag").to_dicts()
    ]
