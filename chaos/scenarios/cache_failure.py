"""cache_failure: the cache stops hitting; its callers fall back to the database, which slows down."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.catalog import Defect, RuntimeFault
from chaos.scenarios import Injection, Scenario, new_tag
from chaos.topology import CACHE_HIT_RATIO

if TYPE_CHECKING:
    from chaos.shop import Shop


def inject(shop: Shop, service: str, intensity: float) -> Injection:
    """The cache evicts everything it stores (a runtime fault a restart of the cache clears)."""
    tag = new_tag(shop, "cache_failure")
    hit = max(0.0, CACHE_HIT_RATIO * (1.0 - min(1.0, intensity)))
    shop.catalog.add_runtime(
        RuntimeFault(
            Defect(service, "cache_miss", {"hit_ratio": hit}),
            shop.desired[service].restarted_at,
            tag=tag,
        )
    )
    return Injection(
        scenario="cache_failure",
        tag=tag,
        fault_class="cache_failure",
        service=service,
        onset_ns=shop.now_ns,
        intensity=intensity,
        remediation={"action": "restart", "params": {"service": service}},
        alternatives=[],
    )


SCENARIO = Scenario(
    name="cache_failure",
    fault_class="cache_failure",
    default_service="redis",
    summary="the cache stops hitting: database load and latency rise for its callers",
    diagnosis="the cache (and its callers catalog and cart)",
    injector=inject,
)
