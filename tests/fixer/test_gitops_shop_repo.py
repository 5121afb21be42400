"""The Fixer on the shop's own repository: each logical key's edit is one line of one file, and
the shop runs the edited value once it is on main (one reader, two users)."""

from __future__ import annotations

import difflib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chaos.gitops import GitOpsRepo as ShopRepo
from chaos.manifests import FLAG_FILE, OVERLAY
from sinks.fixer.k8s.repo import GitOpsRepo

pytestmark = pytest.mark.gitops_tools

OVERLAY_FILE = f"{OVERLAY}/kustomization.yaml"
# (service, logical key, new value, the file that keeps it, the Desired field that shows it)
EDITS = [
    ("checkout", "version", "1.4.1", OVERLAY_FILE, "version"),
    ("catalog", "replicas", 4, OVERLAY_FILE, "replicas"),
    ("payment", "resources.memory_limit_mib", 384, "base/payment.yaml", "memory_limit_mib"),
    (
        "catalog",
        "resources.cpu_limit_millicores",
        1000,
        "base/catalog.yaml",
        "cpu_limit_millicores",
    ),
    ("shipping", "timeouts.downstream_ms", 1200, "base/shipping.yaml", "downstream_timeout_ms"),
    ("inventory", "connection_pool.max", 40, "base/inventory.yaml", "pool_max"),
    ("frontend", "circuit_breaker", True, "base/frontend.yaml", "circuit_breaker"),
    ("redis", "rollout.restarted_at", "2026-01-05T00:02:00Z", "base/redis.yaml", "restarted_at"),
    ("payment", "feature_flags.new_fraud_rules", True, FLAG_FILE, "flags"),
]


def _changed_lines(old: str, new: str) -> list[str]:
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), n=0, lineterm="")
    return [ln for ln in diff if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]


@pytest.mark.parametrize(("service", "key", "value", "path", "field"), EDITS)
def test_the_fixer_edits_one_line_and_the_shop_runs_it(
    tmp_path: Path, service: str, key: str, value: Any, path: str, field: str
) -> None:
    shop_repo = ShopRepo.create(tmp_path / "gitops")
    proposal = GitOpsRepo(shop_repo.files()).propose(service, {key: value})
    assert list(proposal.edits) == [path]
    old, new = proposal.edits[path]
    changed = _changed_lines(old, new)
    # one value changed in place, or (a first restart) one annotation added under its parent
    assert len(changed) == 2, changed
    assert [ln for ln in old.splitlines() if ln.lstrip().startswith("#")] == [
        ln for ln in new.splitlines() if ln.lstrip().startswith("#")
    ]  # comments kept
    (shop_repo.path / path).write_text(new, encoding="utf-8")
    git = ["git", "-C", str(shop_repo.path)]
    subprocess.run([*git, "commit", "-qam", f"fix {service}"], check=True)
    desired, errors = shop_repo.read_desired()
    assert errors == []
    shown = getattr(desired[service], field)
    assert shown == ((key.split(".")[-1], value),) if field == "flags" else shown == value
