"""Fixtures for the dashboard tests: one seeded state folder per session, and an empty one.

The seeded folder comes from a real replay of a chaos recording (see `seed.py`); building it takes
about ten seconds, so every test of the session shares it and none of them writes to it (the Chaos
page's control-file test uses its own folder).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos import SITE_CONFIG
from tests.dashboard.seed import Seeded, build_state


# Package scope: a session-wide SRE_CONFIG would leak the shop's site into every later test.
@pytest.fixture(autouse=True, scope="package")
def _shop_site_config() -> Iterator[None]:
    """The seeded data is the shop's: the dashboard reads its site file, as a shop deployment
    would through SRE_CONFIG (its journey and objectives are not in the product's defaults)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SRE_CONFIG", str(SITE_CONFIG))
        yield


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """The seeded state folder: two replayed recordings, one incident through the whole loop."""
    root = tmp_path_factory.mktemp("dashboard-seed")
    return build_state(root / "state", root / "work")


@pytest.fixture
def empty_state(tmp_path: Path) -> Path:
    """A state folder that does not exist yet (the dashboard must not create it)."""
    return tmp_path / "state"
