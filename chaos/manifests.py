"""The shop's desired state as a Kubernetes GitOps repository, and the shop's typed view of it.

`repository_files(docs)` writes per-service logical documents (`version`, `replicas`,
`resources.memory_limit_mib`, ...; the shape `sre_space.gitops.logical` reads back from a render)
the way a team would keep them: a kustomize base with a Deployment and a Service per service, a
production overlay that pins image tags and replica counts, a flagd flag file and the
`sre-space.gitops.yaml` that tells the Fixer which env vars and files hold what.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from chaos.topology import BACKENDS, DEFAULT_MANIFESTS, NAMESPACE
from sre_space.gitops.config import CONFIG_PATH
from sre_space.gitops.logical import RESTART_ANNOTATION

OVERLAY = "overlays/production"
FLAG_FILE = "flags/shop.flagd.json"
IMAGE_REPO = "ghcr.io/sre-space/shop"
# The shop's own variable names; the Fixer learns them from sre-space.gitops.yaml.
ENV = {
    "timeouts.downstream_ms": "SHOP_DOWNSTREAM_TIMEOUT_MS",
    "connection_pool.max": "SHOP_POOL_MAX_CONNECTIONS",
    "circuit_breaker": "SHOP_CIRCUIT_BREAKER",
}
_PORTS = {"postgres": 5432, "redis": 6379}


class ManifestError(ValueError):
    """The repository does not render to the intended desired state; the message says why."""


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

    def pod_template(self) -> str:
        """What the Deployment's pod template holds (image tag, limits, env, restart annotation):
        a change of any of it rolls the pods, as in Kubernetes; replicas and flagd flags do not."""
        fields: tuple[object, ...] = (self.version, self.restarted_at, self.memory_limit_mib)
        fields += (self.cpu_limit_millicores, self.downstream_timeout_ms)
        fields += (self.circuit_breaker, self.pool_max)
        return "/".join(str(v) for v in fields)

    def flag(self, name: str) -> bool:
        """The value of a feature flag (False when absent)."""
        return dict(self.flags).get(name, False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Desired:
        """A typed view of a complete logical document (see `complete`)."""
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
    """Fresh copies of the default logical documents, by service."""
    return copy.deepcopy(DEFAULT_MANIFESTS)


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """A rendered logical document with every key the shop needs; a missing one is an error.

    A render leaves out what Kubernetes leaves out: no restart annotation before the first restart,
    no flags for a service that owns none.
    """
    out = copy.deepcopy(doc)
    out.setdefault("rollout", {}).setdefault("restarted_at", "")
    out.setdefault("feature_flags", {})
    missing = [
        key
        for key in (
            "version",
            "replicas",
            "resources.memory_limit_mib",
            "resources.cpu_limit_millicores",
            *ENV,
        )
        if not _has(out, key)
    ]
    if missing:
        raise ManifestError(f"Deployment {doc.get('service')!r} does not set {', '.join(missing)}")
    return out


def _has(doc: dict[str, Any], dotted: str) -> bool:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _image(service: str) -> str:
    return f"{IMAGE_REPO}/{service}"


def _env_text(key: str, doc: dict[str, Any]) -> str:
    node: Any = doc
    for part in key.split("."):
        node = node[part]
    return ("true" if node else "false") if isinstance(node, bool) else str(node)


def service_file(doc: dict[str, Any]) -> str:
    """`base/<service>.yaml`: the service's Deployment and Service.

    The base keeps the baseline image tag and replica count; the overlay pins what production runs.
    """
    name = doc["service"]
    baseline = DEFAULT_MANIFESTS[name]
    port = _PORTS.get(name, 8080)
    restarted = doc["rollout"]["restarted_at"]
    annotations = (
        f"      annotations:\n        {RESTART_ANNOTATION}: {json.dumps(restarted)}\n"
        if restarted
        else ""
    )
    env = "".join(
        f"            - name: {var}\n              value: {json.dumps(_env_text(key, doc))}\n"
        for key, var in ENV.items()
    )
    kind = "datastore" if name in BACKENDS else "service"
    return f"""# {name}: the shop's {name} {kind}.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/part-of: shop
spec:
  replicas: {baseline["replicas"]}  # the overlay sets the count production runs
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {name}
{annotations}    spec:
      containers:
        - name: {name}
          image: {_image(name)}:{baseline["version"]}  # the overlay pins the tag
          ports:
            - name: main
              containerPort: {port}
          # client settings the service reads at start (see sre-space.gitops.yaml)
          env:
{env}          resources:
            limits:
              memory: {doc["resources"]["memory_limit_mib"]}Mi
              cpu: {doc["resources"]["cpu_limit_millicores"]}m
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
spec:
  selector:
    app.kubernetes.io/name: {name}
  ports:
    - name: main
      port: {port}
      targetPort: main
"""


def overlay_file(docs: dict[str, dict[str, Any]]) -> str:
    """`overlays/production/kustomization.yaml`: what production runs, tag and count per service."""
    images = "".join(
        f"  - name: {_image(n)}\n    newTag: {json.dumps(str(d['version']))}\n"
        for n, d in sorted(docs.items())
    )
    replicas = "".join(
        f"  - name: {n}\n    count: {d['replicas']}\n" for n, d in sorted(docs.items())
    )
    return f"""# Production: the image tag each service runs and its replica count.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {NAMESPACE}
resources:
  - ../../base
images:
{images}replicas:
{replicas}"""


def base_file(docs: dict[str, dict[str, Any]]) -> str:
    """`base/kustomization.yaml`: one file per service."""
    files = "".join(f"  - {n}.yaml\n" for n in sorted(docs))
    return f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{files}"


def flag_file(docs: dict[str, dict[str, Any]]) -> str:
    """The flagd flag file: one boolean flag per feature flag, owned by its service."""
    flags = {
        flag: {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on" if value else "off",
            "metadata": {"service": name},
        }
        for name, doc in sorted(docs.items())
        for flag, value in sorted(doc["feature_flags"].items())
    }
    data = {"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": flags}
    return json.dumps(data, indent=2) + "\n"


def config_file() -> str:
    """`sre-space.gitops.yaml`: where the shop keeps each logical key."""
    env = "".join(f"  {key}: {var}\n" for key, var in ENV.items())
    return f"""# How SRE-Space reads and edits this repository.
kustomize:
  overlay: {OVERLAY}
flags:
  file: {FLAG_FILE}
  owner_metadata: service
env:
{env}"""


def repository_files(docs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every file of the repository for complete logical documents, by path (services sorted, so
    the bytes do not depend on the order documents were read in)."""
    files = {
        CONFIG_PATH: config_file(),
        "base/kustomization.yaml": base_file(docs),
        f"{OVERLAY}/kustomization.yaml": overlay_file(docs),
        FLAG_FILE: flag_file(docs),
    }
    files.update({f"base/{n}.yaml": service_file(d) for n, d in docs.items()})
    return files
