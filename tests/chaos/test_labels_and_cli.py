"""Labels, the command line, the control channel and `sre-space init`."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pytest

from chaos import cli, control
from chaos.live import apply_command
from chaos.recorder import labels_path
from chaos.scenarios import registry
from chaos.shop import Shop, ShopConfig
from sre_space.harness import init_cmd
from sre_space.timeutil import NS_PER_S, rfc3339_to_ns
from tests.chaos.params import ONSET_S, Recorder

ACTIONS = {
    "rollback_version",
    "raise_memory_limit",
    "scale_replicas",
    "revert_commit",
    "set_feature_flag",
    "raise_timeout",
    "restart",
}
EXPECTED = {
    # scenario: (fault class, culprit service, remediation action, culprit fields that must be set)
    "oom": ("memory_leak", "checkout", "rollback_version", ("version", "commit")),
    "conversion": ("business_logic", "payment", "set_feature_flag", ("flag", "segment", "commit")),
    "latency": ("latency", "inventory", "rollback_version", ("operation", "version", "commit")),
    "errors": ("error_rate", "cart", "rollback_version", ("operation", "version", "commit")),
    "dependency_timeout": ("dependency_timeout", "shipping", "restart", ()),
    "config_drift": ("config_change", "inventory", "revert_commit", ("commit",)),
    "cpu_saturation": ("saturation", "catalog", "scale_replicas", ("operation",)),
    "cache_failure": ("cache_failure", "redis", "restart", ()),
    "queue_lag": ("queue_lag", "order-worker", "scale_replicas", ("operation",)),
    "crashloop": ("crashloop", "recommendation", "revert_commit", ("commit",)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_labels(recorded: Recorder, name: str) -> None:
    path, labels, _ = recorded(name, seed=1, intensity=4.0 if name == "oom" else 1.0)
    assert json.loads(labels_path(path).read_text()) == labels
    fault_class, service, action, fields = EXPECTED[name]
    assert (
        labels["scenario"] == name
        and labels["seed"] == 1
        and labels["schema"] == "sre.chaos.labels/v1"
    )
    assert labels["fault_class"] == fault_class
    assert labels["culprit"]["service"] == service
    for field in fields:
        assert labels["culprit"][field], field
    assert rfc3339_to_ns(labels["onset"]) - rfc3339_to_ns(labels["start"]) == int(ONSET_S * 1e9)
    assert labels["end"] == labels["stop"]
    assert labels["remediation"]["action"] == action in ACTIONS
    assert all(a["action"] in ACTIONS for a in labels["alternatives"])
    commits = [c["commit"] for c in labels["changes"]]
    if labels["culprit"]["commit"]:
        assert labels["culprit"]["commit"] in commits
        if action == "revert_commit":
            assert labels["remediation"]["params"]["commit"] == labels["culprit"]["commit"]
    assert labels["noise"][0]["commit"] in commits  # the harmless deploy is a change too
    assert labels["noise"][0]["service"] != service


def test_recording_ships_its_gitops_history(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    assert (
        cli.main(
            [
                "record",
                "config_drift",
                "--seed",
                "2",
                "--duration",
                "3m",
                "--onset",
                "1m",
                "--rate",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    labels = json.loads(labels_path(out).read_text())
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", str(tmp_path / labels["gitops_bundle"]), str(clone)], check=True
    )
    show = subprocess.run(
        ["git", "-C", str(clone), "show", labels["culprit"]["commit"]],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "base/inventory.yaml" in show.stdout
    assert (
        '-              value: "20"' in show.stdout and '+              value: "2"' in show.stdout
    )
    assert labels["fault_class"] == "config_change" and labels["end"] == "2026-01-05T00:03:00.000Z"


def test_fault_duration_ends_the_fault(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    cli.main(
        [
            "record",
            "conversion",
            "--seed",
            "1",
            "--duration",
            "4m",
            "--onset",
            "1m",
            "--fault-duration",
            "90s",
            "--rate",
            "3",
            "--out",
            str(out),
            "--no-noise",
        ]
    )
    labels = json.loads(labels_path(out).read_text())
    assert labels["end"] == "2026-01-05T00:02:30.000Z" and labels["noise"] == []
    assert [c["subject"] for c in labels["changes"]] == [
        "payment: enable new_fraud_rules (stricter risk scoring)",
        "chaos: end conversion on payment",
    ]


def test_durations() -> None:
    assert [cli.parse_duration(t) for t in ("90", "90s", "15m", "1h", "1h30m", "2.5m")] == [
        90,
        90,
        900,
        3600,
        5400,
        150,
    ]
    for bad in ("", "5x", "m", "1h 2m"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.parse_duration(bad)


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in registry())


def test_run_and_stop_reach_a_shop_through_the_control_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    shop = Shop(seed=1, gitops_path=state / "gitops", config=ShopConfig(rate_rps=2))
    reader = control.ControlReader(state)
    assert cli.main(["--state", str(state), "oom", "--intensity", "2"]) == 0  # bare name = run
    assert cli.main(["--state", str(state), "run", "cache_failure", "--duration", "30s"]) == 0
    commands = reader.poll()
    assert [c["scenario"] for c in commands] == ["oom", "cache_failure"]
    assert reader.poll() == []  # each command is seen once
    for c in commands:
        apply_command(shop, c)
    assert {i.scenario for i in shop.injections.values()} == {"oom", "cache_failure"}
    shop.advance(40)  # the cache fault had a 30 s duration
    assert {i.scenario for i in shop.injections.values()} == {"oom"}
    assert cli.main(["--state", str(state), "stop"]) == 0
    for c in reader.poll():
        apply_command(shop, c)
    assert shop.injections == {} and shop.desired["checkout"].version == "1.4.2"
    # a shop started later ignores commands written before it
    assert control.ControlReader(state).poll() == []


def test_a_command_with_an_event_time_runs_at_that_tick(tmp_path: Path) -> None:
    shop = Shop(seed=1, gitops_path=tmp_path / "gitops", config=ShopConfig(rate_rps=2))
    at_ns = shop.now_ns + 120 * NS_PER_S
    lines: list[str] = []
    line = apply_command(
        shop, {"id": 1, "cmd": "inject", "scenario": "oom", "at_ns": at_ns}, lines.append
    )
    assert line.startswith("scheduled inject oom at ") and shop.injections == {}
    bad = {"id": 2, "cmd": "inject", "scenario": "no_such_fault", "at_ns": at_ns}
    apply_command(shop, bad, lines.append)
    shop.advance(110)
    assert shop.injections == {} and lines == []
    shop.advance(20)  # the bad one is logged, not raised into the shop's loop
    [inj] = shop.injections.values()
    assert inj.scenario == "oom" and inj.onset_ns == at_ns
    assert lines[0].startswith("injected oom into ") and lines[1].startswith("command 2 failed")
    # an event time already passed runs at once
    apply_command(shop, {"cmd": "clear", "at_ns": at_ns}, lines.append)
    assert shop.injections == {}


def test_init_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    init_cmd.add_arguments(parser)
    args = parser.parse_args([])
    args.state = str(tmp_path / "state")
    assert init_cmd.run(args) == 0
    head = (tmp_path / "state/gitops/.git/refs/heads/main").read_text()
    assert init_cmd.run(args) == 0
    assert (tmp_path / "state/gitops/.git/refs/heads/main").read_text() == head
    assert "created" in capsys.readouterr().out


def test_suite_records_every_scenario_and_fault_free_runs(tmp_path: Path) -> None:
    args = [
        "suite",
        "--out",
        str(tmp_path / "rec"),
        "--seeds",
        "1",
        "--duration",
        "90s",
        "--onset",
        "45s",
    ]
    assert cli.main([*args, "--healthy-hours", "1", "--rate", "1"]) == 0
    names = sorted(p.name for p in (tmp_path / "rec").glob("*.jsonl.gz"))
    assert names == sorted(
        [f"{n}-seed1.jsonl.gz" for n in registry()] + ["healthy-seed1000.jsonl.gz"]
    )
    for name in names:
        labels = json.loads((tmp_path / "rec" / f"{name}.labels.json").read_text())
        assert labels["scenario"] == name.split("-seed")[0]
