"""cache_failure: the cache stops hitting; its callers fall back to the database, which slows down."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.catalog import Defect
from chaos.scenarios import Injection, Scenario, runtime_fault
from chaos.topology import CACHE_HIT_RATIO

if TYPE_CHECKING:
    from chaos.shop import Shop


def inject(shop: Shop, service: str, intensity: float) -> Injection:
    """The cache evicts everything it stores (a runtime fault a restart of the cache clears)."""
    hit = max(0.0, CACHE_HIT_RATIO * (1.0 - min(1.0, intensity)))
    defect = Defect(service, "cache_miss", {"hit_ratio": hit})
    restart = {"action": "restart", "params": {"service": service}}
    return runtime_fault(
        shop, "cache_failure", "cache_failure", service, defect, intensity, restart
    )


SCENARIO = Scenario(
    name="cache_failure",
    fault_class="cache_failure",
    default_service="redis",
    summary="the cache stops hitting: database load and latency rise for its callers",
    diagnosis="the cache (and its callers catalog and cart)",
    injector=inject,
)
