"""Config sections: the documented YAML equals the built-in defaults; errors name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from operators.scout.detect.config import DetectionConfig, SlosConfig, load_detection, load_slos
from operators.scout.incidents.config import IncidentsConfig, load_incidents
from sre_space.settings import ConfigError

SNIPPET = Path(__file__).resolve().parents[2] / "operators" / "scout" / "detect" / "defaults.yaml"


def test_snippet_matches_builtin_defaults() -> None:
    from sre_space.settings import default_config_data

    data = yaml.safe_load(SNIPPET.read_text(encoding="utf-8"))
    assert load_detection(data) == DetectionConfig()
    assert load_incidents(data) == IncidentsConfig()
    assert load_slos(data) == SlosConfig()
    # ... and so do the packaged defaults, which name no site's journey
    packaged = default_config_data()
    assert {k: packaged[k] for k in ("slos", "detection", "incidents")} == data
    assert set(SlosConfig().objectives) == {"availability", "latency"}


def test_the_shop_s_site_file_adds_its_journey_objective() -> None:
    from chaos import SITE_CONFIG
    from sre_space.settings import load_pipeline_config

    objectives = load_slos(load_pipeline_config(SITE_CONFIG).extra).objectives
    assert set(objectives) == {"availability", "latency", "checkout-conversion"}
    assert objectives["checkout-conversion"].cuj == "checkout"


def test_an_objective_can_be_disabled_in_a_site_file(tmp_path: Path) -> None:
    from operators.scout.detect.slo import slo_instances
    from sre_space.settings import load_pipeline_config
    from tests.scout.helpers import span

    # The lead merges the snippet into sre_space/defaults.yaml; until then merge it here.
    site = tmp_path / "site.yaml"
    data = yaml.safe_load(SNIPPET.read_text(encoding="utf-8"))
    data["slos"]["objectives"]["latency"]["enabled"] = False
    site.write_text(yaml.safe_dump(data), encoding="utf-8")
    cfg = load_slos(load_pipeline_config(site).extra)
    assert slo_instances(span(0, 1, service="cart"), cfg) == ["availability/cart"]


def test_absent_sections_give_defaults() -> None:
    assert load_detection({}) == DetectionConfig()
    assert load_slos({}) == SlosConfig()
    assert load_incidents({}) == IncidentsConfig()


@pytest.mark.parametrize(
    ("extra", "loader", "key"),
    [
        (
            {"slos": {"objectives": {"x": {"type": "availability", "objective": 1.5}}}},
            load_slos,
            "slos.objectives.x.objective",
        ),
        (
            {"slos": {"objectives": {"x": {"type": "latency", "objective": 0.9}}}},
            load_slos,
            "slos.objectives.x",
        ),
        (
            {
                "slos": {
                    "alerts": [
                        {"severity": "page", "long": "5 minutes", "short": "1m", "burn_rate": 2}
                    ]
                }
            },
            load_slos,
            "slos.alerts.0.long",
        ),
        ({"slos": {"time_scael": 60}}, load_slos, "slos.time_scael"),
        (
            {"detection": {"baseline": {"persistence": {"k": 4, "n": 3}}}},
            load_detection,
            "detection.baseline.persistence",
        ),
        (
            {"detection": {"rules": [{"field": "count", "test": "binomial"}]}},
            load_detection,
            "detection.rules.0",
        ),
        (
            {"incidents": {"silences": [{"service": "a", "starts": "yesterday"}]}},
            load_incidents,
            "incidents.silences.0.starts",
        ),
        (
            {
                "incidents": {
                    "maintenance": [
                        {
                            "services": ["a"],
                            "starts": "2026-01-01T02:00:00Z",
                            "ends": "2026-01-01T01:00:00Z",
                        }
                    ]
                }
            },
            load_incidents,
            "incidents.maintenance.0",
        ),
    ],
)
def test_errors_name_the_bad_key(extra: dict, loader: object, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        loader(extra)  # type: ignore[operator]
    assert key in str(err.value)


def test_yaml_timestamps_and_durations_are_accepted() -> None:
    data = yaml.safe_load(
        "incidents:\n  cooldown: 10m\n  maintenance:\n"
        "    - {services: [payment], starts: 2026-12-01T02:00:00Z, ends: 2026-12-01T03:00:00Z}\n"
    )
    cfg = load_incidents(data)
    assert cfg.cooldown == 600.0
    assert cfg.maintenance[0].starts == "2026-12-01T02:00:00.000Z"
