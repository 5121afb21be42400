"""Traces from an existing Jaeger through its API v3 (`SRE_JAEGER_URL`), as contract span frames.

Results are `ToolResult` values (status, data, error); nothing raises to the caller, so a caller can
tell a missing trace from an unreachable or broken Jaeger. Every request is bounded: `timeout_s`
per connect and per read (`SRE_JAEGER_TIMEOUT`, 10 s by default), and `max_bytes` of body.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import polars as pl

from sinks.brain.loading import spans_from_documents

_HEX = set("0123456789abcdef")
DEFAULT_TIMEOUT_S = 10.0
# A 100k-span trace in OTLP/JSON is about 100 MB; a larger answer is not a trace we can use.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's outcome: `status` ok / not_found / error, the frame (or None) and the error text."""

    status: Literal["ok", "not_found", "error"]
    data: pl.DataFrame | None = None
    error: str = ""


def _rfc3339_nano(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 1_000_000_000:09d}Z"


class JaegerClient:
    """A small read-only client of Jaeger's API v3 (`/api/v3/traces...`)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        attributes: Sequence[str] | None = None,
        future_slack_s: float = 60.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.attributes = attributes
        # Jaeger answers 404 when start_time_max is exactly "now"; ask slightly into the future.
        self.future_slack_s = future_slack_s

    def _get(self, path: str, query: dict[str, str] | None = None) -> ToolResult:
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                raw = resp.read(self.max_bytes + 1)
            if len(raw) > self.max_bytes:
                return ToolResult(
                    "error", error=f"GET {url}: answer larger than {self.max_bytes} bytes"
                )
            body = json.loads(raw.decode("utf-8"))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return ToolResult("not_found", error=f"GET {url}: 404 (Jaeger has no such trace)")
            return ToolResult("error", error=f"GET {url}: HTTP {exc.code}")
        except (TimeoutError, http.client.HTTPException) as exc:
            return ToolResult(
                "error", error=f"GET {url}: no answer within {self.timeout_s:g} s ({exc!r})"
            )
        except (urllib.error.URLError, OSError) as exc:
            return ToolResult("error", error=f"GET {url}: {exc}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return ToolResult("error", error=f"GET {url}: not JSON ({exc})")
        if not isinstance(body, dict):
            return ToolResult("error", error=f"GET {url}: unexpected JSON {type(body).__name__}")
        if "error" in body and "result" not in body:
            return ToolResult("error", error=f"GET {url}: {str(body['error'])[:300]}")
        try:
            frame = spans_from_documents([body], self.attributes)
        except (TypeError, ValueError, KeyError) as exc:
            return ToolResult("error", error=f"GET {url}: cannot decode spans: {exc}")
        if frame.height == 0:
            return ToolResult("not_found", frame, f"GET {url}: no spans")
        return ToolResult("ok", frame)

    def trace(self, trace_id: str) -> ToolResult:
        """One trace by its hex id."""
        tid = trace_id.strip().lower()
        if not tid or set(tid) - _HEX or len(tid) > 32:
            return ToolResult("error", error=f"not a hex trace id: {trace_id!r}")
        # Jaeger stores 128-bit ids; a 64-bit id (older clients) is the same id zero-padded.
        return self._get(f"/api/v3/traces/{tid.zfill(32)}")

    def search(
        self, service: str, start_ns: int, end_ns: int | None = None, limit: int = 100
    ) -> ToolResult:
        """Traces of `service` that started in [start_ns, end_ns] (end defaults to now + slack)."""
        if end_ns is None:
            now = int(datetime.now(tz=UTC).timestamp() * 1e9)
            end_ns = now + int(self.future_slack_s * 1e9)
        query = {
            "query.service_name": service,
            "query.start_time_min": _rfc3339_nano(start_ns),
            "query.start_time_max": _rfc3339_nano(end_ns),
            "query.num_traces": str(limit),
        }
        return self._get("/api/v3/traces", query)


def client_from_settings(settings: Any) -> JaegerClient | None:
    """A client when `SRE_JAEGER_URL` is set, else None; `SRE_JAEGER_TIMEOUT` (seconds) bounds it."""
    url = getattr(settings, "jaeger_url", None)
    if not url:
        return None
    try:
        timeout = float(os.environ.get("SRE_JAEGER_TIMEOUT", "") or DEFAULT_TIMEOUT_S)
    except ValueError:
        timeout = DEFAULT_TIMEOUT_S
    return JaegerClient(url, timeout_s=timeout if timeout > 0 else DEFAULT_TIMEOUT_S)


def as_frame(result: ToolResult) -> pl.DataFrame | None:
    """The frame of an ok result, else None."""
    return result.data if result.status == "ok" else None
