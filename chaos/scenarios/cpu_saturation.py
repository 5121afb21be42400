"""cpu_saturation: a traffic surge beyond a service's capacity; throttling and queueing latency."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from chaos.catalog import Defect
from chaos.scenarios import Injection, Scenario, runtime_fault, scale_out
from chaos.topology import OPERATIONS

if TYPE_CHECKING:
    from chaos.shop import Shop

ROUTE = "GET /api/products/{id}"  # scrapers hit the product API, which the catalog serves
TARGET_OP = "GET /products/{id}"
OVERLOAD = 0.2  # at intensity 1 the surge asks for 120% of the pods' CPU limit


def inject(shop: Shop, service: str, intensity: float) -> Injection:
    """Add a surge of product-API requests sized to overload `service` (a runtime fault)."""
    if (service, TARGET_OP) not in OPERATIONS:
        raise ValueError(f"cpu_saturation targets the service behind {ROUTE}: catalog")
    d = shop.desired[service]
    pods = shop.cluster.pods[service]
    now_rho = sum(p.rho for p in pods) / max(1, len(pods))
    cost = OPERATIONS[(service, TARGET_OP)].cpu_ms
    # sized from the utilization right now, so that the fault saturates at any base traffic
    extra = (
        max(0.0, 1.0 + OVERLOAD * intensity - now_rho) * d.replicas * d.cpu_limit_millicores / cost
    )
    defect = Defect("frontend", "surge", {"route": ROUTE, "extra_rps": extra})
    # replicas that bring utilization back to about 60% (the daily peak adds a third on top)
    demand = (1.0 + OVERLOAD * intensity) * d.replicas
    scale = scale_out(service, d.replicas, math.ceil(demand / 0.6))
    return runtime_fault(
        shop,
        "cpu_saturation",
        "saturation",
        service,
        defect,
        intensity,
        scale,
        healed_by_restart=False,
        operation=TARGET_OP,
    )


SCENARIO = Scenario(
    name="cpu_saturation",
    fault_class="saturation",
    default_service="catalog",
    summary="a traffic surge beyond capacity: CPU throttling and queueing latency",
    diagnosis="the saturated service (not the frontend that forwards the surge)",
    injector=inject,
)
