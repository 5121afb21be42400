"""Manifest validation driven by `service.schema.json`.

`jsonschema` is not a project dependency, so this is a small validator for exactly the keywords the
schema file uses (type, required, properties, additionalProperties, minimum, maximum, pattern,
propertyNames). Bounds live in the schema file only: change them there.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "service.schema.json"

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
}
_SUPPORTED = {
    "$schema", "$id", "title", "description", "type", "required", "properties",
    "additionalProperties", "minimum", "maximum", "pattern", "propertyNames",
}  # fmt: skip


@cache
def schema_text() -> str:
    """The JSON Schema of a service manifest, as shipped with the package."""
    return resources.files("chaos").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def load_schema() -> dict[str, Any]:
    """The JSON Schema of a service manifest as data."""
    data: dict[str, Any] = json.loads(schema_text())
    return data


def validate(doc: Any, schema: dict[str, Any] | None = None) -> list[str]:
    """Errors of `doc` against the schema (empty when valid); each names the field path."""
    errors: list[str] = []
    _check(doc, schema if schema is not None else load_schema(), "$", errors)
    return errors


def _is_type(value: Any, name: str) -> bool:
    # bool is an int in Python but not an integer in JSON Schema
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def _check(value: Any, schema: dict[str, Any], path: str, errors: list[str]) -> None:
    unknown = set(schema) - _SUPPORTED
    if unknown:
        raise ValueError(
            f"schema keyword(s) {sorted(unknown)} at {path} are not supported by chaos.schema"
        )
    expected = schema.get("type")
    if expected and not _is_type(value, expected):
        errors.append(f"{path}: expected {expected}, got {type(value).__name__} {value!r}")
        return
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: {value!r} is below the minimum {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: {value!r} is above the maximum {schema['maximum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if not isinstance(value, dict):
        return
    for key in schema.get("required", ()):
        if key not in value:
            errors.append(f"{path}.{key}: required field is missing")
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    names = schema.get("propertyNames")
    for key, item in value.items():
        sub = f"{path}.{key}"
        if names is not None:
            _check(key, {"type": "string", **names}, f"{sub} (name)", errors)
        if key in props:
            _check(item, props[key], sub, errors)
        elif extra is False:
            errors.append(f"{sub}: unknown field")
        elif isinstance(extra, dict):
            _check(item, extra, sub, errors)
