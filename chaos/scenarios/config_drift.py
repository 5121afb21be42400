"""config_drift: a config commit shrinks a connection pool; requests wait for and fail on connections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.scenarios import Injection, Scenario, commit_config
from chaos.topology import PROFILES

if TYPE_CHECKING:
    from chaos.shop import Shop


def inject(shop: Shop, service: str, intensity: float) -> Injection:
    """Commit a pool size below what `service` holds (a real commit)."""
    if not PROFILES[service].db_hold_ms:
        raise ValueError(
            f"config_drift needs a service with a database pool: one of {sorted(s for s, p in PROFILES.items() if p.db_hold_ms)}"
        )
    size = max(1, round(2 / intensity))
    message = f"{service}: reduce connection pool to {size} (save DB connections)"
    change = (("connection_pool", "max"), size, message)
    return commit_config(shop, "config_drift", "config_change", service, change, intensity)


SCENARIO = Scenario(
    name="config_drift",
    fault_class="config_change",
    default_service="inventory",
    summary="a config commit shrinks a connection pool: pool exhaustion, waits and timeouts",
    diagnosis="the commit and the service whose pool it shrank",
    injector=inject,
)
