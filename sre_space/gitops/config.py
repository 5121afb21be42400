"""How a Kubernetes GitOps repository keeps each logical key: env names, flag file, values paths.

The repository may carry `sre-space.gitops.yaml` at its root; anything it leaves out takes the
defaults below, which name no application (env names are the operator's to choose).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

CONFIG_PATH = "sre-space.gitops.yaml"

# Logical keys that live in a container's environment, and their default variable names.
DEFAULT_ENV: dict[str, str] = {
    "timeouts.downstream_ms": "DOWNSTREAM_TIMEOUT_MS",
    "connection_pool.max": "CONNECTION_POOL_MAX",
    "circuit_breaker": "CIRCUIT_BREAKER_ENABLED",
}

# Where a chart's values keep a service's settings, relative to `helm.service_key`; the
# defaults follow `helm create`'s values (image.tag, replicaCount, resources, podAnnotations).
DEFAULT_HELM_PATHS: dict[str, str] = {
    "version": "image.tag",
    "replicas": "replicaCount",
    "resources.memory_limit_mib": "resources.limits.memory",
    "resources.cpu_limit_millicores": "resources.limits.cpu",
    "env": "env",
    "annotations": "podAnnotations",
}

DEFAULT_PROTECTED = (".github/*", "*/templates/*", "templates/*", CONFIG_PATH)


class ConfigError(ValueError):
    """The repository's gitops config is malformed."""


@dataclass(frozen=True, slots=True)
class GitOpsConfig:
    """Where logical keys live in the repository, and which paths the Fixer may never edit."""

    env: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ENV))
    flag_file: str = "flags/flags.flagd.json"
    flag_owner: str = "service"  # flag metadata key naming the service a flag belongs to
    kustomize_overlay: str | None = None
    helm_chart: str | None = None
    helm_values: str = "values.yaml"
    helm_release: str = "release"
    helm_service_key: str = "{service}"
    helm_paths: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_HELM_PATHS))
    protected: tuple[str, ...] = DEFAULT_PROTECTED
    kubernetes_version: str = "1.37.0"

    def is_protected(self, path: str) -> bool:
        """True when the path matches a protected glob."""
        return any(fnmatch.fnmatchcase(path, glob) for glob in self.protected)

    @classmethod
    def from_text(cls, text: str | None) -> GitOpsConfig:
        """The config of `sre-space.gitops.yaml` (None: the defaults)."""
        if text is None:
            return cls()
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{CONFIG_PATH} is not valid YAML: {exc}") from None
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{CONFIG_PATH} must be a mapping")
        flags = _section(raw, "flags")
        kust = _section(raw, "kustomize")
        helm = _section(raw, "helm")
        base = cls()
        return cls(
            env={**base.env, **{str(k): str(v) for k, v in _section(raw, "env").items()}},
            flag_file=str(flags.get("file", base.flag_file)),
            flag_owner=str(flags.get("owner_metadata", base.flag_owner)),
            kustomize_overlay=_opt(kust.get("overlay")),
            helm_chart=_opt(helm.get("chart")),
            helm_values=str(helm.get("values", base.helm_values)),
            helm_release=str(helm.get("release", base.helm_release)),
            helm_service_key=str(helm.get("service_key", base.helm_service_key)),
            helm_paths={
                **base.helm_paths,
                **{str(k): str(v) for k, v in _section(helm, "paths").items()},
            },
            protected=base.protected + tuple(str(p) for p in raw.get("protected", []) or []),
            kubernetes_version=str(raw.get("kubernetes_version", base.kubernetes_version)),
        )


def _section(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{CONFIG_PATH}: {name} must be a mapping")
    return value


def _opt(value: Any) -> str | None:
    return None if value is None else str(value).strip("/")
