"""Validate what a render produces against the Kubernetes schemas kubernetes-validate ships.

Rendering itself (kustomize, helm, reading objects and flag files) is `sre_space.gitops.build`,
shared with the shop; the names are re-exported so the Fixer reads them from one module.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate

from sre_space.gitops.build import (
    RenderError,
    helm_template,
    kustomize_build,
    objects,
    read_flags,
)

__all__ = [
    "RenderError",
    "helm_template",
    "kustomize_build",
    "objects",
    "read_flags",
    "validate",
]


def validate(objs: list[dict[str, Any]], kubernetes_version: str) -> None:
    """Schema-validate every object (strict: unknown fields fail); RenderError on the first error."""
    for obj in objs:
        where = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name', '?')}"
        try:
            kubernetes_validate.validate(obj, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            raise RenderError(f"{where} is invalid at {path or '(root)'}: {exc.message}") from None
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError):
            # Custom resources have no schema here; they are not what the Fixer edits.
            continue
