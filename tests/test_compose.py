"""docker-compose.yml cannot run here (no Docker engine); check it against the code instead."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from sre_space.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SERVICES = {
    "kafka",
    "otel-collector",
    "jaeger",
    "chromadb",
    "shop",
    "dataflow",
    "responders",
    "dashboard",
}


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _env_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"SRE_{name.upper()}")
        alias = field.validation_alias
        names.update(getattr(alias, "choices", []) or [])
    return names


def test_every_part_is_a_service_with_a_health_check() -> None:
    services = _compose()["services"]
    assert set(services) >= SERVICES
    for name in SERVICES:
        assert "healthcheck" in services[name], name


def test_environment_names_are_settings_the_code_reads() -> None:
    known = _env_names()
    for name, service in _compose()["services"].items():
        if name in {"kafka"}:
            continue  # the broker's own KAFKA_* settings
        for var in service.get("environment") or {}:
            assert var in known, f"{name}: {var} is not a setting (sre_space/settings.py)"


def test_commands_name_modules_and_subcommands_that_exist() -> None:
    services = _compose()["services"]
    assert services["dataflow"]["command"][:4] == ["python", "-m", "bytewax.run", "flows.main"]
    assert (REPO / "flows" / "main.py").exists()
    assert "shop" in services["shop"]["command"]
    from chaos.cli import build_parser  # the chaos CLI accepts `--state DIR shop`

    build_parser().parse_args(["--state", "/state", "shop"])
    from sre_space.cli import SUBCOMMANDS

    for name in ("dashboard", "responders"):
        cmd = services[name]["command"]
        assert cmd[0] == "sre-space" and any(c in SUBCOMMANDS for c in cmd), cmd


def _compose_default(value: str) -> str:
    """The value compose runs with: `${env:NAME:-default}` gives its default."""
    found = re.fullmatch(r"\$\{env:\w+:-(.*)\}", value)
    return found.group(1) if found else value


def test_collector_writes_what_the_flow_reads() -> None:
    # tests/ecosystem runs this same file in a real Collector; here, the compose defaults.
    config = yaml.safe_load((REPO / "deploy" / "otel-collector.yaml").read_text())
    settings = Settings()
    kafka = config["exporters"]["kafka"]
    assert _compose_default(kafka["traces"]["topic"]) == settings.spans_topic
    assert _compose_default(kafka["metrics"]["topic"]) == settings.metrics_topic
    encodings = {_compose_default(kafka[s]["encoding"]) for s in ("traces", "metrics")}
    assert encodings == {"otlp_proto"}
    assert [_compose_default(b) for b in kafka["brokers"]] == ["kafka:9092"]
    assert "otlp" in config["receivers"]
    ports = {p.split(":")[0] for p in _compose()["services"]["otel-collector"]["ports"]}
    assert ports == {"4317", "4318"}


def test_dockerfile_installs_the_project() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"pip install .*\.", text)


def test_dockerfile_builds_the_kustomize_the_tools_script_pins() -> None:
    # the shop renders its GitOps repository with kustomize: the image needs the same version
    pin = re.search(r'KUSTOMIZE_MODULE="([^"]+)"', (REPO / "scripts/gitops/tools").read_text())
    assert pin is not None
    text = (REPO / "Dockerfile").read_text()
    assert f"go install {pin.group(1)}" in text
    assert "COPY --from=tools /out/kustomize /usr/local/bin/kustomize" in text


def test_the_dashboard_links_traces_to_a_jaeger_ui_the_browser_reaches() -> None:
    services = _compose()["services"]
    env = services["dashboard"]["environment"]
    assert env["SRE_JAEGER_URL"] == "http://jaeger:16686"  # the Brain's, inside compose
    ui = env["SRE_JAEGER_UI_URL"]
    assert ui == "http://localhost:16686"
    assert f"{ui.rsplit(':', 1)[1]}:16686" in services["jaeger"]["ports"]
