"""Policy: refusals, cool-down, hourly cap, freeze windows, approval, dry-run (no commit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sinks.fixer.fixer import Fixer
from sinks.fixer.forge_local import LocalForge
from sinks.fixer.policy import (
    Cron,
    FreezeWindow,
    PastChange,
    Policy,
    PolicyConfig,
    PolicyError,
    load_policy,
)
from sinks.store.sqlite import Store
from sre_space.records import ActionRequest, Candidate, Diagnosis, Incident
from sre_space.timeutil import NS_PER_S, datetime_to_ns, rfc3339_to_ns

from .helpers import git

NOW_DT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # a Saturday
NOW = datetime_to_ns(NOW_DT)
MINUTE = 60 * NS_PER_S


def policy(**kw: Any) -> Policy:
    base: dict[str, Any] = {
        "auto_merge": ("raise_memory_limit", "scale_replicas", "rollback_version"),
        "require_approval": ("set_feature_flag",),
        "approval_services": ("database",),
        "cooldown_minutes": 15,
        "max_changes_per_hour": 2,
    }
    base.update(kw)
    return Policy(PolicyConfig(**base))


def test_default_policy_file_loads_and_is_sane() -> None:
    cfg = load_policy().config
    assert "rollback_version" in cfg.auto_merge
    assert "set_feature_flag" in cfg.auto_merge  # the kill switch
    assert "revert_commit" in cfg.require_approval
    assert cfg.verification.healthy_windows >= 1
    assert cfg.bounds.to_bounds().memory_ceiling_mib == 8192


def test_unknown_and_unlisted_actions_are_refused() -> None:
    d = policy().decide("drop_database", ["checkout"], NOW)
    assert d.verdict == "refuse" and "not allowed" in d.reason
    d = policy().decide("restart", ["checkout"], NOW)  # in the playbook, not in this policy
    assert d.verdict == "refuse"


def test_auto_merge_approval_and_blast_radius() -> None:
    assert policy().decide("raise_memory_limit", ["checkout"], NOW).verdict == "auto_merge"
    assert policy().decide("set_feature_flag", ["checkout"], NOW).verdict == "approval"
    d = policy().decide("raise_memory_limit", ["database"], NOW)
    assert d.verdict == "approval" and "database" in d.reason
    d = policy().decide("scale_replicas", ["checkout", "cart"], NOW)
    assert d.verdict == "refuse" and "one service per change" in d.reason
    assert d.inputs["services"] == ["checkout", "cart"]


def test_cooldown_per_service_holds() -> None:
    recent = [PastChange("checkout", "scale_replicas", NOW - 10 * MINUTE)]
    d = policy().decide("raise_memory_limit", ["checkout"], NOW, recent)
    assert d.verdict == "refuse" and "cooling down" in d.reason and "300s left" in d.reason
    assert policy().decide("raise_memory_limit", ["cart"], NOW, recent).verdict == "auto_merge"
    later = NOW + 5 * MINUTE + NS_PER_S
    assert (
        policy().decide("raise_memory_limit", ["checkout"], later, recent).verdict == "auto_merge"
    )


def test_hourly_cap_holds_over_a_rolling_hour() -> None:
    recent = [
        PastChange("cart", "scale_replicas", NOW - 50 * MINUTE),
        PastChange("frontend", "scale_replicas", NOW - 20 * MINUTE),
    ]
    d = policy().decide("raise_memory_limit", ["checkout"], NOW, recent)
    assert d.verdict == "refuse" and "cap 2" in d.reason
    after = NOW + 10 * MINUTE + NS_PER_S  # the first change left the window
    assert (
        policy().decide("raise_memory_limit", ["checkout"], after, recent).verdict == "auto_merge"
    )


def test_freeze_windows_explicit_and_cron() -> None:
    explicit = FreezeWindow(
        reason="Black Friday", start=NOW_DT - timedelta(hours=1), end=NOW_DT + timedelta(hours=1)
    )
    d = policy(freeze=(explicit,)).decide("raise_memory_limit", ["checkout"], NOW)
    assert d.verdict == "refuse" and "Black Friday" in d.reason
    assert (
        policy(freeze=(explicit,))
        .decide("raise_memory_limit", ["checkout"], NOW + 60 * MINUTE)
        .allowed
    )
    weekend = FreezeWindow(reason="weekend", cron="0 18 * * fri", duration_minutes=62 * 60)
    assert weekend.active(NOW)  # Saturday 10:00 is 16 h after Friday 18:00
    assert not weekend.active(NOW + 2 * 24 * 60 * MINUTE)  # Monday 10:00
    assert not weekend.active(datetime_to_ns(datetime(2026, 11, 27, 17, 59, tzinfo=UTC)))
    assert weekend.active(datetime_to_ns(datetime(2026, 11, 27, 18, 0, tzinfo=UTC)))
    assert (
        policy(freeze=(weekend,)).decide("raise_memory_limit", ["checkout"], NOW).verdict
        == "refuse"
    )


def test_cron_parsing() -> None:
    c = Cron.parse("*/15 9-17 * * mon-fri")
    assert c.matches(datetime(2026, 11, 30, 9, 45, tzinfo=UTC))
    assert not c.matches(datetime(2026, 11, 30, 9, 46, tzinfo=UTC))
    assert not c.matches(datetime(2026, 11, 28, 9, 45, tzinfo=UTC))
    with pytest.raises(ValueError, match="5 fields"):
        Cron.parse("* * *")


def test_dry_run_decides_but_marks_dry_run() -> None:
    d = policy(dry_run=True).decide("raise_memory_limit", ["checkout"], NOW)
    assert d.verdict == "dry_run" and d.mode == "auto_merge" and not d.allowed


def test_invalid_policy_file_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("auto_merge: [nuke]\nmax_changes_per_hour: -1\n")
    with pytest.raises(PolicyError, match="max_changes_per_hour"):
        load_policy(bad)
    bad.write_text("freeze: [{start: 2026-01-01T00:00:00}]\n")
    with pytest.raises(PolicyError, match="freeze"):
        load_policy(bad)
    bad.write_text("bounds: {memory_ceiling_mib: 100000}\n")
    with pytest.raises(PolicyError, match="memory_ceiling_mib"):
        load_policy(bad)


def _incident() -> Incident:
    return Incident(
        id="inc-42",
        fingerprint="f",
        state="open",
        opened_at=rfc3339_to_ns("2026-11-28T10:00:00.000Z"),
        updated_at=rfc3339_to_ns("2026-11-28T10:00:00.000Z"),
        services=["checkout"],
        severity="critical",
        summary="checkout OOM",
    )


def _ask(action: str, **params: str | int | bool) -> ActionRequest:
    return ActionRequest(action, "checkout", dict(params))


def _diagnosis(*actions: ActionRequest) -> Diagnosis:
    return Diagnosis(
        incident_id="inc-42",
        window_start=rfc3339_to_ns("2026-11-28T09:55:00.000Z"),
        window_end=rfc3339_to_ns("2026-11-28T10:00:00.000Z"),
        baseline_start=rfc3339_to_ns("2026-11-28T09:00:00.000Z"),
        baseline_end=rfc3339_to_ns("2026-11-28T09:55:00.000Z"),
        candidates=[
            Candidate(
                service="checkout",
                fault_class="oom",
                score=0.9,
                confidence=0.8,
                actions=list(actions),
            )
        ],
    )


def test_dry_run_makes_no_commit_and_no_branch(manifests_repo: Path, store: Store) -> None:
    before = git(manifests_repo, "for-each-ref")
    forge = LocalForge(manifests_repo, store)
    fixer = Fixer(forge, store, policy(dry_run=True))
    remedy = fixer.remediate(
        _incident(),
        _diagnosis(_ask("raise_memory_limit")),
        rfc3339_to_ns("2026-11-28T10:00:00.000Z"),
    )
    assert remedy.status == "no_change" and remedy.reason.startswith("dry-run: would Raise")
    assert git(manifests_repo, "for-each-ref") == before
    assert store.count("pull_requests") == 0
    audit = store.query("actions", key="inc-42")
    assert [a["action"] for a in audit] == ["policy_dry_run"]


def test_fixer_skips_refused_recommendations_and_audits_each(
    manifests_repo: Path, store: Store
) -> None:
    forge = LocalForge(manifests_repo, store)
    fixer = Fixer(forge, store, policy())
    remedy = fixer.remediate(
        _incident(),
        _diagnosis(
            _ask("format_disk"),
            _ask("raise_memory_limit", to_mib=99999),
            _ask("set_feature_flag", flag="x", value=True),
            _ask("raise_memory_limit"),
        ),
        rfc3339_to_ns("2026-11-28T10:00:00.000Z"),
    )
    assert remedy.status == "merged", remedy.reason
    actions = [a["action"] for a in store.query("actions", key="inc-42")]
    assert actions.count("refuse_action") == 3
    assert "policy_auto_merge" in actions and "merge" in actions
    # the next incident on the same service hits the cool-down
    second = Incident.from_dict({**_incident().to_dict(), "id": "inc-43"})
    remedy = fixer.remediate(
        second, _diagnosis(_ask("scale_replicas", to=3)), rfc3339_to_ns("2026-11-28T10:05:00.000Z")
    )
    assert remedy.status == "no_change" and "cooling down" in remedy.reason


def test_factory_picks_local_or_github(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GITHUB_TOKEN", "SRE_GITHUB_TOKEN", "SRE_GITHUB_REPO"):
        monkeypatch.delenv(name, raising=False)
    from pydantic import SecretStr

    from sinks.fixer.factory import build_fixer
    from sinks.fixer.forge_github import GithubForge
    from sinks.fixer.tracker import GithubTracker, LocalTracker
    from sre_space.settings import Settings

    local = build_fixer(Settings(state_dir=tmp_path), store)
    assert isinstance(local.forge, LocalForge) and isinstance(local.tracker, LocalTracker)
    assert local.forge.repo == tmp_path / "gitops"
    remote = build_fixer(
        Settings(state_dir=tmp_path, github_token=SecretStr("ghp_" + "x" * 36), github_repo="a/b"),
        store,
        github_base_url="http://127.0.0.1:9/api/v3",
    )
    assert isinstance(remote.forge, GithubForge) and isinstance(remote.tracker, GithubTracker)


def test_the_local_forge_redacts_configured_secrets_by_value(tmp_path: Path, store: Store) -> None:
    # Tokens of no known shape: only their values, from the settings, can catch them.
    from pydantic import SecretStr

    from sinks.fixer.factory import build_fixer
    from sre_space.settings import Settings

    settings = Settings(
        state_dir=tmp_path,
        github_token=SecretStr("plain-github-value-1234"),
        openai_api_key=SecretStr("plain-openai-value-5678"),
    )
    parts = build_fixer(settings, store)
    assert set(parts.fixer.secrets) == {"plain-github-value-1234", "plain-openai-value-5678"}
    parts.audit.record(
        at=rfc3339_to_ns("2026-01-05T00:00:00Z"),
        actor="test",
        action="note",
        reason="saw plain-openai-value-5678 and plain-github-value-1234 in an attribute",
        incident_id="inc-1",
        key="k",
    )
    [row] = store.query("actions")
    assert "plain-" not in row["reason"], row
