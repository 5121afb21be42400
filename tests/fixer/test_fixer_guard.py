"""The Fixer touches only the manifest keys its playbook allows, end to end on a real git forge.

A diagnosis whose action request names a key or value outside the playbook (replicas to 0, an image,
a command, the environment, a path traversal in the service, flag or commit) is refused with a
reason: nothing is committed, no branch is created, no pull request is recorded, and the audit log
has the refusal. A `Change` forged past the playbook is stopped by the forge itself (the scope check
re-runs the key guard on the real diff; a path outside `services/` is never written).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sinks.fixer.fixer import Fixer
from sinks.fixer.forge import CheckResult
from sinks.fixer.forge_local import LocalForge
from sinks.fixer.playbook import Change, Playbook
from sinks.fixer.policy import load_policy
from sinks.store.sqlite import Store
from sre_space.records import ActionRequest, Diagnosis
from sre_space.timeutil import rfc3339_to_ns

from .helpers import INCIDENT, diagnosis, git

NOW = rfc3339_to_ns("2026-11-28T10:00:00.000Z")

# (id, the request a diagnosis carries, what the refusal says)
REFUSED = [
    ("replicas-to-zero", ActionRequest("scale_replicas", "checkout", {"to": 0}), "outside 1..20"),
    (
        "replicas-from-a-negative-load",
        ActionRequest("scale_replicas", "checkout", {"utilization": -3.0}),
        "no more than the current",
    ),
    (
        "image",
        ActionRequest("set_image", "checkout", {"image": "evil.example/x:latest"}),
        "unknown action 'set_image'",
    ),
    (
        "image-as-extra-parameter",
        ActionRequest("scale_replicas", "checkout", {"to": 3, "image": "evil.example/x:latest"}),
        "has no parameter 'image'",
    ),
    (
        "command",
        ActionRequest("restart", "checkout", {"command": "sh -c id"}),
        "no parameter",
    ),
    (
        "env",
        ActionRequest("set_env", "checkout", {"env": "LD_PRELOAD=x.so"}),
        "unknown action 'set_env'",
    ),
    (
        "service-traversal",
        ActionRequest("rollback_version", "../../etc/passwd"),
        "invalid service name",
    ),
    (
        "service-smuggled-in-params",
        ActionRequest("rollback_version", "checkout", {"service": "../../etc/passwd"}),
        "has no parameter 'service'",
    ),
    (
        "flag-traversal",
        ActionRequest("set_feature_flag", "checkout", {"flag": "../../etc/passwd"}),
        "not a valid flag",
    ),
    (
        "undeclared-flag",
        ActionRequest("set_feature_flag", "checkout", {"flag": "image"}),
        "declares no feature flag",
    ),
    (
        "unknown-version",
        ActionRequest("rollback_version", "checkout", {"to_version": "6.6.6"}),
        "never ran",
    ),
    (
        "sha-traversal",
        ActionRequest("revert_commit", "checkout", {"sha": "../../etc"}),
        "not a commit id",
    ),
    (
        "memory-unbounded",
        ActionRequest("raise_memory_limit", "checkout", {"to_mib": 999999}),
        "above the ceiling",
    ),
    (
        "memory-from-nan",
        ActionRequest("raise_memory_limit", "checkout", {"utilization": float("nan")}),
        "finite number",
    ),
]


def _diagnosis(request: ActionRequest) -> Diagnosis:
    d = diagnosis()
    cand = replace(d.candidates[0], service=request.service, actions=[request])
    return replace(d, candidates=[cand])


def _branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()


@pytest.mark.parametrize(
    ("asked", "reason"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_a_request_outside_the_playbook_is_refused_and_nothing_is_committed(
    manifests_repo: Path, store: Store, asked: ActionRequest, reason: str
) -> None:
    head = git(manifests_repo, "rev-parse", "main").strip()
    fixer = Fixer(LocalForge(manifests_repo, store), store, load_policy(None))
    remedy = fixer.remediate(INCIDENT, _diagnosis(asked), NOW)
    assert remedy.status == "no_change" and remedy.pr is None
    assert reason in remedy.reason
    (row,) = [r for r in store.query("actions", key=INCIDENT.id) if r["action"] == "refuse_action"]
    assert row["outcome"] == "refused" and reason in row["reason"]
    assert git(manifests_repo, "rev-parse", "main").strip() == head
    assert _branches(manifests_repo) == ["main"]
    assert store.count("pull_requests") == 0
    assert git(manifests_repo, "status", "--porcelain") == ""


def test_a_change_forged_past_the_playbook_fails_the_scope_check_and_is_not_merged(
    manifests_repo: Path, store: Store
) -> None:
    forge = LocalForge(manifests_repo, store)
    planned = Playbook().plan(ActionRequest("rollback_version", "checkout"), forge, NOW)
    assert planned.change is not None
    # Same action and allowed keys, but the text also sets replicas to 0 and adds an image.
    evil_text = planned.change.new_text.replace("replicas: 2", "replicas: 0") + "image: evil\n"
    forged = replace(planned.change, new_text=evil_text)
    head = forge.head()
    opened = forge.open_pull_request(
        INCIDENT.id,
        forged,
        title="[sre-space] forged",
        body="",
        labels=[],
        merge_mode="auto_merge",
        now=NOW,
    )
    assert opened.ok and opened.pr is not None
    checked = forge.run_checks(opened.pr.id, CheckResult("policy", True, "auto"), NOW)
    assert not checked.ok
    assert "rollback_version may not touch" in checked.reason
    assert "replicas" in checked.reason and "image" in checked.reason
    merged = forge.merge(opened.pr.id, NOW)
    assert not merged.ok and "checks have not passed" in merged.reason
    assert forge.head() == head
    assert 'version: "1.4.2"' in (forge.read("services/checkout.yaml") or "")


def test_a_change_forged_with_a_path_outside_services_is_never_written(
    manifests_repo: Path, store: Store
) -> None:
    forge = LocalForge(manifests_repo, store)
    planned = Playbook().plan(ActionRequest("restart", "checkout"), forge, NOW)
    assert planned.change is not None
    for path in ("../../etc/passwd", "services/../../etc/passwd", ".git/hooks/post-merge"):
        forged: Change = replace(planned.change, path=path)
        opened = forge.open_pull_request(
            INCIDENT.id,
            forged,
            title="[sre-space] forged",
            body="",
            labels=[],
            merge_mode="auto_merge",
            now=NOW,
        )
        assert not opened.ok, path
    assert _branches(manifests_repo) == ["main"]
    assert not (manifests_repo.parent / "etc").exists()
    assert not (manifests_repo / ".git" / "hooks" / "post-merge").exists()


def test_a_far_less_likely_candidate_is_not_tried_when_the_likely_ones_are_refused(
    manifests_repo: Path, store: Store
) -> None:
    # the top candidate's fix is refused; the second is a tenth as likely: a guess, not a fix
    head = git(manifests_repo, "rev-parse", "main").strip()
    d = diagnosis()
    top = replace(d.candidates[0], actions=[ActionRequest("scale_replicas", "checkout", {"to": 0})])
    weak = replace(
        d.candidates[0], score=top.score / 10, actions=[ActionRequest("restart", "checkout")]
    )
    fixer = Fixer(LocalForge(manifests_repo, store), store, load_policy(None))
    remedy = fixer.remediate(INCIDENT, replace(d, candidates=[top, weak]), NOW)
    assert remedy.status == "no_change" and remedy.pr is None
    assert "outside 1..20" in remedy.reason
    assert "1 candidate(s) scored under 50% of the top one's" in remedy.reason
    assert git(manifests_repo, "rev-parse", "main").strip() == head
    # within the share it is tried: the restart opens a pull request
    close = replace(weak, score=top.score * 0.6)
    remedy = fixer.remediate(INCIDENT, replace(d, candidates=[top, close]), NOW)
    assert remedy.pr is not None and "restart" in remedy.pr.title
