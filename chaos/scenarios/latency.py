"""latency: a deploy drops an index; one database operation of one service gets much slower."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.catalog import Defect
from chaos.scenarios import Injection, Scenario, deploy_defect

if TYPE_CHECKING:
    from chaos.shop import Shop

QUERY = {
    "inventory": "SELECT stock",
    "payment": "INSERT payments",
    "order-worker": "INSERT orders",
    "catalog": "SELECT products",
}


def inject(shop: Shop, service: str, intensity: float) -> Injection:
    """Deploy a version whose query for `service` is slow (a real commit)."""
    if service not in QUERY:
        raise ValueError(f"latency needs a service with a database query: one of {sorted(QUERY)}")
    query = QUERY[service]
    defect = Defect(service, "slow_db", {"query": query, "factor": 15.0 * intensity})
    return deploy_defect(
        shop, "latency", "latency", service, defect, intensity, operation=query, part=1
    )


SCENARIO = Scenario(
    name="latency",
    fault_class="latency",
    default_service="inventory",
    summary="one database operation slows down after a deploy; latency rises up the call chain",
    diagnosis="the service and its slow database operation (and the deploy that caused it)",
    injector=inject,
)
