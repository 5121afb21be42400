"""ShopReconciler: a deploy is the shop reporting (in status.json) a head that contains the commit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sinks.fixer.shop_reconciler import ShopReconciler, read_shop_head


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def make_state(tmp_path: Path) -> tuple[Path, list[str]]:
    state = tmp_path / "state"
    repo = state / "gitops"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    shas = []
    for i in range(3):
        git(
            repo,
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            f"c{i}",
        )
        shas.append(git(repo, "rev-parse", "HEAD"))
    return state, shas


def write_head(state: Path, head: str) -> None:
    (state / "chaos").mkdir(exist_ok=True)
    (state / "chaos" / "status.json").write_text(json.dumps({"head": head}), encoding="utf-8")


def test_ok_when_the_shop_runs_the_commit_or_a_descendant(tmp_path: Path) -> None:
    state, (c0, c1, c2) = make_state(tmp_path)
    write_head(state, c1)
    rec = ShopReconciler(state, timeout_s=0.0)
    assert read_shop_head(state) == c1
    assert rec.apply(c1).ok
    assert rec.apply(c0).ok  # an ancestor of what runs is deployed too
    result = rec.apply(c2)  # not yet pulled by the shop
    assert not result.ok and c2[:12] in result.detail


def test_bounded_wait_and_bad_input(tmp_path: Path) -> None:
    state, (_, _, c2) = make_state(tmp_path)
    rec = ShopReconciler(state, timeout_s=0.2, poll_s=0.05)
    assert not rec.apply(c2).ok  # no status file at all: unknown head, gives up
    assert not rec.apply("main; rm -rf /").ok
    assert not rec.apply("").ok
    heads = iter(["", "", c2])
    rec = ShopReconciler(state, timeout_s=5.0, poll_s=0.01, head=lambda: next(heads, c2))
    assert rec.apply(c2).ok  # the in-process head source is polled until it shows the commit
