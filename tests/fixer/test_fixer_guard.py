"""The Fixer touches only the manifest keys its catalog allows, end to end on a real git forge.

A diagnosis whose recommendation names a key or value outside the catalog (replicas to 0, an image,
a command, the environment, a path traversal in the service, flag or commit) is refused with a
reason: nothing is committed, no branch is created, no pull request is recorded, and the audit log
has the refusal. A `Change` forged past the catalog is stopped by the forge itself (the scope check
re-runs the key guard on the real diff; a path outside `services/` is never written).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sinks.fixer.catalog import ActionRequest, Catalog, Change
from sinks.fixer.fixer import Fixer
from sinks.fixer.forge import CheckResult
from sinks.fixer.forge_local import LocalForge
from sinks.fixer.policy import load_policy
from sinks.store.sqlite import Store
from sre_space.records import Diagnosis
from sre_space.timeutil import rfc3339_to_ns

from .helpers import INCIDENT, diagnosis, git

NOW = rfc3339_to_ns("2026-11-28T10:00:00.000Z")

# (id, the Brain's remediation text, the candidate's service, what the refusal says)
REFUSED = [
    ("replicas-to-zero", "scale_replicas(service=checkout, to=0)", "checkout", "outside 1..20"),
    ("replicas-to-zero-own-service", "scale_replicas(to=0)", "checkout", "outside 1..20"),
    (
        "replicas-to-zero-json",
        '{"action": "scale_replicas", "params": {"service": "checkout", "to": 0}}',
        "checkout",
        "outside 1..20",
    ),
    ("image", "set_image(service=checkout, image=evil.example/x:latest)", "checkout", "unknown"),
    (
        "image-as-extra-parameter",
        "scale_replicas(service=checkout, to=3, image=evil.example/x:latest)",
        "checkout",
        "has no parameter 'image'",
    ),
    ("command", "restart(service=checkout, command=sh -c id)", "checkout", "no parameter"),
    (
        "env",
        '{"action": "set_env", "params": {"service": "checkout", "env": {"LD_PRELOAD": "x.so"}}}',
        "checkout",
        "unknown action 'set_env'",
    ),
    ("service-traversal", "rollback_version(service=../../etc/passwd)", "checkout", "invalid"),
    ("candidate-traversal", "rollback_version", "../../etc/passwd", "invalid service name"),
    ("flag-traversal", "set_feature_flag(flag=../../etc/passwd)", "checkout", "not a valid flag"),
    ("undeclared-flag", "set_feature_flag(flag=image)", "checkout", "declares no feature flag"),
    ("unknown-version", "rollback_version(to_version=6.6.6)", "checkout", "never ran"),
    ("sha-traversal", "revert_commit(sha=../../etc)", "checkout", "not a commit id"),
    ("memory-unbounded", "raise_memory_limit(to_mib=999999)", "checkout", "above the ceiling"),
]


def _diagnosis(remediation: str, service: str) -> Diagnosis:
    d = diagnosis()
    cand = replace(d.candidates[0], service=service, remediations=[remediation])
    return replace(d, candidates=[cand])


def _branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()


@pytest.mark.parametrize(
    ("remediation", "service", "reason"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_a_request_outside_the_catalog_is_refused_and_nothing_is_committed(
    manifests_repo: Path, store: Store, remediation: str, service: str, reason: str
) -> None:
    head = git(manifests_repo, "rev-parse", "main").strip()
    fixer = Fixer(LocalForge(manifests_repo, store), store, load_policy(None))
    remedy = fixer.remediate(INCIDENT, _diagnosis(remediation, service), NOW)
    assert remedy.status == "no_change" and remedy.pr is None
    assert reason in remedy.reason
    (row,) = [r for r in store.query("actions", key=INCIDENT.id) if r["action"] == "refuse_action"]
    assert row["outcome"] == "refused" and reason in row["reason"]
    assert git(manifests_repo, "rev-parse", "main").strip() == head
    assert _branches(manifests_repo) == ["main"]
    assert store.count("pull_requests") == 0
    assert git(manifests_repo, "status", "--porcelain") == ""


def test_a_change_forged_past_the_catalog_fails_the_scope_check_and_is_not_merged(
    manifests_repo: Path, store: Store
) -> None:
    forge = LocalForge(manifests_repo, store)
    planned = Catalog().plan(ActionRequest("rollback_version", {"service": "checkout"}), forge, NOW)
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
    planned = Catalog().plan(ActionRequest("restart", {"service": "checkout"}), forge, NOW)
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
