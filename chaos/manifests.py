"""Service manifests: parse, validate, render; the shop's typed view of desired state."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml

from chaos.schema import validate
from chaos.topology import DEFAULT_MANIFESTS


class ManifestError(ValueError):
    """A manifest does not validate; the message names the file and fields."""


@dataclass(frozen=True)
class Desired:
    """The desired state of one service, as the shop uses it."""

    service: str
    version: str
    replicas: int
    memory_limit_mib: int
    cpu_limit_millicores: int
    downstream_timeout_ms: int
    circuit_breaker: bool
    pool_max: int
    flags: tuple[tuple[str, bool], ...]
    restarted_at: str

    def flag(self, name: str) -> bool:
        """The value of a feature flag (False when absent)."""
        return dict(self.flags).get(name, False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Desired:
        """A typed view of a validated manifest document."""
        return cls(
            service=doc["service"],
            version=str(doc["version"]),
            replicas=int(doc["replicas"]),
            memory_limit_mib=int(doc["resources"]["memory_limit_mib"]),
            cpu_limit_millicores=int(doc["resources"]["cpu_limit_millicores"]),
            downstream_timeout_ms=int(doc["timeouts"]["downstream_ms"]),
            circuit_breaker=bool(doc["circuit_breaker"]),
            pool_max=int(doc["connection_pool"]["max"]),
            flags=tuple(sorted((str(k), bool(v)) for k, v in doc["feature_flags"].items())),
            restarted_at=str(doc["rollout"]["restarted_at"] or ""),
        )


def default_docs() -> dict[str, dict[str, Any]]:
    """Fresh copies of the default manifest documents, by service."""
    return copy.deepcopy(DEFAULT_MANIFESTS)


class _Quoted(str):
    """A string always written in double quotes (versions, like the contract's example)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Quoted, lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
)


def render(doc: dict[str, Any]) -> str:
    """A manifest document as YAML text, keys in contract order (stable bytes for git)."""
    out = dict(doc)
    out["version"] = _Quoted(doc["version"])
    return yaml.dump(out, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def parse(text: str, filename: str) -> dict[str, Any]:
    """Parse and validate a manifest; raises ManifestError naming the file and the fields."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{filename}: not valid YAML: {exc}") from None
    errors = validate(doc)
    expected = filename.rsplit("/", 1)[-1].removesuffix(".yaml")
    if not errors and doc["service"] != expected:
        errors.append(f"$.service: {doc['service']!r} must equal the file name {expected!r}")
    if errors:
        raise ManifestError(f"{filename} is invalid:\n  " + "\n  ".join(errors))
    assert isinstance(doc, dict)
    return doc
