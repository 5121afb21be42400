"""PR body rendering (evidence, rollback, redaction) and the command-hook reconciler."""

from __future__ import annotations

import sys
from pathlib import Path

from sinks.fixer.playbook import Playbook
from sinks.fixer.pr_body import quote, redact, render_pr_body
from sinks.fixer.reconciler import CommandReconciler
from sre_space.records import ActionRequest
from sre_space.timeutil import rfc3339_to_ns

from .helpers import INCIDENT, MemSource, diagnosis, manifest

TOKEN = "ghp_" + "A1b2C3d4E5" * 4


def test_body_has_every_section_and_no_secret() -> None:
    src = MemSource({"services/checkout.yaml": manifest("checkout")})
    change = (
        Playbook()
        .plan(
            ActionRequest("raise_memory_limit", "checkout"),
            src,
            rfc3339_to_ns("2026-11-28T10:00:00Z"),
        )
        .change
    )
    assert change is not None
    d = diagnosis()
    d = type(d).from_dict(
        {
            **d.to_dict(),
            "candidates": d.candidates,
            "summary": f"leaked {TOKEN} and password=hunter2",
        }
    )
    body = render_pr_body(
        incident_id="inc-7",
        change=change,
        incident=INCIDENT,
        diagnosis=d,
        incident_url="https://tracker.example/inc-7",
        healthy_windows=3,
        deadline_minutes=10,
        secrets=[TOKEN],
    )
    for heading in (
        "### Root cause",
        "### Evidence",
        "### The change",
        "### Expected signal recovery",
        "### How to roll back",
    ):
        assert heading in body
    assert body.startswith("<!-- sre-space:incident=inc-7 step=pull_request:raise_memory_limit -->")
    assert "[inc-7](https://tracker.example/inc-7)" in body
    assert "`resources.memory_limit_mib` 512 → 1024" in body
    assert "baseline 0 → incident 6" in body
    assert "3 consecutive healthy windows" in body and "10 min" in body
    assert "memory_limit_mib back to 512" in body
    assert TOKEN not in body and "hunter2" not in body
    assert "step=postmortem -->" not in body


def test_redact_and_quote() -> None:
    text = f"Authorization: token {TOKEN} Bearer abcdefghijklmnopqrstu api_key=xyz12345 trace 0af7651916cd43dd8448eb211c80319c"
    out = redact(text)
    assert TOKEN not in out and "abcdefghijklmnopqrstu" not in out and "xyz12345" not in out
    assert "0af7651916cd43dd8448eb211c80319c" in out  # trace ids stay readable
    assert quote("a`b\n<!-- x -->") == "`a'b <!－－ x －－>`"


def test_command_reconciler_runs_with_the_sha(tmp_path: Path) -> None:
    out = tmp_path / "applied"
    script = "import os,sys; open(sys.argv[1],'a').write(sys.argv[2]+' '+os.environ['SRE_COMMIT_SHA']+'\\n')"
    rec = CommandReconciler([sys.executable, "-c", script, str(out), "{sha}"])
    sha = "a" * 40
    assert rec.apply(sha).ok
    assert rec.apply(sha).ok
    assert out.read_text() == f"{sha} {sha}\n" * 2
    failing = CommandReconciler([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"])
    res = failing.apply(sha)
    assert not res.ok and "exited 3" in res.detail and "boom" in res.detail
    assert not rec.apply("$(reboot)").ok
    assert not CommandReconciler([str(tmp_path / "missing")]).apply(sha).ok
