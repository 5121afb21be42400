"""Settings: environment (SRE_* plus the usual service variables) and the pipeline config file.

Both are frozen and validated once at start-up; a bad value is reported with the key that holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from sre_space.paths import StatePaths

Encoding = Literal["otlp_proto", "otlp_json"]
M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key and the fix."""


class FrozenModel(BaseModel):
    """Base of every config model: immutable once validated, and an unknown key is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SignalsConfig(FrozenModel):
    window_seconds: int = Field(10, gt=0)
    lateness_seconds: int = Field(5, ge=0)
    max_message_bytes: int = Field(16 * 1024 * 1024, gt=0)
    max_attribute_bytes: int = Field(1024 * 1024, gt=0)
    exemplars: int = Field(3, ge=1, le=50)
    graph_sample_every: int = Field(4, ge=1)
    selected_attributes: tuple[str, ...] = ()


class ArchiveConfig(FrozenModel):
    enabled: bool = True
    sample_rate: float = Field(1.0, gt=0.0, le=1.0)
    flush_rows: int = Field(50_000, gt=0)
    max_age_hours: int = Field(72, gt=0)
    max_bytes: int = Field(2 * 1024**3, gt=0)


class JourneyStep(FrozenModel):
    name: str
    service: str
    operation: str
    attributes: dict[str, str] = Field(default_factory=dict)


class Journey(FrozenModel):
    steps: tuple[JourneyStep, ...] = Field(min_length=2)


class SaturationMapping(FrozenModel):
    usage: tuple[str, ...] = Field(min_length=1)
    limit: tuple[str, ...] = ()
    ratio: bool = False
    usage_filter: dict[str, str] = Field(default_factory=dict)


class MetricsConfig(FrozenModel):
    saturation: dict[str, SaturationMapping] = Field(default_factory=dict)
    passthrough: tuple[str, ...] = ()


class PipelineConfig(FrozenModel):
    """The YAML pipeline configuration (defaults in `sre_space/defaults.yaml`)."""

    signals: SignalsConfig = SignalsConfig()
    archive: ArchiveConfig = ArchiveConfig()
    journeys: dict[str, Journey] = Field(default_factory=dict)
    metrics: MetricsConfig = MetricsConfig()
    # Later stages (detectors, SLOs, policy...) add their sections; unknown sections are kept as data
    # so that an older reader still starts, but each stage validates its own.
    extra: dict[str, Any] = Field(default_factory=dict)


_KNOWN_SECTIONS = {"signals", "archive", "journeys", "metrics"}


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def default_config_data() -> dict[str, Any]:
    """The packaged defaults as plain data."""
    text = resources.files("sre_space").joinpath("defaults.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def load_pipeline_config(path: str | Path | None = None) -> PipelineConfig:
    """Defaults merged with the YAML file at `path` (if any), validated; errors name the key."""
    data = default_config_data()
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read pipeline config {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"pipeline config {path} must be a mapping at the top level")
        data = _deep_merge(data, loaded)
    extra = {k: data.pop(k) for k in list(data) if k not in _KNOWN_SECTIONS}
    try:
        return PipelineConfig(**data, extra=extra)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, f"configuration in {path or 'defaults.yaml'}")) from None


def _describe(exc: ValidationError, source: str, *prefix: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join([*prefix, *(str(p) for p in err["loc"])])
        lines.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return f"invalid {source}:\n  " + "\n  ".join(lines)


def load_section(extra: Mapping[str, Any], name: str, model: type[M]) -> M:
    """A later stage's section of `PipelineConfig.extra`, validated; errors name the bad key."""
    data = extra.get(name) or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{name}: must be a mapping, got {type(data).__name__}")
    try:
        return model(**dict(data))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, f"`{name}` configuration", name)) from None


class Settings(BaseSettings):
    """Process settings from the environment: `SRE_*`, plus KAFKA_*, OPENAI_*, GITHUB_TOKEN."""

    model_config = SettingsConfigDict(env_prefix="SRE_", frozen=True, extra="ignore")

    state_dir: Path = Path("state")
    config: Path | None = None
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "SRE_KAFKA_BOOTSTRAP_SERVERS"),
    )
    spans_topic: str = "otlp_spans"
    metrics_topic: str = "otlp_metrics"
    spans_encoding: Encoding = "otlp_proto"
    metrics_encoding: Encoding = "otlp_proto"
    signals_topic: str = "sre.signals"
    anomalies_topic: str = "sre.anomalies"
    incidents_topic: str = "sre.incidents"
    actions_topic: str = "sre.actions"
    deadletter_topic: str = "sre.deadletter"
    kafka_starting_offset: Literal["beginning", "end"] = "beginning"
    # messages per source poll and partition: memory grows with this times spans per message
    kafka_batch_size: int = Field(64, ge=1)
    # false: stop at the end of the topics (tests, one-off catch-up runs)
    kafka_tail: bool = True
    # true: the watermark moves with event time only (deterministic runs over Kafka)
    deterministic_clock: bool = False
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OPENAI_API_KEY", "SRE_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        None, validation_alias=AliasChoices("OPENAI_BASE_URL", "SRE_OPENAI_BASE_URL")
    )
    openai_model: str = "gpt-4o-mini"
    github_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("GITHUB_TOKEN", "SRE_GITHUB_TOKEN")
    )
    github_repo: str | None = None
    jaeger_url: str | None = None
    # the Jaeger UI as a browser reaches it, for the dashboard's trace links (else jaeger_url)
    jaeger_ui_url: str | None = None
    chroma_url: str | None = None

    @cached_property
    def pipeline(self) -> PipelineConfig:
        """The pipeline config: defaults merged with the file named by SRE_CONFIG."""
        return load_pipeline_config(self.config)

    @property
    def paths(self) -> StatePaths:
        """The state folder's layout (`sre_space.paths`)."""
        return StatePaths(self.state_dir)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with explicit overrides; errors name the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            lines.append(f"SRE_{key.upper()} / {key}: {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
