"""The Brain's tests run on the chaos shop's data, so they use the shop's site config (its
business attributes live in `chaos/site.yaml`, not in the product's defaults)."""

from __future__ import annotations

from pathlib import Path

import pytest

SITE = Path(__file__).resolve().parents[2] / "chaos" / "site.yaml"


@pytest.fixture(autouse=True)
def shop_site_config(monkeypatch: pytest.MonkeyPatch) -> Path:
    """SRE_CONFIG names the shop's site file for every test here."""
    monkeypatch.setenv("SRE_CONFIG", str(SITE))
    return SITE
