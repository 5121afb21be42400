"""Playbook: typed actions, bounds, the key guard, refusals as results, undo."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.fixer import manifest as mf
from sinks.fixer.playbook import SPECS, Bounds, Playbook, guard
from sre_space.actions import ACTIONS
from sre_space.records import ActionRequest
from sre_space.timeutil import rfc3339_to_ns

from .helpers import MemSource, manifest

NOW = rfc3339_to_ns("2026-11-28T10:00:00.000Z")


def source(**replace: str) -> MemSource:
    text = manifest("checkout", **replace)
    old = manifest("checkout")  # 1.4.1
    return MemSource(
        {"services/checkout.yaml": text},
        {"services/checkout.yaml": [text, old, manifest("checkout", **{'"1.4.1"': '"1.3.0"'})]},
    )


def ask(action: str, params: dict[str, Any]) -> ActionRequest:
    """A request as a person or the Brain sends it: the service apart from the parameters."""
    rest = {k: v for k, v in params.items() if k != "service"}
    return ActionRequest(action, str(params.get("service", "")), rest, source="operator")


def plan(action: str, **params: Any) -> tuple[bool, str, dict[str, object]]:
    res = Playbook().plan(ask(action, params), source(**{'"1.4.1"': '"1.4.2"'}), NOW)
    return res.ok, res.reason, (res.change.after if res.change else {})


def test_every_action_plans_a_one_key_change_that_keeps_comments() -> None:
    cases: dict[str, dict[str, Any]] = {
        "rollback_version": {"service": "checkout"},
        "raise_memory_limit": {"service": "checkout", "to_mib": 768},
        "scale_replicas": {"service": "checkout", "to": 5},
        "set_feature_flag": {"service": "checkout", "flag": "new_pricing_rules", "value": True},
        "raise_timeout": {"service": "checkout", "to_ms": 1600},
        "enable_circuit_breaker": {"service": "checkout"},
        "restart": {"service": "checkout"},
    }
    src = source(**{'"1.4.1"': '"1.4.2"'})
    for action, params in cases.items():
        res = Playbook().plan(ask(action, params), src, NOW)
        assert res.ok, (action, res.reason)
        change = res.change
        assert change is not None
        old, new = change.old_text.splitlines(), change.new_text.splitlines()
        assert len(old) == len(new)
        assert sum(a != b for a, b in zip(old, new, strict=True)) == 1, action
        assert "# must equal the file name" in change.new_text
        assert mf.changed_keys(mf.parse(change.old_text), mf.parse(change.new_text)) == list(
            change.allowed_keys
        )
        assert change.undo.startswith("revert the merge commit")


def test_rollback_goes_to_the_previous_distinct_version_from_history() -> None:
    assert plan("rollback_version", service="checkout")[2] == {"version": "1.4.1"}
    assert plan("rollback_version", service="checkout", to_version="1.3.0")[2] == {
        "version": "1.3.0"
    }
    ok, reason, _ = plan("rollback_version", service="checkout", to_version="9.9.9")
    assert not ok and "never ran" in reason
    ok, reason, _ = plan("rollback_version", service="checkout", to_version="1.4.2")
    assert not ok and "already runs" in reason


@pytest.mark.parametrize(
    ("action", "params", "why"),
    [
        ("drop_database", {"service": "checkout"}, "unknown action"),
        ("raise_memory_limit", {"service": "checkout", "to_mib": 2048}, "more than 2x"),
        ("raise_memory_limit", {"service": "checkout", "to_mib": 256}, "does not raise"),
        ("raise_memory_limit", {"service": "checkout", "to_mib": "lots"}, "must be an integer"),
        ("raise_memory_limit", {"service": "checkout", "to_mib": True}, "must be an integer"),
        ("raise_memory_limit", {"service": "checkout", "limit": 1024}, "no parameter 'limit'"),
        ("scale_replicas", {"service": "checkout", "to": 21}, "outside 1..20"),
        ("scale_replicas", {"service": "checkout", "to": 6}, "at most +3"),
        ("scale_replicas", {"service": "checkout", "to": 0}, "outside 1..20"),
        ("scale_replicas", {"to": 3}, "'service' must be a non-empty string"),
        ("scale_replicas", {"service": "checkout", "utilization": "high"}, "finite number"),
        ("raise_timeout", {"service": "checkout", "to_ms": 30001}, "ceiling"),
        (
            "set_feature_flag",
            {"service": "checkout", "flag": "x", "value": True},
            "no feature flag",
        ),
        (
            "set_feature_flag",
            {"service": "checkout", "flag": "new_pricing_rules", "value": "maybe"},
            "true or false",
        ),
        ("restart", {"service": "../etc/passwd"}, "invalid service name"),
        ("restart", {"service": "payment"}, "no manifest"),
        ("revert_commit", {"service": "checkout", "sha": "HEAD~1; rm -rf /"}, "not a commit id"),
        ("enable_circuit_breaker", {"service": "checkout", "enabled": False}, "nothing to change"),
    ],
)
def test_refusals_are_results_with_reasons(action: str, params: dict[str, Any], why: str) -> None:
    ok, reason, _ = plan(action, **params)
    assert not ok
    assert why in reason


def test_restart_needs_event_time() -> None:
    res = Playbook().plan(ActionRequest("restart", "checkout"), source(), now=None)
    assert not res.ok and "event time" in res.reason


def test_revert_commit_restores_only_values_still_in_place() -> None:
    before = manifest("checkout")
    after = manifest(
        "checkout", **{"max: 20": "max: 5", "downstream_ms: 800": "downstream_ms: 100"}
    )
    current = after.replace("downstream_ms: 100", "downstream_ms: 900")  # overwritten later
    src = MemSource(
        {"services/checkout.yaml": current},
        commits={"abc1234": {"services/checkout.yaml": (before, after)}},
    )
    res = Playbook().plan(ActionRequest("revert_commit", "checkout", {"sha": "abc1234"}), src, NOW)
    assert res.ok, res.reason
    assert res.change is not None
    assert res.change.after == {"connection_pool.max": 20}
    assert res.change.service == "checkout"
    two = MemSource(
        {"services/checkout.yaml": current},
        commits={
            "abc1234": {
                "services/checkout.yaml": (before, after),
                "services/cart.yaml": ("a: 1", "a: 2"),
            }
        },
    )
    res = Playbook().plan(ActionRequest("revert_commit", "checkout", {"sha": "abc1234"}), two, NOW)
    assert not res.ok and "one service per change" in res.reason
    elsewhere = ActionRequest("revert_commit", "cart", {"sha": "abc1234"})
    res = Playbook().plan(elsewhere, src, NOW)
    assert not res.ok and "not cart" in res.reason


def test_guard_refuses_keys_outside_the_allowed_set() -> None:
    old = mf.parse(manifest("checkout"))
    new = mf.set_path(mf.set_path(old, "replicas", 9), "resources.memory_limit_mib", 1024)
    assert guard(old, new, ["resources.memory_limit_mib"]) == ["replicas"]
    assert guard(old, new, ["resources.memory_limit_mib", "replicas"]) == []
    added = mf.set_path(old, "feature_flags.evil", True)
    assert guard(old, added, ["feature_flags.new_pricing_rules"]) == ["feature_flags.evil"]


def test_inverse_undoes_only_what_is_still_there() -> None:
    res = Playbook().plan(ActionRequest("scale_replicas", "checkout", {"to": 4}), source(), NOW)
    assert res.change is not None
    inverse = Playbook.inverse(res.change, res.change.new_text)
    assert inverse is not None and inverse.new_text == res.change.old_text
    assert (inverse.before, inverse.after, inverse.allowed_keys) == (
        {"replicas": 4},
        {"replicas": 2},
        ("replicas",),
    )
    later = res.change.new_text.replace("replicas: 4", "replicas: 7")
    assert Playbook.inverse(res.change, later) is None


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(current=st.integers(64, 8192), to=st.integers(-10, 20000))
def test_memory_bounds_hold_for_any_request(current: int, to: int) -> None:
    src = MemSource({"services/checkout.yaml": manifest("checkout", **{"512": str(current)})})
    res = Playbook().plan(ActionRequest("raise_memory_limit", "checkout", {"to_mib": to}), src, NOW)
    if res.ok:
        assert res.change is not None
        new = res.change.after["resources.memory_limit_mib"]
        assert isinstance(new, int)
        assert current < new <= min(8192, 2 * current)
    else:
        assert to <= current or to > 8192 or to > 2 * current


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(current=st.integers(1, 20), to=st.integers(-5, 40))
def test_replica_bounds_hold_for_any_request(current: int, to: int) -> None:
    src = MemSource(
        {"services/checkout.yaml": manifest("checkout", **{"replicas: 2": f"replicas: {current}"})}
    )
    res = Playbook().plan(ActionRequest("scale_replicas", "checkout", {"to": to}), src, NOW)
    assert res.ok == (1 <= to <= 20 and to - current <= 3 and to != current)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(current=st.integers(50, 30000), to=st.one_of(st.none(), st.integers(0, 70000)))
def test_timeout_bounds_hold_for_any_request(current: int, to: int | None) -> None:
    src = MemSource(
        {
            "services/checkout.yaml": manifest(
                "checkout", **{"downstream_ms: 800": f"downstream_ms: {current}"}
            )
        }
    )
    params: dict[str, str | int | float | bool] = {} if to is None else {"to_ms": to}
    res = Playbook(Bounds()).plan(ActionRequest("raise_timeout", "checkout", params), src, NOW)
    if res.ok:
        assert res.change is not None
        new = res.change.after["timeouts.downstream_ms"]
        assert current < new <= min(30000, 2 * current)


def test_playbook_lists_the_documented_actions() -> None:
    assert (
        set(SPECS)
        == set(ACTIONS)
        == {
            "rollback_version",
            "raise_memory_limit",
            "scale_replicas",
            "revert_commit",
            "set_feature_flag",
            "raise_timeout",
            "enable_circuit_breaker",
            "restart",
        }
    )


def test_defaults_when_the_brain_names_only_the_action() -> None:
    assert plan("scale_replicas", service="checkout")[2] == {"replicas": 4}
    assert plan("raise_memory_limit", service="checkout")[2] == {"resources.memory_limit_mib": 1024}
    assert plan("raise_timeout", service="checkout")[2] == {"timeouts.downstream_ms": 1600}
    assert plan("set_feature_flag", service="checkout", flag="new_pricing_rules")[2] == {}
    src = source(**{"new_pricing_rules: false": "new_pricing_rules: true"})
    res = Playbook().plan(
        ActionRequest("set_feature_flag", "checkout", {"flag": "new_pricing_rules"}), src
    )
    assert res.change is not None and res.change.after == {"feature_flags.new_pricing_rules": False}


def test_sized_scale_carries_the_load_at_the_target_utilization() -> None:
    # 2 replicas at 98% CPU: 1.96 replicas of load, at 65% each -> ceil(3.02) = 4.
    assert plan("scale_replicas", service="checkout", utilization=0.98)[2] == {"replicas": 4}
    # A queue needing 2.7x its consumers -> ceil(2 * 2.7 / 0.65) = 9, capped at +3 per change.
    assert plan("scale_replicas", service="checkout", utilization=2.7)[2] == {"replicas": 5}
    ok, reason, _ = plan("scale_replicas", service="checkout", utilization=0.5)
    assert not ok and "no more than the current 2 replicas" in reason
    tight = Playbook(Bounds(target_utilization=0.9)).plan(
        ActionRequest("scale_replicas", "checkout", {"utilization": 2.7}), source(), NOW
    )
    assert tight.change is not None and tight.change.after == {"replicas": 5}
    loose = Playbook(Bounds(target_utilization=0.9)).plan(
        ActionRequest("scale_replicas", "checkout", {"utilization": 1.2}), source(), NOW
    )
    assert loose.change is not None and loose.change.after == {"replicas": 3}


def test_sized_memory_puts_the_peak_at_the_target_utilization() -> None:
    # A 512 MiB limit hit (utilization 1.0): ceil(512 / 0.65) = 788 MiB, within 2x.
    assert plan("raise_memory_limit", service="checkout", utilization=1.0)[2] == {
        "resources.memory_limit_mib": 788
    }
    # Far above the limit's reach: capped at the 2x step.
    assert plan("raise_memory_limit", service="checkout", utilization=3.0)[2] == {
        "resources.memory_limit_mib": 1024
    }
    ok, reason, _ = plan("raise_memory_limit", service="checkout", utilization=0.3)
    assert not ok and "does not raise" in reason
