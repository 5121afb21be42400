"""Fire drills: the closed loop end to end, in accelerated simulated time, as `sre-space drill` runs it.

oom and conversion run through the real Kafka broker (the shop produces OTLP, the production flow
`python -m bytewax.run flows.main` reads it as a child process); the other cases run the embedded
flow. Each drill is followed from the injection to the responders' last step: the incident, the
Brain's answer, the pull request merged in the local forge (real git), the shop running the merge,
verification, the post-mortem in Memory. A second drill in the same state folder recalls the first.

The conversion drill also runs with canary secrets (OPENAI_API_KEY pointed at a local
chat-completions server that is down, GITHUB_TOKEN) and then scans every output of the run for
them: files, the store, the span archive, the git history, the Kafka topics, the log and the
dashboard's pages. No assertion is about wall time.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from chaos.gitops import GitOpsRepo
from sinks.fixer.shop_reconciler import read_shop_head
from sinks.memory.memory import Memory
from sinks.store.sqlite import Store
from sre_space.harness.drill import DrillConfig, run_drill, table
from sre_space.settings import load_settings
from tests.brain.fake_llm import FakeLLM
from tests.dashboard.test_pages import PAGE_FILES, frames, run_page, texts

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OPENAI_CANARY = "sk-canaryOPENAI7f3a9c2e11d4b8a6c0ffee"
GITHUB_CANARY = "ghp_canaryGITHUB0123456789abcdefABCDEF01"
CANARIES = (OPENAI_CANARY, GITHUB_CANARY, "canaryOPENAI7f3a9c2e", "canaryGITHUB0123456789")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def drill(tmp_path: Path, scenario: str, name: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run one drill over `tmp_path/state` and return drill.json (also checked on disk)."""
    out = tmp_path / "out" / (name or scenario)
    cfg = DrillConfig(
        scenario=scenario,
        out=out,
        state=tmp_path / "state",
        log=lambda line: print(line, flush=True),
        **kwargs,
    )
    result = run_drill(cfg)
    print(table([result]))
    on_disk = json.loads((out / "drill.json").read_text(encoding="utf-8"))
    assert on_disk["incident"] == result["incident"]
    return result


def first_version(repo: Path, service: str) -> str:
    first = git(repo, "rev-list", "--max-parents=0", "main").split()[0]
    return str(GitOpsRepo(repo).read_docs(first)[service]["version"])


def assert_closed_loop(tmp_path: Path, r: dict[str, Any], service: str, action: str) -> None:
    """Detected, diagnosed right, fixed by a merged PR the shop runs, resolved, remembered."""
    state = tmp_path / "state"
    assert r["detected"] and r["incident"] is not None, r
    assert not r["false_incident_ids"], r["false_incident_ids"]
    assert r["diagnosis"]["top"][0]["service"] == service, r["diagnosis"]
    assert r["diagnosis"]["score"] == {
        "top1": True,
        "top3": True,
        "class_ok": True,
        "remediation_ok": True,
    }
    assert [pr["action"] for pr in r["pull_requests"]] == [action], r["pull_requests"]
    pr = r["pull_requests"][0]
    # On failure, the verification's own account: each window's verdict and the outcome.
    why = {"outcome": r["outcome_detail"], "windows": r["verification"], "timeline": r["timeline"]}
    assert pr["service"] == service and pr["merged"] and pr["state"] == "merged", (pr, why)
    assert r["outcome"] == "resolved" and r["verified"] and r["resolved"], why
    assert r["verification"] and r["verification"][-1]["healthy"], why
    assert not r["reverted"] and not r["escalated"]
    events = [e["event"] for e in r["timeline"]]
    assert {"opened", "diagnosed", "mitigating", "verifying", "resolved"} <= set(events), events
    assert r["time_to_detect_s"] is not None and r["time_to_mitigate_s"] is not None
    assert r["time_to_detect_s"] <= r["time_to_mitigate_s"] <= r["time_to_resolve_s"]

    repo = state / "gitops"
    assert pr["merge_sha"] in git(repo, "log", "--merges", "--format=%H", "main").split()
    # The shop runs the merge (or a later commit that contains it).
    head = read_shop_head(state)
    assert head == pr["merge_sha"] or pr["merge_sha"] in git(repo, "rev-list", head).split()

    iid = r["incident"]["id"]
    with Store(state / "sre.db") as store:
        actions = {(a["actor"], a["action"]) for a in store.query("actions", key=iid)}
        for expected in [
            ("responder", "diagnosed"),
            ("fixer", "open_pull_request"),
            ("fixer", "merge"),
            ("responder", "deployed"),
            ("responder", "verified"),
            ("responder", "postmortem"),
        ]:
            assert expected in actions, sorted(actions)
        assert r["postmortem"] and Path(r["postmortem"]).exists()
        assert service in Path(r["postmortem"]).read_text(encoding="utf-8")
        memory = Memory.from_settings(load_settings(state_dir=state), store=store)
        found = memory.search(f"{service} {r['fault_class']} {action}", n=5)
    assert iid in [s.incident_id for s in found], found


def test_oom_through_kafka_is_rolled_back_and_a_second_drill_remembers_it(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    r = drill(tmp_path, "oom", kafka=kafka_bootstrap)
    assert r["transport"] == "kafka"
    assert_closed_loop(tmp_path, r, "checkout", "rollback_version")
    good = first_version(tmp_path / "state" / "gitops", "checkout")
    assert r["pull_requests"][0]["change"] == {"version": good}
    assert r["similar"] == []  # nothing to remember yet

    # The same fault again, an hour later in the same state folder: Memory recalls the first
    # incident (and that its rollback worked), and the loop closes again.
    again = drill(tmp_path, "oom", name="oom-again")
    assert again["start"] > r["end"]
    recalled = {s["incident_id"]: s for s in again["similar"]}
    assert r["incident"]["id"] in recalled, again["similar"]
    assert recalled[r["incident"]["id"]]["outcome"] == "worked"
    assert_closed_loop(tmp_path, again, "checkout", "rollback_version")
    index = (tmp_path / "state" / "drills" / "index.jsonl").read_text().splitlines()
    assert len(index) == 2


def test_a_fix_that_does_not_help_is_reverted_and_escalated(tmp_path: Path) -> None:
    # The policy lets only `raise_memory_limit` merge on its own: the Fixer skips the rollback the
    # Brain ranks first and doubles checkout's limit, which a fast leak fills again within the
    # verification deadline (the oom scenario's own note: "only delays the next OOM").
    policy = tmp_path / "policy.yaml"
    policy.write_text(json.dumps({"auto_merge": ["raise_memory_limit"], "require_approval": []}))
    r = drill(tmp_path, "oom", policy=policy, intensity=3.0)
    iid = r["incident"]["id"]
    assert r["diagnosis"]["top"][0]["service"] == "checkout"
    assert r["outcome"] == "reverted" and r["reverted"] and r["escalated"], r["timeline"]
    assert [pr["action"] for pr in r["pull_requests"]] == ["raise_memory_limit"]
    pr = r["pull_requests"][0]
    assert pr["state"] == "reverted" and pr["merge_sha"] and pr["revert_sha"], pr

    state = tmp_path / "state"
    repo = state / "gitops"
    # Newest first: the drill's own "chaos: end oom" (if it had anything to undo), the revert.
    log = git(repo, "log", "--format=%H %s", "main").splitlines()
    subjects = dict(line.split(" ", 1) for line in log)
    assert 'Revert "Merge' in subjects[pr["revert_sha"]], log[:3]
    after_revert = log[: [line.split()[0] for line in log].index(pr["revert_sha"])]
    assert all("chaos: end" in line for line in after_revert), after_revert
    assert "memory: 512Mi" in git(repo, "show", "main:base/checkout.yaml")
    # The revert was deployed: the shop runs it (or the drill's clean-up commit on top of it).
    assert pr["revert_sha"] in git(repo, "rev-list", read_shop_head(state)).split()
    with Store(state / "sre.db") as store:
        refused = [
            a
            for a in store.query("actions", key=iid)
            if a["action"] == "policy_refuse"
            and "rollback_version" in a["inputs"].get("request", "")
        ]
        assert refused, "the policy should have refused the rollback"
        tracker = [t for t in store.query("tracker") if t.get("incident_id") == iid]
        labels = {label for t in tracker for label in t.get("labels", [])}
        assert "state:escalated" in labels and "needs-human" in labels, tracker
        progress = store.get("progress", iid)
        memory = Memory.from_settings(load_settings(state_dir=state), store=store)
        assert "raise_memory_limit" in memory.avoided_actions(progress["incident"]["fingerprint"])


# --------------------------------------------------------------------- conversion + secret scan


def test_conversion_through_kafka_closes_the_loop_and_leaks_no_secret(
    tmp_path: Path,
    kafka_bootstrap: str,
    consume_all: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    llm = FakeLLM()  # every call answers 500: the endpoint is down
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_CANARY)
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB_CANARY)
    try:
        r = drill(tmp_path, "conversion", kafka=kafka_bootstrap)
    finally:
        llm.close()
    assert_closed_loop(tmp_path, r, "payment", "set_feature_flag")
    assert r["diagnosis"]["top"][0]["fault_class"].startswith("business")
    flag = r["culprit"]["flag"]
    assert flag and flag in json.dumps(r["pull_requests"][0]["change"])

    # The LLM was asked (its key was set), failed, and the audit log says the loop degraded.
    assert llm.requests, "the responders never asked the LLM"
    with Store(tmp_path / "state" / "sre.db") as store:
        degraded = [
            a
            for a in store.query("actions", key=r["incident"]["id"])
            if a["action"] == "narration_degraded"
        ]
    assert degraded and "deterministic summary" in degraded[0]["reason"], degraded

    # Every output of the run, scanned for the secrets.
    outputs: dict[str, str] = {}
    outputs |= {f"llm request {i}": q["raw"] for i, q in enumerate(llm.requests)}
    outputs |= read_tree(tmp_path)
    outputs["git history"] = git(tmp_path / "state" / "gitops", "log", "-p", "--all")
    for name, topic in r["kafka"]["topics"].items():
        if name not in ("spans", "metrics"):
            records = consume_all(topic, idle=1.0)
            outputs[f"kafka {name}"] = "\n".join(
                (rec.value or b"").decode("utf-8", "replace") for rec in records
            )
    assert outputs["kafka incidents"] and outputs["kafka actions"]
    for page in PAGE_FILES:
        at = run_page(page, tmp_path / "state")
        outputs[f"dashboard {page}"] = texts(at) + "\n" + frames(at)
    assert r["incident"]["id"] in outputs["dashboard incidents"]
    captured = capfd.readouterr()
    outputs["log"] = captured.out + captured.err
    leaks = [(where, c) for where, text in outputs.items() for c in CANARIES if c in text]
    assert not leaks, leaks
    print(f"secret scan: {len(outputs)} outputs, {sum(map(len, outputs.values()))} chars, clean")


def read_tree(root: Path) -> dict[str, str]:
    """Every file under `root` as text: SQLite dumped, Parquet read, anything else as bytes."""
    out: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if "/.git/" in str(path) or path.name.endswith(("-wal", "-shm")):
            continue  # git objects are compressed: the history is read with `git log -p`
        if path.suffix in (".db", ".sqlite3"):
            with sqlite3.connect(path) as conn:
                out[str(path)] = "\n".join(conn.iterdump())
        elif path.suffix == ".parquet":
            # Every text column (the archive's attributes and events are strings).
            out[str(path)] = pl.read_parquet(path).select(pl.col(pl.String)).write_csv()
        else:
            out[str(path)] = path.read_bytes().decode("utf-8", "replace")
    return out
