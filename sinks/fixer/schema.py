"""A small JSON Schema validator for service manifests (the forge's schema check).

`jsonschema` is not a dependency, and the manifest schema needs only a handful of keywords: `type`,
`properties`, `required`, `additionalProperties`, `patternProperties`, `minimum`, `maximum`,
`exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`, `minLength`, `maxLength`, `pattern`, `enum`,
`const`, `items`, `minItems`, `maxItems`, `propertyNames`, `minProperties`, `maxProperties`, `allOf`, `anyOf`, `oneOf`, `not` and local `$ref`
(`#/$defs/...`, `#/definitions/...`). Other keywords are ignored, which is what a validator does
with annotations; a schema that relies on an unsupported assertion is validated less strictly,
never more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sinks.fixer.manifest import (
    BUILTIN_SCHEMA,
    SCHEMA_PATH,
    ManifestError,
    parse,
    service_of_path,
)

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
    "number": (int, float),
    "integer": (int,),
}


def _is_type(value: Any, name: str) -> bool:
    if name in ("number", "integer") and isinstance(value, bool):
        return False  # bool is an int subclass in Python, never a number in JSON
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, (object,)))


def validate(instance: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every violation of `schema` by `instance`, as `path: message` strings (empty when valid)."""
    errors: list[str] = []
    _check(instance, schema, schema, "$", errors)
    return errors


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if not ref.startswith("#/"):
        raise ManifestError(f"unsupported $ref {ref!r}: only local references are resolved")
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            raise ManifestError(f"$ref {ref!r} does not resolve in the schema")
        node = node[part]
    if not isinstance(node, Mapping):
        raise ManifestError(f"$ref {ref!r} does not point at a schema")
    return node


def _check(
    value: Any,
    schema: Mapping[str, Any] | bool,
    root: Mapping[str, Any],
    at: str,
    errors: list[str],
) -> None:
    if schema is True:
        return
    if schema is False:
        errors.append(f"{at}: not allowed")
        return
    if "$ref" in schema:
        _check(value, _resolve(schema["$ref"], root), root, at, errors)
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            errors.append(f"{at}: expected {' or '.join(names)}, got {_json_type(value)}")
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{at}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{at}: must be {schema['const']!r}")
    if _is_type(value, "number"):
        _check_number(value, schema, at, errors)
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{at}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{at}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{at}: {value!r} does not match {schema['pattern']!r}")
    if isinstance(value, dict):
        _check_object(value, schema, root, at, errors)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{at}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{at}: more than {schema['maxItems']} items")
        if isinstance(schema.get("items"), Mapping | bool):
            for i, item in enumerate(value):
                _check(item, schema["items"], root, f"{at}[{i}]", errors)
    for sub in schema.get("allOf", []):
        _check(value, sub, root, at, errors)
    if "anyOf" in schema and not any(not validate_sub(value, s, root) for s in schema["anyOf"]):
        errors.append(f"{at}: matches none of anyOf")
    if "oneOf" in schema:
        matches = sum(1 for s in schema["oneOf"] if not validate_sub(value, s, root))
        if matches != 1:
            errors.append(f"{at}: matches {matches} of oneOf, expected exactly 1")
    if "not" in schema and not validate_sub(value, schema["not"], root):
        errors.append(f"{at}: must not match the `not` schema")


def validate_sub(
    value: Any, schema: Mapping[str, Any] | bool, root: Mapping[str, Any]
) -> list[str]:
    """Violations of a sub-schema, resolving `$ref` against the root schema."""
    errors: list[str] = []
    _check(value, schema, root, "$", errors)
    return errors


def _check_number(value: float, schema: Mapping[str, Any], at: str, errors: list[str]) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{at}: {value} is below the minimum {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{at}: {value} is above the maximum {schema['maximum']}")
    ex_min, ex_max = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_min, int | float) and not isinstance(ex_min, bool) and value <= ex_min:
        errors.append(f"{at}: {value} must be greater than {ex_min}")
    if isinstance(ex_max, int | float) and not isinstance(ex_max, bool) and value >= ex_max:
        errors.append(f"{at}: {value} must be less than {ex_max}")
    step = schema.get("multipleOf")
    if step and (value / step) != int(value / step):
        errors.append(f"{at}: {value} is not a multiple of {step}")


def _check_object(
    value: dict[str, Any],
    schema: Mapping[str, Any],
    root: Mapping[str, Any],
    at: str,
    errors: list[str],
) -> None:
    for key in schema.get("required", []):
        if key not in value:
            errors.append(f"{at}: missing required key {key!r}")
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errors.append(f"{at}: fewer than {schema['minProperties']} keys")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(f"{at}: more than {schema['maxProperties']} keys")
    if "propertyNames" in schema:
        for key in value:
            for err in validate_sub(key, schema["propertyNames"], root):
                errors.append(f"{at}: key {key!r}: {err.removeprefix('$: ')}")
    props: Mapping[str, Any] = schema.get("properties", {})
    patterns: Mapping[str, Any] = schema.get("patternProperties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        where = f"{at}.{key}"
        matched = False
        if key in props:
            matched = True
            _check(item, props[key], root, where, errors)
        for pattern, sub in patterns.items():
            if re.search(pattern, str(key)):
                matched = True
                _check(item, sub, root, where, errors)
        if not matched:
            if extra is False:
                errors.append(f"{where}: unexpected key")
            elif isinstance(extra, Mapping):
                _check(item, extra, root, where, errors)


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return name
    return type(value).__name__


def validate_manifest_text(
    path: str, text: str, schema: Mapping[str, Any] | None = None
) -> list[str]:
    """Violations of one manifest file: YAML, the schema (built-in when None), `service` == name."""
    service = service_of_path(path)
    if service is None:
        return [f"{path}: not a service manifest path (expected services/<service>.yaml)"]
    try:
        doc = parse(text)
    except ManifestError as exc:
        return [f"{path}: {exc}"]
    errors = [f"{path}: {e}" for e in validate(doc, schema or BUILTIN_SCHEMA)]
    if doc.get("service") != service:
        errors.append(
            f"{path}: service {doc.get('service')!r} must equal the file name {service!r}"
        )
    return errors


def load_schema(text: str | None) -> tuple[dict[str, Any] | None, str]:
    """The repository's schema (None when missing or unreadable) and a note for the check."""
    if text is None:
        return None, f"{SCHEMA_PATH} missing, used the built-in contract schema"
    try:
        schema = json.loads(text)
    except ValueError as exc:
        return None, f"{SCHEMA_PATH} is not valid JSON ({exc}), used the built-in schema"
    if not isinstance(schema, dict):
        return None, f"{SCHEMA_PATH} is not an object, used the built-in schema"
    return schema, f"validated against {SCHEMA_PATH}"
