"""OTLP AnyValue to plain Python, for protobuf messages and OTLP/JSON dicts alike."""

from __future__ import annotations

import base64
import json
from typing import Any


def proto_any(value: Any) -> Any:
    """A protobuf AnyValue as a Python value (lists and dicts for arrays and kvlists)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [proto_any(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: proto_any(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which)


def proto_attrs(attributes: Any) -> dict[str, Any]:
    """A repeated KeyValue as a dict."""
    return {kv.key: proto_any(kv.value) for kv in attributes}


def json_any(value: Any) -> Any:
    """An OTLP/JSON AnyValue object as a Python value; int64 may be a string or a number."""
    if not isinstance(value, dict) or not value:
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "bytesValue" in value:
        # AnyValue bytes are base64 in OTLP/JSON (only trace and span ids are hex)
        return base64.b64decode(value["bytesValue"])
    if "arrayValue" in value:
        return [json_any(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return {
            kv.get("key", ""): json_any(kv.get("value"))
            for kv in value["kvlistValue"].get("values", [])
        }
    return None


def json_attrs(attributes: Any) -> dict[str, Any]:
    """An OTLP/JSON attribute list as a dict."""
    if not attributes:
        return {}
    # proto3 JSON leaves out default values: a KeyValue with the empty key has no "key"
    return {kv.get("key", ""): json_any(kv.get("value")) for kv in attributes}


def int_or(value: Any, default: int) -> int:
    """Python's int(value); `default` where int() raises TypeError or ValueError."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def value_size(value: Any) -> int:
    """Approximate size in bytes of an attribute value (strings, bytes, nested values)."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, list):
        return sum(value_size(v) for v in value)
    if isinstance(value, dict):
        return sum(len(k) + value_size(v) for k, v in value.items())
    return 8


def image_tag(attrs: dict[str, Any]) -> str:
    """The tag of the container image a resource runs, "" when it names none.

    Semantic conventions: `container.image.tags` (a list, the first tag is taken), else the tag
    in `container.image.name` (`registry:5000/shop/api:2.3.1`; a digest-only name has none).
    """
    tags = attrs.get("container.image.tags")
    if isinstance(tags, str) and tags:
        return tags
    if isinstance(tags, list | tuple):
        first = next((str(t) for t in tags if t), "")
        if first:
            return first
    name = attrs.get("container.image.name")
    if not isinstance(name, str):
        return ""
    last = name.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def resource_version(attrs: dict[str, Any]) -> str:
    """The version a resource reports: `service.version`, else its container image's tag."""
    version = attrs.get("service.version")
    if version is not None and str(version):
        return str(version)
    return image_tag(attrs)


def events_json(events: list[dict[str, Any]]) -> str:
    """A span's events as the archive stores them: compact JSON with sorted keys, a bytes value
    in base64 as OTLP/JSON writes it (json.dumps refused bytes, which failed the whole batch)."""
    return json.dumps(events, separators=(",", ":"), sort_keys=True, default=_json_bytes)


def _json_bytes(value: object) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"an event attribute of type {type(value).__name__} has no JSON form")
