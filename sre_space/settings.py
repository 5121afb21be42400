"""Settings: environment (SRE_* plus the usual service variables) and the pipeline config files.

Both are frozen and validated once at start-up. The pipeline config is the packaged defaults with
each file of `--config` (else of SRE_CONFIG, separated by `os.pathsep`) merged over them in turn;
every section is typed, and an unknown or bad key at any depth is reported with its dotted path
(and, for an unknown key, the nearest valid name).
"""

from __future__ import annotations

import difflib
import importlib
import os
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from sre_space.paths import StatePaths
from sre_space.timeutil import parse_duration

Encoding = Literal["otlp_proto", "otlp_json"]
M = TypeVar("M", bound=BaseModel)


# Bytes per source poll and partition, about (Kafka, and recordings the same way).
POLL_BYTES = 32 * 2**20


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key and the fix."""


class FrozenModel(BaseModel):
    """Base of every config model: immutable once validated, and an unknown key is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SignalsConfig(FrozenModel):
    window_seconds: int = Field(10, gt=0)
    lateness_seconds: int = Field(5, ge=0)
    partition_skew_seconds: int = Field(900, ge=0)
    max_message_bytes: int = Field(16 * 1024 * 1024, gt=0)
    max_attribute_bytes: int = Field(1024 * 1024, gt=0)
    exemplars: int = Field(3, ge=1, le=50)
    graph_sample_every: int = Field(4, ge=1)
    selected_attributes: tuple[str, ...] = ()

    @field_validator("selected_attributes")
    @classmethod
    def _each_key_once(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        # A key listed twice became two archive columns, one of them left empty.
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"listed more than once: {', '.join(twice)}")
        return keys


class ArchiveConfig(FrozenModel):
    enabled: bool = True
    sample_rate: float = Field(1.0, gt=0.0, le=1.0)
    flush_rows: int = Field(50_000, gt=0)
    flush_seconds: float = Field(15.0, gt=0.0)
    # event-time seconds a batch waits for a failing or slow span of its traces (sample_rate < 1)
    decision_wait_seconds: float = Field(30.0, ge=0.0)
    max_age_hours: int = Field(72, gt=0)
    max_bytes: int = Field(2 * 1024**3, gt=0)


class JourneyStep(FrozenModel):
    name: str
    service: str
    operation: str
    attributes: dict[str, str] = Field(default_factory=dict)


class Journey(FrozenModel):
    steps: tuple[JourneyStep, ...] = Field(min_length=2)
    # Low-cardinality request attributes (a payment method, a customer tier) whose every value
    # gets the journey's counts of its own: a fault that fails one slice of the requests is
    # diluted in the whole journey's rates, and stands out in its slice's.
    slice_by: tuple[str, ...] = ()


class SaturationMapping(FrozenModel):
    usage: tuple[str, ...] = Field(min_length=1)
    limit: tuple[str, ...] = ()
    ratio: bool = False
    usage_filter: dict[str, str] = Field(default_factory=dict)


class SeriesConfig(FrozenModel):
    """Every gauge and sum outside the saturation mappings: one signal per series."""

    enabled: bool = True
    # metric name globs never turned into signals (the opt-out list)
    exclude: tuple[str, ...] = ()
    # point attributes that describe an instance's state rather than name a series (a container's
    # last termination reason appears with its first restart): left out of the series' identity,
    # so the restart count stays one series whose rise is seen
    state_attributes: tuple[str, ...] = (
        "k8s.container.status.last_terminated_reason",
        "k8s.container.status.reason",
        "k8s.container.status.state",
    )
    # distinct series per service; points of further series are counted in the service's
    # `metric_series_overflow` pipeline signal instead
    max_per_service: int = Field(1000, ge=1)
    # a series unseen this long (event time) gives its place under the cap back
    idle: Annotated[float, BeforeValidator(parse_duration), Field(gt=0)] = 3600.0


class MetricsConfig(FrozenModel):
    saturation: dict[str, SaturationMapping] = Field(default_factory=dict)
    series: SeriesConfig = SeriesConfig()


class PipelineConfig(FrozenModel):
    """The YAML pipeline configuration (defaults in `sre_space/defaults.yaml`)."""

    signals: SignalsConfig = SignalsConfig()
    archive: ArchiveConfig = ArchiveConfig()
    journeys: dict[str, Journey] = Field(default_factory=dict)
    metrics: MetricsConfig = MetricsConfig()
    # The later stages' sections (`STAGE_SECTIONS`) as plain data, validated at load; each stage
    # reads its own with its model (`load_section`).
    extra: dict[str, Any] = Field(default_factory=dict)


_KNOWN_SECTIONS = {"signals", "archive", "journeys", "metrics"}
# The later stages' sections: name -> "module:Model", imported when a config is loaded (the core
# imports no other package statically). A stage that adds a section registers it here.
STAGE_SECTIONS: dict[str, str] = {
    "slos": "operators.scout.detect.config:SlosConfig",
    "detection": "operators.scout.detect.config:DetectionConfig",
    "incidents": "operators.scout.incidents.config:IncidentsConfig",
    "diagnosis": "sinks.brain.config:DiagnosisSection",
    "deploy": "sinks.fixer.rollout:DeployConfig",
}
CONFIG_ENV = "SRE_CONFIG"


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


def config_paths(value: str | Path | Iterable[str | Path] | None) -> tuple[Path, ...]:
    """Config files from a `os.pathsep`-separated string, one path, or several."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(Path(p) for p in value.split(os.pathsep) if p)
    if isinstance(value, Path):
        return (value,)
    return tuple(p for v in value for p in config_paths(v))


def env_config_paths() -> tuple[Path, ...]:
    """The files SRE_CONFIG names (none when unset)."""
    return config_paths(os.environ.get(CONFIG_ENV))


def merged_config_data(*paths: str | Path | None) -> dict[str, Any]:
    """The defaults with each file merged over them in turn (later files win), as plain data."""
    data = default_config_data()
    for path in paths:
        if path is None:
            continue
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read pipeline config {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"pipeline config {path} must be a mapping at the top level")
        data = _deep_merge(data, loaded)
    return data


def load_pipeline_config(*paths: str | Path | None) -> PipelineConfig:
    """Defaults merged with the YAML files `paths` (in order), validated; errors name the key."""
    data = merged_config_data(*paths)
    source = ", ".join(str(p) for p in paths if p is not None) or "defaults.yaml"
    # Every bad key of every section in one error: fixing them one run at a time is slow.
    valid = sorted(_KNOWN_SECTIONS | set(STAGE_SECTIONS))
    lines = [f"{k}: unknown section{_nearest(k, valid)}" for k in sorted(data) if k not in valid]
    data = {k: v for k, v in data.items() if k in valid}
    extra = {k: data.pop(k) for k in list(data) if k in STAGE_SECTIONS}
    config = None
    try:
        config = PipelineConfig(**data, extra=extra)
    except ValidationError as exc:
        lines += _error_lines(exc, model=PipelineConfig)
    for name in sorted(extra):
        try:
            load_section(extra, name, stage_model(name))
        except _SectionError as exc:
            lines += exc.lines
    if lines or config is None:
        raise ConfigError(f"invalid configuration in {source}:\n  " + "\n  ".join(lines))
    return config


def stage_model(name: str) -> type[BaseModel]:
    """The model of a registered stage section (imported by name)."""
    module, _, attr = STAGE_SECTIONS[name].partition(":")
    model = getattr(importlib.import_module(module), attr)
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model


def effective_config(config: PipelineConfig) -> dict[str, Any]:
    """Every section with every default filled in, as plain data (`sre-space config show`)."""
    out = config.model_dump(mode="json", exclude={"extra"})
    for name in sorted(STAGE_SECTIONS):
        out[name] = load_section(config.extra, name, stage_model(name)).model_dump(mode="json")
    return out


def _nearest(key: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _model_of(tp: Any) -> type[BaseModel] | None:
    """The model inside an annotation (Optional, Annotated and unions unwrapped)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    origin = typing.get_origin(tp)
    if origin is Annotated or origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _fields_at(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The valid keys of the mapping at `path` inside `model` (none when unknown)."""
    tp: Any = model
    for part in path:
        sub = _model_of(tp)
        if sub is not None:
            info = sub.model_fields.get(str(part))
            if info is None:
                return []
            tp = info.annotation
            continue
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is Annotated:
            tp = args[0]
            continue
        if origin in (dict, Mapping) and len(args) == 2:
            tp = args[1]
        elif origin in (tuple, list) and args:
            tp = args[0]
        else:
            return []
    sub = _model_of(tp)
    return list(sub.model_fields) if sub is not None else []


def _error_lines(
    exc: ValidationError, *prefix: str, model: type[BaseModel] | None = None
) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        key = ".".join([*prefix, *(str(p) for p in loc)])
        if err["type"] == "extra_forbidden":
            valid = _fields_at(model, loc[:-1]) if model is not None else []
            lines.append(f"{key}: unknown key{_nearest(str(loc[-1]), valid)}")
        else:
            lines.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return lines


class _SectionError(ConfigError):
    """A stage section's bad keys, each line naming its full path."""

    def __init__(self, name: str, lines: list[str]) -> None:
        super().__init__(f"invalid `{name}` configuration:\n  " + "\n  ".join(lines))
        self.lines = lines


def load_section(extra: Mapping[str, Any], name: str, model: type[M]) -> M:
    """A later stage's section of `PipelineConfig.extra`, validated; errors name the bad key."""
    data = extra.get(name) or {}
    if not isinstance(data, Mapping):
        raise _SectionError(name, [f"{name}: must be a mapping, got {type(data).__name__}"])
    try:
        return model(**dict(data))
    except ValidationError as exc:
        raise _SectionError(name, _error_lines(exc, name, model=model)) from None


def _joined_paths(value: Any) -> Any:
    # SRE_CONFIG is one string; code may pass a Path or a list of them.
    if value is None or isinstance(value, str):
        return value
    return os.pathsep.join(str(p) for p in config_paths(value)) or None


class Settings(BaseSettings):
    """Process settings from the environment: `SRE_*`, plus KAFKA_*, OPENAI_*, GITHUB_TOKEN."""

    model_config = SettingsConfigDict(env_prefix="SRE_", frozen=True, extra="ignore")

    state_dir: Path = Path("state")
    # pipeline config files merged over the defaults in order, `os.pathsep`-separated
    config: Annotated[str | None, BeforeValidator(_joined_paths)] = None
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
    # messages per source poll and partition: memory grows with this times spans per message, up
    # to kafka_poll_bytes. A poll's aggregation and window updates cost per poll: with SDK batches
    # (512 spans) 256 took 4% less CPU than 64, for 286 -> 332 MiB peak RSS (bench.throughput)
    kafka_batch_size: int = Field(256, ge=1)
    # bytes of source polls per process, about: its partitions share them (flows.sources.PollBudget),
    # so large export requests come fewer per poll and more partitions take no more memory
    kafka_poll_bytes: int = Field(POLL_BYTES, ge=1)
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
        """The pipeline config: defaults merged with the files named by SRE_CONFIG."""
        return load_pipeline_config(*self.config_paths)

    @property
    def config_paths(self) -> tuple[Path, ...]:
        """The pipeline config files, in merge order."""
        return config_paths(self.config)

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
