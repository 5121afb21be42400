"""PyGithub client construction and the retry policy shared by the GitHub forge and tracker.

PyGithub's own urllib3 retry sleeps inside the library, which tests cannot control, so it is turned
off and every GitHub step is retried here instead: 5xx, 429 and rate-limit 403s, connection errors.
The delay honours `Retry-After`, then `X-RateLimit-Reset` when `X-RateLimit-Remaining` is 0, then
exponential backoff, all capped; `sleep` and `clock` are injected. Only whole *idempotent steps* are
retried (each looks the forge up before it creates anything), never a bare POST.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException
from pydantic import SecretStr

from sinks.fixer.forge import ForgeError

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.github.com"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a GitHub step."""

    attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep)
    clock: Callable[[], float] = field(default=time.time)


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def retry_delay(exc: Exception, attempt: int, policy: RetryPolicy) -> float | None:
    """Seconds to wait before retrying after `exc`, or None when it must not be retried."""
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return min(policy.max_delay_s, policy.base_delay_s * 2**attempt)
    if not isinstance(exc, GithubException):
        return None
    headers = exc.headers
    remaining = _header(headers, "x-ratelimit-remaining")
    message = str((exc.data or {}).get("message", "") if isinstance(exc.data, dict) else "").lower()
    rate_limited = exc.status == 429 or (
        exc.status == 403 and (remaining == "0" or "rate limit" in message)
    )
    if not rate_limited and not 500 <= exc.status <= 599:
        return None
    retry_after = _header(headers, "retry-after")
    if retry_after is not None:
        try:
            return min(policy.max_delay_s, max(0.0, float(retry_after)))
        except ValueError:
            pass
    reset = _header(headers, "x-ratelimit-reset")
    if rate_limited and remaining == "0" and reset is not None:
        try:
            return min(policy.max_delay_s, max(0.0, float(reset) - policy.clock()))
        except ValueError:
            pass
    return min(policy.max_delay_s, policy.base_delay_s * 2**attempt)


def call_with_retries(what: str, fn: Callable[[], T], policy: RetryPolicy) -> T:
    """Run an idempotent step, retrying transient GitHub failures; ForgeError when it gives up."""
    for attempt in range(policy.attempts):
        try:
            return fn()
        except (GithubException, requests.exceptions.RequestException) as exc:
            delay = retry_delay(exc, attempt, policy)
            status = getattr(exc, "status", type(exc).__name__)
            if delay is None or attempt == policy.attempts - 1:
                raise ForgeError(f"GitHub {what} failed ({status}): {_short(exc)}") from exc
            log.warning(
                "GitHub %s failed (%s), retry %d/%d in %.2fs",
                what,
                status,
                attempt + 1,
                policy.attempts - 1,
                delay,
            )
            policy.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _short(exc: Exception) -> str:
    if isinstance(exc, GithubException) and isinstance(exc.data, dict):
        return str(exc.data.get("message", ""))[:200]
    return str(exc)[:200]


def make_github(
    token: SecretStr | str,
    *,
    base_url: str = DEFAULT_BASE_URL,
    timeout_s: int = 15,
    polite: bool = True,
) -> Github:
    """A PyGithub client with token auth and its internal retries off (we retry per step).

    `polite` keeps PyGithub's pauses between requests and writes (GitHub's secondary rate limits);
    tests against a local server turn it off.
    """
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    pauses: dict[str, Any] = (
        {}
        if polite
        else {
            "seconds_between_requests": None,
            "seconds_between_writes": None,
        }
    )
    return Github(
        auth=Auth.Token(secret), base_url=base_url, timeout=timeout_s, retry=None, **pauses
    )
