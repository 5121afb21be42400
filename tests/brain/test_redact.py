"""Redaction: secrets and personal data never survive; ids and ordinary text do."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.brain.redact import CARD, EMAIL, REDACTED, luhn_valid, redact, redact_value


def _luhn_complete(body: str) -> str:
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


@st.composite
def card_numbers(draw: st.DrawFn) -> tuple[str, str]:
    length = draw(st.integers(13, 19))
    body = draw(st.text("0123456789", min_size=length - 1, max_size=length - 1))
    digits = _luhn_complete(body)
    sep = draw(st.sampled_from(["", " ", "-"]))
    if sep:
        groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]
        return digits, sep.join(groups)
    return digits, digits


@settings(max_examples=200, deadline=None)
@given(card_numbers(), st.text(st.characters(codec="ascii", categories=["L", "Zs"]), max_size=20))
def test_luhn_valid_card_numbers_are_removed(card: tuple[str, str], prefix: str) -> None:
    digits, written = card
    out = redact(f"{prefix} card={written} ok")
    assert digits not in out.replace(" ", "").replace("-", "")
    assert written not in out


@settings(max_examples=200, deadline=None)
@given(st.emails())
def test_emails_are_removed(email: str) -> None:
    out = redact(f"user {email} signed in")
    assert email not in out
    assert EMAIL in out or REDACTED in out


@settings(max_examples=100, deadline=None)
@given(st.text("0123456789abcdef", min_size=32, max_size=32))
def test_trace_ids_survive(trace_id: str) -> None:
    assert redact(f"see trace {trace_id}") == f"see trace {trace_id}"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcDEF123",
            "eyJhbGciOiJIUzI1NiJ9",
        ),
        ("bearer abc123def456ghi789", "abc123def456ghi789"),
        ("OPENAI key sk-proj-AbCdEf0123456789xyzXYZ", "sk-proj-AbCdEf0123456789xyzXYZ"),
        ("token ghp_0123456789abcdefghijABCDEFGHIJ0123456789", "ghp_0123456789abcdefghij"),
        ("db password=hunter2 host=x", "hunter2"),
        ('{"api_key": "s3cr3t-v@lue"}', "s3cr3t-v@lue"),
        ("DSN postgres://admin:pa55w0rd@db:5432/shop", "pa55w0rd"),
        ("aws AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
    ],
)
def test_known_secret_shapes_are_removed(text: str, secret: str) -> None:
    assert secret not in redact(text)


def test_non_luhn_numbers_and_plain_text_stay() -> None:
    assert redact("order 1234567890123 total 42") == "order 1234567890123 total 42"
    assert redact("checkout 'POST /checkout' failed") == "checkout 'POST /checkout' failed"
    assert CARD in redact("4111-1111-1111-1111")


def test_sensitive_keys_are_dropped_whole() -> None:
    value = {
        "http.request.header.authorization": "Basic dXNlcjpwYXNz",
        "app.user.password": "x",
        "http.route": "/checkout",
        "nested": [{"enduser.email": "a@b.co"}],
    }
    out = redact_value(value)
    assert out["http.request.header.authorization"] == REDACTED
    assert out["app.user.password"] == REDACTED
    assert out["http.route"] == "/checkout"
    assert "a@b.co" not in str(out)
