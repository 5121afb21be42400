"""Which layout a repository uses, and where each logical key of a service is kept in it.

Plain manifests keep everything in the Deployment. A kustomize overlay keeps the image tag in its
`images:` list, replicas in its `replicas:` list, and other fields in the overlay patch (or the base)
that holds them. A chart keeps them in its values file under the service's key. A `Target` names the
file, document and node to set, with the value in the file's spelling.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sinks.fixer.k8s.yamledit import NodePath, find_index, get, load_all, plain
from sre_space.gitops import logical as lg
from sre_space.gitops.config import CONFIG_PATH, GitOpsConfig

LayoutKind = Literal["plain", "kustomize", "helm"]
KUSTOMIZATION = "kustomization.yaml"


class LayoutError(ValueError):
    """The repository's layout cannot hold the requested change; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """One node to set: file, document index, node path, and the value as the file spells it."""

    path: str
    doc: int
    node: NodePath
    value: Any


@dataclass(frozen=True, slots=True)
class Layout:
    """A detected layout: its kind and the directory it renders from."""

    kind: LayoutKind
    root: str = ""  # overlay directory (kustomize) or chart directory (helm)


def detect(files: Mapping[str, str], config: GitOpsConfig) -> Layout:
    """The repository's layout: the config's choice, a chart, a single kustomize overlay, or plain."""
    if config.helm_chart is not None:
        return Layout("helm", config.helm_chart)
    if config.kustomize_overlay is not None:
        return Layout("kustomize", config.kustomize_overlay)
    charts = sorted(posixpath.dirname(p) for p in files if posixpath.basename(p) == "Chart.yaml")
    if len(charts) == 1:
        return Layout("helm", charts[0])
    if len(charts) > 1:
        raise LayoutError(f"several charts ({', '.join(charts)}); name one in {CONFIG_PATH}")
    dirs = sorted(posixpath.dirname(p) for p in files if posixpath.basename(p) == KUSTOMIZATION)
    used = {d for k in dirs for d in _kustomize_dirs(files, k)}
    overlays = [d for d in dirs if d not in used]
    if len(overlays) == 1:
        return Layout("kustomize", overlays[0])
    if len(overlays) > 1:
        raise LayoutError(
            f"several kustomize overlays ({', '.join(overlays)}); name one in {CONFIG_PATH}"
        )
    return Layout("plain")


def join_path(base: str, rel: str) -> str:
    """A repository path relative to a directory, normalised (`overlays/prod/../../base`)."""
    return posixpath.normpath(posixpath.join(base, rel)) if base else posixpath.normpath(rel)


def _kustomization(files: Mapping[str, str], directory: str) -> dict[str, Any]:
    path = join_path(directory, KUSTOMIZATION)
    if path not in files:
        raise LayoutError(f"no {KUSTOMIZATION} in {directory or '.'}")
    docs = load_all(files[path], path)
    return plain(docs[0]) if docs else {}


def _kustomize_dirs(files: Mapping[str, str], directory: str) -> list[str]:
    """The directories a kustomization takes resources from."""
    out = []
    for res in _kustomization(files, directory).get("resources") or []:
        sub = join_path(directory, str(res))
        if join_path(sub, KUSTOMIZATION) in files:
            out.append(sub)
    return out


def _resource_files(files: Mapping[str, str], directory: str) -> list[str]:
    """The manifest files an overlay builds from, its bases' first (recursively)."""
    out: list[str] = []
    for res in _kustomization(files, directory).get("resources") or []:
        sub = join_path(directory, str(res))
        if join_path(sub, KUSTOMIZATION) in files:
            out.extend(_resource_files(files, sub))
        elif sub in files:
            out.append(sub)
    return out


def _patch_files(kustomization: Mapping[str, Any], directory: str) -> list[str]:
    paths = [
        p["path"]
        for p in kustomization.get("patches") or []
        if isinstance(p, Mapping) and "path" in p
    ]
    paths += [str(p) for p in kustomization.get("patchesStrategicMerge") or []]
    return [join_path(directory, str(p)) for p in paths]


def _workloads(
    files: Mapping[str, str], paths: list[str], service: str
) -> list[tuple[str, int, Any]]:
    """(file, document index, document) of every Deployment named `service` in the files."""
    out = []
    for path in paths:
        for i, doc in enumerate(load_all(files[path], path)):
            if (
                isinstance(doc, Mapping)
                and doc.get("kind") in lg.WORKLOAD_KINDS
                and get(doc, ("metadata", "name")) == service
            ):
                out.append((path, i, plain(doc)))
    return out


def _container_path(doc: Mapping[str, Any], name: str) -> NodePath | None:
    items = get(doc, ("spec", "template", "spec", "containers"))
    i = find_index(items, "name", name)
    return None if i is None else ("spec", "template", "spec", "containers", i)


def _workload_node(
    key: str, doc: Mapping[str, Any], container: str, config: GitOpsConfig
) -> NodePath | None:
    """The node of a Deployment document that keeps a logical key (None: no such container)."""
    if key == "replicas":
        return ("spec", "replicas")
    if key == "rollout.restarted_at":
        return ("spec", "template", "metadata", "annotations", lg.RESTART_ANNOTATION)
    c = _container_path(doc, container)
    if c is None:
        return None
    if key == "version":
        return (*c, "image")
    if key == "resources.memory_limit_mib":
        return (*c, "resources", "limits", "memory")
    if key == "resources.cpu_limit_millicores":
        return (*c, "resources", "limits", "cpu")
    if key in config.env:
        env = get(doc, (*c, "env")) or []
        i = find_index(env, "name", config.env[key])
        return (*c, "env", len(env)) if i is None else (*c, "env", i, "value")
    raise LayoutError(f"no Kubernetes field keeps {key!r}")


def _k8s_value(key: str, value: Any, node: NodePath, config: GitOpsConfig, image: str) -> Any:
    """A logical value in the Kubernetes spelling of its node."""
    if key == "version":
        return f"{lg.split_image(image)[0]}:{value}" if node[-1] == "image" else str(value)
    if key == "resources.memory_limit_mib":
        return f"{int(value)}Mi"
    if key == "resources.cpu_limit_millicores":
        return f"{int(value)}m"
    if key in config.env:
        text = lg.env_text(key, value)
        return text if node[-1] == "value" else {"name": config.env[key], "value": text}
    if key == "replicas":
        return int(value)
    return str(value)


def flag_target(files: Mapping[str, str], key: str, value: Any, config: GitOpsConfig) -> Target:
    """The flagd default variant that keeps `feature_flags.<name>`."""
    name = key[len(lg.FLAGS_PREFIX) :]
    if config.flag_file not in files:
        raise LayoutError(f"no flag file {config.flag_file}")
    docs = load_all(files[config.flag_file], config.flag_file)
    flag = get(docs[0] if docs else None, ("flags", name))
    if not isinstance(flag, Mapping):
        raise LayoutError(f"{config.flag_file} has no flag {name!r}")
    variant = "on" if value else "off"
    if variant not in (flag.get("variants") or {}):
        raise LayoutError(f"flag {name!r} has no variant {variant!r}")
    return Target(config.flag_file, 0, ("flags", name, "defaultVariant"), variant)


def target(
    files: Mapping[str, str],
    layout: Layout,
    config: GitOpsConfig,
    rendered: Mapping[str, Any],
    key: str,
    value: Any,
) -> Target:
    """Where to write one logical key of the service whose rendered Deployment is given."""
    if key.startswith(lg.FLAGS_PREFIX):
        return flag_target(files, key, value, config)
    service = rendered["metadata"]["name"]
    _, main = lg.container(rendered)
    image = str(main.get("image", ""))
    if layout.kind == "helm":
        return _helm_target(layout, config, service, key, value, files)
    if layout.kind == "kustomize":
        found = _kustomize_overlay_target(files, layout.root, service, key, value, image)
        if found is not None:
            return found
        patches = _patch_files(_kustomization(files, layout.root), layout.root)
        sources = list(reversed(_workloads(files, patches, service)))
        sources += _workloads(files, _resource_files(files, layout.root), service)
    else:
        skip = {config.flag_file, CONFIG_PATH}
        yaml_files = sorted(p for p in files if p.endswith((".yaml", ".yml")) and p not in skip)
        sources = _workloads(files, yaml_files, service)
    if not sources:
        raise LayoutError(f"no Deployment {service!r} in the repository's manifests")
    # The first source that already keeps the node wins (overlay patches, newest first, before the
    # base); when none does, the first source gets it, so an overlay's value stays in the overlay.
    chosen = None
    for path, i, doc in sources:
        node = _workload_node(key, doc, str(main.get("name")), config)
        if node is not None and (get(doc, node) is not None or chosen is None):
            chosen = (path, i, node)
            if get(doc, node) is not None:
                break
    if chosen is None:
        raise LayoutError(f"no container {main.get('name')!r} of {service!r} to edit")
    path, i, node = chosen
    return Target(path, i, node, _k8s_value(key, value, node, config, image))


def _kustomize_overlay_target(
    files: Mapping[str, str], overlay: str, service: str, key: str, value: Any, image: str
) -> Target | None:
    """The overlay's own `images:` or `replicas:` entry for a key, created when missing."""
    path = join_path(overlay, KUSTOMIZATION)
    kust = _kustomization(files, overlay)
    if key == "version":
        name = lg.split_image(image)[0]
        images = kust.get("images") or []
        i = next(
            (n for n, e in enumerate(images) if name in (e.get("name"), e.get("newName"))), None
        )
        if i is not None:
            return Target(path, 0, ("images", i, "newTag"), str(value))
        entry = {"name": name, "newTag": str(value)}
        return Target(path, 0, ("images", len(images)), entry)
    if key == "replicas":
        reps = kust.get("replicas") or []
        i = find_index(reps, "name", service)
        if i is not None:
            return Target(path, 0, ("replicas", i, "count"), int(value))
        patches = _workloads(files, _patch_files(kust, overlay), service)
        if any(get(doc, ("spec", "replicas")) is not None for _, _, doc in patches):
            return None
        return Target(path, 0, ("replicas", len(reps)), {"name": service, "count": int(value)})
    return None


def _helm_target(
    layout: Layout,
    config: GitOpsConfig,
    service: str,
    key: str,
    value: Any,
    files: Mapping[str, str],
) -> Target:
    path = join_path(layout.root, config.helm_values)
    if path not in files:
        raise LayoutError(f"no values file {path}")
    prefix = tuple(config.helm_service_key.format(service=service).split("."))
    paths = config.helm_paths
    values = plain(load_all(files[path], path)[0])
    if get(values, prefix) is None:
        raise LayoutError(f"{path} has no values for {service!r} at {'.'.join(prefix)}")
    if key == "rollout.restarted_at":
        return Target(
            path, 0, (*prefix, *paths["annotations"].split("."), lg.RESTART_ANNOTATION), str(value)
        )
    if key in config.env:
        env_node: NodePath = (*prefix, *paths["env"].split("."))
        env = get(values, env_node) or []
        i = find_index(env, "name", config.env[key])
        node: NodePath = (*env_node, len(env)) if i is None else (*env_node, i, "value")
        return Target(path, 0, node, _k8s_value(key, value, node, config, ""))
    if key not in paths:
        raise LayoutError(f"the values file keeps no {key!r}")
    node = (*prefix, *paths[key].split("."))
    return Target(
        path, 0, node, str(value) if key == "version" else _k8s_value(key, value, node, config, "")
    )
