"""Run kustomize or helm over a repository snapshot, as the deploy tool would.

The binaries come from `scripts/gitops/tools` (SRE_KUSTOMIZE_BIN, SRE_HELM_BIN, or its cache). Both
the shop, which runs what main renders to, and the Fixer, which renders every proposal, build here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sre_space.gitops import logical
from sre_space.gitops.config import CONFIG_PATH, GitOpsConfig

TOOLS_HOME = Path(os.environ.get("SRE_GITOPS_HOME", Path.home() / ".cache/sre-space/gitops"))
RENDER_TIMEOUT_S = 120


class RenderError(RuntimeError):
    """A render or validation failed; the message carries the tool's or validator's words."""


def tool(name: str) -> str:
    """The path of kustomize or helm: its SRE_<NAME>_BIN variable, the tools cache, or PATH."""
    configured = os.environ.get(f"SRE_{name.upper()}_BIN")
    for candidate in (configured, str(TOOLS_HOME / "bin" / name), shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RenderError(f"{name} is not installed; build it with `scripts/gitops/tools build {name}`")


def write_tree(files: Mapping[str, str], root: Path) -> None:
    """Write a repository snapshot under `root`."""
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def run_tool(args: list[str], files: Mapping[str, str], cwd_rel: str = ".") -> str:
    """Run a render tool over a snapshot written to a temporary directory; its stdout."""
    with tempfile.TemporaryDirectory(prefix="sre-render-") as tmp:
        write_tree(files, Path(tmp))
        try:
            done = subprocess.run(
                args,
                cwd=Path(tmp) / cwd_rel,
                capture_output=True,
                text=True,
                timeout=RENDER_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RenderError(
                f"{Path(args[0]).name} timed out after {RENDER_TIMEOUT_S} s"
            ) from None
    if done.returncode != 0:
        raise RenderError(f"{Path(args[0]).name} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def kustomize_build(files: Mapping[str, str], overlay: str) -> str:
    """`kustomize build <overlay>` of a snapshot."""
    return run_tool([tool("kustomize"), "build", overlay], files)


def helm_template(files: Mapping[str, str], chart: str, values: str, release: str) -> str:
    """`helm template <release> <chart> -f <values>` of a snapshot."""
    return run_tool([tool("helm"), "template", release, chart, "-f", values], files)


def objects(stream: str, name: str = "render") -> list[dict[str, Any]]:
    """The Kubernetes objects of a YAML stream (empty documents dropped)."""
    try:
        docs = [d for d in yaml.safe_load_all(stream) if d is not None]
    except yaml.YAMLError as exc:
        raise RenderError(f"{name} is not valid YAML: {exc}") from None
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise RenderError(f"{name}: a document is not a Kubernetes object: {str(doc)[:200]}")
    return docs


def validate_flags(data: Any, name: str) -> None:
    """A flagd flag file's shape: each flag has a state, variants and a default variant among them."""
    if not isinstance(data, Mapping) or not isinstance(data.get("flags"), Mapping):
        raise RenderError(f"{name}: a flagd file is a mapping with a `flags` mapping")
    for key, flag in data["flags"].items():
        if not isinstance(flag, Mapping):
            raise RenderError(f"{name}: flag {key!r} is not a mapping")
        variants = flag.get("variants")
        if flag.get("state") not in ("ENABLED", "DISABLED"):
            raise RenderError(f"{name}: flag {key!r} state must be ENABLED or DISABLED")
        if not isinstance(variants, Mapping) or flag.get("defaultVariant") not in variants:
            raise RenderError(f"{name}: flag {key!r} defaultVariant is not one of its variants")


def read_flags(text: str | None, name: str) -> Any:
    """A flagd flag file (JSON, or YAML when the name says so), checked; None when absent."""
    if text is None:
        return None
    try:
        data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise RenderError(f"{name} is not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise RenderError(f"{name} is not valid YAML: {exc}") from None
    validate_flags(data, name)
    return data


def overlay_documents(files: Mapping[str, str], config: GitOpsConfig) -> dict[str, dict[str, Any]]:
    """Every service's logical document as the config's kustomize overlay renders (with flags)."""
    if config.kustomize_overlay is None:
        raise RenderError(f"{CONFIG_PATH} names no kustomize overlay to render")
    objs = objects(kustomize_build(files, config.kustomize_overlay), config.kustomize_overlay)
    flags = read_flags(files.get(config.flag_file), config.flag_file)
    try:
        return logical.documents(objs, flags, config)
    except logical.LogicalError as exc:
        raise RenderError(str(exc)) from None
