"""Rendered Kubernetes objects and a flagd file as per-service logical documents, and back.

The logical document is the playbook's contract (`version`, `replicas`, `resources.memory_limit_mib`,
...); this module converts between its values and the Kubernetes spellings (image tags, `256Mi`,
`500m`, env strings, the kubectl restart annotation, flagd default variants).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sre_space.gitops.config import GitOpsConfig

RESTART_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
WORKLOAD_KINDS = ("Deployment",)
FLAGS_PREFIX = "feature_flags."
# Keys kept in a workload (env keys come from the config; flags from the flag file).
LOGICAL_KEYS = (
    "version",
    "replicas",
    "resources.memory_limit_mib",
    "resources.cpu_limit_millicores",
    "rollout.restarted_at",
)

_MEMORY = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024, "": 1 / (1024 * 1024)}
_MEMORY_SI = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


class LogicalError(ValueError):
    """A value cannot be read as, or written from, its logical form."""


def split_image(image: str) -> tuple[str, str]:
    """An image reference as (name, tag); an image without a tag is a LogicalError."""
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag or "@" in image:
        raise LogicalError(f"image {image!r} has no tag; the Fixer only changes tagged images")
    return name, tag


def mib(quantity: Any) -> int:
    """A memory quantity (`256Mi`, `1Gi`, `512M`, bytes) in MiB."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i|[kMGT]|)", str(quantity).strip())
    if not m:
        raise LogicalError(f"memory quantity {quantity!r} is not understood")
    number, unit = float(m.group(1)), m.group(2)
    value = number * _MEMORY[unit] if unit in _MEMORY else number * _MEMORY_SI[unit] / 2**20
    return round(value)


def millicores(quantity: Any) -> int:
    """A CPU quantity (`500m`, `1`, `1.5`) in millicores."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(m?)", str(quantity).strip())
    if not m:
        raise LogicalError(f"cpu quantity {quantity!r} is not understood")
    return round(float(m.group(1)) * (1 if m.group(2) else 1000))


def container(workload: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """The workload's main container: the one named like the workload, else the first."""
    containers = ((workload.get("spec") or {}).get("template") or {}).get("spec", {})
    items = containers.get("containers") or []
    if not items:
        raise LogicalError(f"{workload['metadata']['name']} has no containers")
    for i, c in enumerate(items):
        if c.get("name") == workload["metadata"]["name"]:
            return i, c
    return 0, items[0]


def _env_value(key: str, text: str) -> Any:
    if key == "circuit_breaker":
        return text.strip().lower() == "true"
    try:
        return int(text)
    except ValueError:
        raise LogicalError(f"env value {text!r} for {key} is not an integer") from None


def env_text(key: str, value: Any) -> str:
    """A logical value as the env var's string."""
    if key == "circuit_breaker":
        return "true" if value else "false"
    return str(value)


def document(workload: Mapping[str, Any], config: GitOpsConfig) -> dict[str, Any]:
    """A rendered Deployment as its service's logical document (no feature flags)."""
    name = workload["metadata"]["name"]
    _, c = container(workload)
    doc: dict[str, Any] = {"service": name, "version": split_image(str(c.get("image", "")))[1]}
    doc["replicas"] = int((workload.get("spec") or {}).get("replicas", 1))
    limits = (c.get("resources") or {}).get("limits") or {}
    resources: dict[str, Any] = {}
    if "memory" in limits:
        resources["memory_limit_mib"] = mib(limits["memory"])
    if "cpu" in limits:
        resources["cpu_limit_millicores"] = millicores(limits["cpu"])
    if resources:
        doc["resources"] = resources
    env = {e.get("name"): e.get("value") for e in c.get("env") or [] if "value" in e}
    for key, var in config.env.items():
        if var in env:
            _put(doc, key, _env_value(key, str(env[var])))
    meta = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
    restarted = (meta.get("annotations") or {}).get(RESTART_ANNOTATION)
    if restarted is not None:
        _put(doc, "rollout.restarted_at", str(restarted))
    return doc


def _put(doc: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = doc
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def flag_owner(flag: Mapping[str, Any], config: GitOpsConfig) -> str | None:
    """The service a flag's metadata names, or None for a flag of every service."""
    owner = (flag.get("metadata") or {}).get(config.flag_owner)
    return str(owner) if owner is not None else None


def documents(
    objs: list[dict[str, Any]], flags: Mapping[str, Any] | None, config: GitOpsConfig
) -> dict[str, dict[str, Any]]:
    """Every workload's logical document, with the flags it owns (on = default variant `on`)."""
    out: dict[str, dict[str, Any]] = {}
    for obj in objs:
        if obj.get("kind") in WORKLOAD_KINDS:
            out[obj["metadata"]["name"]] = document(obj, config)
    for key, flag in ((flags or {}).get("flags") or {}).items():
        owner = flag_owner(flag, config)
        for service, doc in out.items():
            if owner in (None, service):
                doc.setdefault("feature_flags", {})[key] = flag.get("defaultVariant") == "on"
    return out
