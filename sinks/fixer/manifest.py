"""Service manifests of the GitOps repository: parse, edit with minimal diffs, flatten and compare.

The layout is fixed by docs/contracts.md: `services/<service>.yaml`, one mapping per service. Edits
rewrite only the line that holds a changed scalar, so that comments and key order survive and a
reviewer sees a one-line diff; when a targeted edit is not possible (a new key, an unusual layout)
the whole document is dumped again, and the result is always re-parsed and compared with the
intended document before it is used.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

SERVICES_DIR = "services"
SCHEMA_PATH = "schema/service.schema.json"
_SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class ManifestError(ValueError):
    """A manifest cannot be parsed or edited; the message says which and why."""


def manifest_path(service: str) -> str:
    """The repository path of a service's manifest; refuses names that could escape `services/`."""
    if not _SERVICE_NAME.match(service):
        raise ManifestError(
            f"invalid service name {service!r}: expected lowercase letters, digits and '-'"
        )
    return f"{SERVICES_DIR}/{service}.yaml"


def service_of_path(path: str) -> str | None:
    """The service a manifest path belongs to, or None when the path is not a service manifest."""
    m = re.fullmatch(r"services/([a-z0-9][a-z0-9-]*)\.yaml", path)
    return m.group(1) if m else None


def parse(text: str) -> dict[str, Any]:
    """A manifest's YAML text as a mapping; anything else is a ManifestError."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"manifest is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"manifest must be a mapping, got {type(data).__name__}")
    return data


def dump(doc: Mapping[str, Any]) -> str:
    """A mapping as block-style YAML, keys in insertion order."""
    return yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False, allow_unicode=True)


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaf values by dotted key (`resources.memory_limit_mib`); empty mappings are leaves."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose leaf value differs, was added or was removed, sorted."""
    a, b = flatten(old), flatten(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k, _MISSING) != b.get(k, _MISSING))


_MISSING = object()


def get_path(doc: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """The value at a dotted key, or `default` when any part is missing."""
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def set_path(doc: Mapping[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of `doc` with the dotted key set (intermediate mappings created)."""
    out = copy.deepcopy(dict(doc))
    node = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value
    return out


def _scalar(value: Any) -> str:
    """One YAML scalar as it would appear after `key: `."""
    if isinstance(value, str):
        # JSON strings are valid YAML double-quoted scalars; quoting keeps "1.4.2" a string.
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    raise ManifestError(f"cannot write a {type(value).__name__} as a scalar")


_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.\-]+|\"[^\"]*\"|'[^']*'):(?P<rest>.*)$")


def _split_comment(rest: str) -> tuple[str, str]:
    """Split ` value   # comment` into value and the comment (with its leading spaces)."""
    in_quote: str | None = None
    for i, ch in enumerate(rest):
        if in_quote:
            if ch == in_quote:
                in_quote = None
        elif ch in "\"'":
            in_quote = ch
        elif ch == "#" and (i == 0 or rest[i - 1] in " \t"):
            j = i
            while j > 0 and rest[j - 1] in " \t":
                j -= 1
            return rest[:j], rest[j:]
    return rest, ""


def _edit_line(text: str, dotted: str, value: Any) -> str | None:
    """Rewrite the scalar line at a dotted key in block-style YAML; None when it cannot be found."""
    parts = dotted.split(".")
    lines = text.splitlines(keepends=True)
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    for idx, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("-"):
            continue
        m = _LINE.match(line.rstrip("\r\n"))
        if not m:
            continue
        indent = len(m.group("indent"))
        key = m.group("key").strip("\"'")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        value_part, comment = _split_comment(m.group("rest"))
        if path == parts:
            if not value_part.strip():
                return None  # a mapping, not a scalar
            newline = line[len(line.rstrip("\r\n")) :]
            lines[idx] = f"{m.group('indent')}{m.group('key')}: {_scalar(value)}{comment}{newline}"
            return "".join(lines)
        if not value_part.strip():
            stack.append((indent, key))
    return None


def edit(text: str, changes: Mapping[str, Any]) -> str:
    """The manifest text with dotted keys set to new values, touching as few lines as possible.

    The result is re-parsed and must equal the intended document; otherwise the whole document is
    dumped again (comments lost, content exact).
    """
    doc = parse(text)
    want = doc
    for dotted, value in changes.items():
        want = set_path(want, dotted, value)
    out: str | None = text
    for dotted, value in changes.items():
        out = _edit_line(out, dotted, value) if out is not None else None
    if out is not None:
        try:
            if parse(out) == want:
                return out
        except ManifestError:
            pass
    return dump(want)


# The manifest contract of docs/contracts.md as a JSON Schema, used when the repository has no
# `schema/service.schema.json` (the repository's own schema always wins).
BUILTIN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "SRE-Space service manifest",
    "type": "object",
    "required": ["service", "version", "replicas", "resources"],
    "properties": {
        "service": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"},
        "version": {"type": "string", "minLength": 1},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 20},
        "resources": {
            "type": "object",
            "properties": {
                "memory_limit_mib": {"type": "integer", "minimum": 64, "maximum": 8192},
                "cpu_limit_millicores": {"type": "integer", "minimum": 100, "maximum": 8000},
            },
        },
        "timeouts": {
            "type": "object",
            "properties": {"downstream_ms": {"type": "integer", "minimum": 50, "maximum": 30000}},
        },
        "circuit_breaker": {"type": "boolean"},
        "connection_pool": {
            "type": "object",
            "properties": {"max": {"type": "integer", "minimum": 1, "maximum": 500}},
        },
        "feature_flags": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "rollout": {
            "type": "object",
            "properties": {"restarted_at": {"type": "string"}},
        },
    },
}
