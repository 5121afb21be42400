"""One typed pipeline config: every section validated at load, unknown keys named with the nearest
valid one, SRE_CONFIG and --config honoured by every command, `sre-space config show`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from chaos import SITE_CONFIG
from sre_space import cli
from sre_space.paths import STATE_ENV
from sre_space.settings import (
    CONFIG_ENV,
    ConfigError,
    default_config_data,
    load_pipeline_config,
    load_settings,
)

SHOP_NAMES = ("checkout", "frontend", "recommendation", "inventory", "shipping", "catalog")
SHOP_PREFIXES = ("app.payment", "app.product", "app.loyalty", "app.checkouts", "app.orders")


def _write(tmp_path: Path, text: str, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "path", "nearest"),
    [
        ("detecton:\n  baseline: {threshold: 4}\n", "detecton", "detection"),
        ("signals:\n  window_secnds: 5\n", "signals.window_secnds", "window_seconds"),
        ("metrics:\n  series: {max_per_servce: 5}\n", "metrics.series.max_per_servce", None),
        (
            "journeys:\n  j:\n    steps:\n      - {name: a, service: s, operation: o, atributes: {}}\n"
            "      - {name: b, service: s, operation: p}\n",
            "journeys.j.steps.0.atributes",
            "attributes",
        ),
        ("detection:\n  baseline: {treshold: 4}\n", "detection.baseline.treshold", "threshold"),
        (
            "detection:\n  rules:\n    - {field: value, dirction: up}\n",
            "detection.rules.0.dirction",
            "direction",
        ),
        (
            "slos:\n  objectives:\n    a: {type: availability, objective: 0.9, servics: [x]}\n",
            "slos.objectives.a.servics",
            "services",
        ),
        ("incidents:\n  max_hop: 2\n", "incidents.max_hop", "max_hops"),
    ],
)
def test_an_unknown_key_at_any_depth_fails_with_its_path_and_the_nearest_name(
    tmp_path: Path, text: str, path: str, nearest: str | None
) -> None:
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(_write(tmp_path, text))
    message = str(err.value)
    assert f"{path}: unknown" in message
    assert f"did you mean `{nearest or 'max_per_service'}`?" in message


def test_every_bad_key_of_every_section_is_named_in_one_error(tmp_path: Path) -> None:
    text = (
        "archve: {enabled: true}\n"
        "signals: {window_secnds: 10}\n"
        "detection:\n  baseline: {threshold: -1}\n"
        "incidents: {max_hop: 2}\n"
    )
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(path)
    head, *lines = str(err.value).splitlines()
    assert head == f"invalid configuration in {path}:"
    assert [line.strip().split(":")[0] for line in lines] == [
        "archve",
        "signals.window_secnds",
        "detection.baseline.threshold",
        "incidents.max_hop",
    ]


def test_a_bad_value_in_a_stage_section_fails_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"detection\.baseline\.threshold"):
        load_pipeline_config(_write(tmp_path, "detection:\n  baseline: {threshold: -1}\n"))


def test_a_selected_attribute_listed_twice_fails_with_its_path(tmp_path: Path) -> None:
    text = "signals:\n  selected_attributes: [http.route, db.system, http.route]\n"
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(_write(tmp_path, text))
    assert "signals.selected_attributes" in str(err.value)
    assert "listed more than once: http.route" in str(err.value)


def test_files_merge_in_order_over_the_defaults(tmp_path: Path) -> None:
    first = _write(tmp_path, "signals: {window_seconds: 5, exemplars: 7}\n", "a.yaml")
    second = _write(tmp_path, "signals: {window_seconds: 20}\n", "b.yaml")
    config = load_pipeline_config(first, second)
    assert (config.signals.window_seconds, config.signals.exemplars) == (20, 7)
    assert config.signals.lateness_seconds == 5  # untouched defaults stay


def test_the_defaults_name_no_shop() -> None:
    text = yaml.safe_dump(default_config_data())
    assert not [n for n in (*SHOP_NAMES, *SHOP_PREFIXES) if n in text]
    config = load_pipeline_config()
    assert config.journeys == {}
    # ... while the shop's site file brings its journey and attributes back
    site = load_pipeline_config(SITE_CONFIG)
    assert set(site.journeys) == {"checkout"}
    assert "app.payment.outcome" in site.signals.selected_attributes


def test_settings_read_several_files_from_sre_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _write(tmp_path, "signals: {exemplars: 9}\n", "a.yaml")
    monkeypatch.setenv(CONFIG_ENV, os.pathsep.join([str(SITE_CONFIG), str(a)]))
    settings = load_settings()
    assert settings.config_paths == (SITE_CONFIG, a)
    assert settings.pipeline.signals.exemplars == 9 and "checkout" in settings.pipeline.journeys
    # code passes paths; they travel on as one SRE_CONFIG string (to a child flow)
    assert load_settings(config=[SITE_CONFIG, a]).config == os.pathsep.join(
        [str(SITE_CONFIG), str(a)]
    )


def test_config_show_prints_the_effective_merged_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    site = _write(tmp_path, "detection:\n  baseline: {threshold: 4.5}\n")
    assert cli.main(["config", "show", "--config", str(site)]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["detection"]["baseline"]["threshold"] == 4.5
    assert shown["detection"]["baseline"]["min_history"] == 18  # every default filled in
    assert {"signals", "metrics", "slos", "detection", "incidents"} <= set(shown)
    # SRE_CONFIG, and the top-level --config of any subcommand, are honoured the same way
    monkeypatch.setenv(CONFIG_ENV, str(site))
    assert cli.main(["config", "show"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["detection"]["baseline"]["threshold"] == 4.5
    monkeypatch.delenv(CONFIG_ENV)
    monkeypatch.delenv(STATE_ENV, raising=False)
    argv = ["--config", str(site), "--state", str(tmp_path), "config", "show"]
    assert cli.main(argv) == 0
    assert yaml.safe_load(capsys.readouterr().out)["detection"]["baseline"]["threshold"] == 4.5
    # ... for that run only: a caller in the same process keeps its own environment
    assert CONFIG_ENV not in os.environ and STATE_ENV not in os.environ


def test_a_misspelled_section_is_a_command_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(_write(tmp_path, "detecton: {}\n")))
    assert cli.main(["config", "check"]) == 2
    assert "detecton: unknown section (did you mean `detection`?)" in capsys.readouterr().err


def test_replay_reads_sre_config_and_its_own_config_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = _write(tmp_path, "", "empty.jsonl")
    monkeypatch.setenv(CONFIG_ENV, str(_write(tmp_path, "detecton: {}\n", "bad.yaml")))
    # the misspelled section in SRE_CONFIG stops the replay before it starts
    assert cli.main(["replay", str(rec), "--out", str(tmp_path / "a")]) == 2
    assert "detecton: unknown section" in capsys.readouterr().err
    good = _write(tmp_path, "signals: {exemplars: 2}\n", "good.yaml")
    assert cli.main(["replay", str(rec), "--out", str(tmp_path / "b"), "--config", str(good)]) == 0
