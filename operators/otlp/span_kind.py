"""OTLP span kinds: the numbers on the wire, their OTLP/JSON names and the words configs use."""

from __future__ import annotations

(
    SPAN_KIND_UNSPECIFIED,
    SPAN_KIND_INTERNAL,
    SPAN_KIND_SERVER,
    SPAN_KIND_CLIENT,
    SPAN_KIND_PRODUCER,
    SPAN_KIND_CONSUMER,
) = range(6)

KIND_NAMES: dict[int, str] = {
    SPAN_KIND_UNSPECIFIED: "unspecified",
    SPAN_KIND_INTERNAL: "internal",
    SPAN_KIND_SERVER: "server",
    SPAN_KIND_CLIENT: "client",
    SPAN_KIND_PRODUCER: "producer",
    SPAN_KIND_CONSUMER: "consumer",
}

# OTLP/JSON may spell the enum by name: "SPAN_KIND_SERVER" -> 2.
JSON_KINDS: dict[str, int] = {f"SPAN_KIND_{name.upper()}": k for k, name in KIND_NAMES.items()}

_BY_TEXT = {str(k): name for k, name in KIND_NAMES.items()}


def normalize_span_kind(kind: str | int) -> str:
    """`2`, `SERVER`, `SPAN_KIND_SERVER` and `server` all become `server`; unknown text stays."""
    text = str(kind).strip().lower().removeprefix("span_kind_")
    return _BY_TEXT.get(text, text)
