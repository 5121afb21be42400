"""The Audit page's reads: every audited action as a frame, and its filters."""

from __future__ import annotations

import json
from collections.abc import Sequence

import polars as pl

from dashboard.format import parse_time
from dashboard.queries.store import StoreReader


def audit_frame(store: StoreReader) -> pl.DataFrame:
    """Every audited action, newest first: at, actor, action, incident, outcome, reason, inputs."""
    rows = store.query("actions", newest_first=True)
    return pl.DataFrame(
        {
            "at": [parse_time(r.get("at")) for r in rows],
            "actor": [str(r.get("actor", "")) for r in rows],
            "action": [str(r.get("action", "")) for r in rows],
            "incident": [str(r.get("incident_id") or "") for r in rows],
            "outcome": [str(r.get("outcome", "")) for r in rows],
            "reason": [str(r.get("reason", "")) for r in rows],
            "inputs": [json.dumps(r.get("inputs") or {}, sort_keys=True) for r in rows],
        },
        schema={
            "at": pl.Datetime("us", "UTC"),
            "actor": pl.String(),
            "action": pl.String(),
            "incident": pl.String(),
            "outcome": pl.String(),
            "reason": pl.String(),
            "inputs": pl.String(),
        },
    )


def filter_audit(
    df: pl.DataFrame,
    *,
    actors: Sequence[str] = (),
    actions: Sequence[str] = (),
    incident: str = "",
    outcomes: Sequence[str] = (),
    text: str = "",
) -> pl.DataFrame:
    """The audit rows matching every given filter (empty filters match all)."""
    out = df
    if actors:
        out = out.filter(pl.col("actor").is_in(list(actors)))
    if actions:
        out = out.filter(pl.col("action").is_in(list(actions)))
    if outcomes:
        out = out.filter(pl.col("outcome").is_in(list(outcomes)))
    if incident:
        out = out.filter(pl.col("incident").str.contains(incident, literal=True))
    if text:
        needle = text.lower()
        out = out.filter(
            pl.col("reason").str.to_lowercase().str.contains(needle, literal=True)
            | pl.col("inputs").str.to_lowercase().str.contains(needle, literal=True)
        )
    return out
