"""Altair charts over the query frames: event time on a UTC axis, local time in the tooltip.

Vega-Lite shows times in the browser's zone unless told otherwise; the axis is set to UTC (what
the rest of the dashboard shows) and the tooltip carries both, so the hover gives the local time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl


def _records(df: pl.DataFrame) -> list[dict[str, Any]]:
    # ISO strings with a Z parse as UTC in Vega; datetimes would be serialised without a zone.
    out = []
    for row in df.to_dicts():
        out.append(
            {
                k: (v.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(v, datetime) else v)
                for k, v in row.items()
            }
        )
    return out


def time_tooltips(x: str) -> list[Any]:
    """Tooltip entries for a time field: UTC first, then the viewer's local time."""
    import altair as alt

    return [
        alt.Tooltip(f"{x}:T", title="UTC", format="%Y-%m-%d %H:%M:%S", formatType="utc"),
        alt.Tooltip(f"{x}:T", title="local time", format="%Y-%m-%d %H:%M:%S"),
    ]


def line_chart(
    df: pl.DataFrame,
    *,
    x: str = "start",
    y: str,
    color: str | None = None,
    y_title: str = "",
    y_format: str = "",
    height: int = 220,
    rules: Sequence[tuple[datetime, str]] = (),
    y_zero: bool = True,
) -> Any:
    """A time series line chart (one line per `color` value), optional vertical rules."""
    import altair as alt

    enc: dict[str, Any] = {
        # 24-hour UTC labels at least a minute apart (Vega's default multi-format is 12-hour).
        "x": alt.X(
            f"{x}:T",
            title=None,
            scale=alt.Scale(type="utc"),
            axis=alt.Axis(format="%H:%M", formatType="utc", tickMinStep=60_000, labelOverlap=True),
        ),
        "y": alt.Y(
            f"{y}:Q",
            title=y_title or y,
            axis=alt.Axis(format=y_format) if y_format else alt.Axis(),
            scale=alt.Scale(zero=y_zero),
        ),
        "tooltip": [
            *time_tooltips(x),
            *([alt.Tooltip(f"{color}:N")] if color else []),
            alt.Tooltip(f"{y}:Q", format=y_format or ".3~f", title=y_title or y),
        ],
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", legend=alt.Legend(orient="bottom", title=None))
    chart = alt.Chart(alt.Data(values=_records(df))).mark_line(point=False).encode(**enc)
    if rules:
        rule_data = [
            {"at": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "label": label} for at, label in rules
        ]
        rule = (
            alt.Chart(alt.Data(values=rule_data))
            .mark_rule(color="#d62728", strokeDash=[4, 3])
            .encode(
                x=alt.X("at:T", scale=alt.Scale(type="utc")),
                tooltip=[alt.Tooltip("label:N"), *time_tooltips("at")],
            )
        )
        chart = chart + rule
    return chart.properties(height=height)


def bar_chart(
    df: pl.DataFrame,
    *,
    x: str,
    y: str,
    color: str | None = None,
    y_title: str = "",
    height: int = 220,
) -> Any:
    """A simple bar chart of a category against a number."""
    import altair as alt

    enc: dict[str, Any] = {
        "x": alt.X(f"{x}:N", title=None, sort="-y"),
        "y": alt.Y(f"{y}:Q", title=y_title or y),
        "tooltip": [alt.Tooltip(f"{x}:N"), alt.Tooltip(f"{y}:Q", format=".3~f")],
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", legend=alt.Legend(orient="bottom", title=None))
    return (
        alt.Chart(alt.Data(values=_records(df))).mark_bar().encode(**enc).properties(height=height)
    )
