"""Sizes of the chaos tests' recordings: short and small, the fault at minute 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos.summary import Summary

DURATION_S = 360.0
ONSET_S = 120.0
RATE = 10.0
BASELINE = (0, 2)  # minutes before the onset
FAULT = (3, 6)  # minutes well after the onset

Recorder = Callable[..., tuple[Path, dict[str, Any], Summary]]
