"""The shop's site file wherever the harness runs the shop (demo, drill, suite)."""

from __future__ import annotations

from pathlib import Path

from chaos import SITE_CONFIG
from sre_space.settings import PipelineConfig, env_config_paths, load_pipeline_config


def shop_config_files(*more: Path) -> tuple[Path, ...]:
    """chaos/site.yaml, then `more`, then the files of SRE_CONFIG (the user's, merged last)."""
    return (SITE_CONFIG, *more, *env_config_paths())


def shop_config() -> PipelineConfig:
    """The pipeline config of a run of the shop."""
    return load_pipeline_config(*shop_config_files())
