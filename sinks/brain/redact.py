"""Remove secrets and personal data from text before it goes anywhere near a prompt.

Span attributes, log lines and commit messages are untrusted: they may carry bearer tokens, API keys,
passwords, e-mail addresses or card numbers. Everything the narrator sends passes through here.
Redaction is deliberately greedy: a false positive costs a word of narrative, a false negative leaks.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"
EMAIL = "[EMAIL]"
CARD = "[CARD]"

# Attribute or header names whose whole value is a secret whatever it looks like.
_SENSITIVE_KEY = re.compile(
    r"(?i)(pass(word|wd)?|pwd|secret|token|api[_.-]?key|access[_.-]?key|private[_.-]?key|"
    r"authorization|auth|cookie|session|credential|card|cvv|ssn)"
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer <token> (and Basic): keep the scheme so the narrative still makes sense.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*"), r"\1 " + REDACTED),
    # JSON Web Tokens anywhere.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Provider key shapes: OpenAI, GitHub, AWS, Slack, Google.
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{12,}"), REDACTED),
    (re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,})"), REDACTED),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"), REDACTED),
    # Credentials in URLs: scheme://user:password@host
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), r"\1" + REDACTED + "@"),
    # key=value / key: value where the key names a secret.
    (
        re.compile(
            r"(?i)\b([\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|"
            r"client[_-]?secret|auth)[\w.-]*)(\"?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s&;,\"']+)"
        ),
        r"\1\2" + REDACTED,
    ),
    # E-mail addresses (RFC 5322 local parts may start with symbols such as `/`).
    (
        re.compile(
            r"(?i)(?<![a-z0-9!#$%&'*+/=?^_`{|}~.-])[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
            r"(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
            r"@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9][a-z0-9-]*"
        ),
        EMAIL,
    ),
)

# 13 to 19 digits, optionally grouped by single spaces or dashes, not glued to other word characters
# (so that hex trace ids and long numeric ids embedded in words stay intact).
_CARD_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])(?:\d[ -]?){12,18}\d(?![0-9A-Za-z])")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (what card numbers satisfy)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return CARD if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group(0)


def redact(text: str) -> str:
    """`text` with tokens, keys, passwords, e-mail addresses and Luhn-valid card numbers replaced."""
    out = text
    for pattern, repl in _PATTERNS:
        out = pattern.sub(repl, out)
    return _CARD_CANDIDATE.sub(_card, out)


def is_sensitive_key(key: str) -> bool:
    """True when an attribute or header name says its value is a secret or personal data."""
    return bool(_SENSITIVE_KEY.search(key))


def redact_value(value: Any) -> Any:
    """Redact recursively: strings are scrubbed, values under sensitive keys are dropped whole."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            str(k): (REDACTED if is_sensitive_key(str(k)) else redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def redact_strings(value: Any) -> Any:
    """Redact every string in a JSON-like value, keeping its shape and keys (for records)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_strings(v) for v in value]
    return value
