"""cpu_saturation: a traffic surge beyond a service's capacity; throttling and queueing latency."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from chaos.catalog import Defect, RuntimeFault
from chaos.scenarios import Injection, Scenario, new_tag
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
    tag = new_tag(shop, "cpu_saturation")
    d = shop.desired[service]
    pods = shop.cluster.pods[service]
    now_rho = sum(p.rho for p in pods) / max(1, len(pods))
    cost = OPERATIONS[(service, TARGET_OP)].cpu_ms
    # sized from the utilization right now, so that the fault saturates at any base traffic
    extra = (
        max(0.0, 1.0 + OVERLOAD * intensity - now_rho) * d.replicas * d.cpu_limit_millicores / cost
    )
    shop.catalog.add_runtime(
        RuntimeFault(
            Defect("frontend", "surge", {"route": ROUTE, "extra_rps": extra}),
            "",
            healed_by_restart=False,
            tag=tag,
        )
    )
    # replicas that bring utilization back to about 60% (the daily peak adds a third on top)
    demand = (1.0 + OVERLOAD * intensity) * d.replicas
    needed = math.ceil(demand / 0.6)
    return Injection(
        scenario="cpu_saturation",
        tag=tag,
        fault_class="saturation",
        service=service,
        onset_ns=shop.now_ns,
        intensity=intensity,
        operation=TARGET_OP,
        remediation={
            "action": "scale_replicas",
            "params": {"service": service, "replicas": min(20, max(d.replicas + 1, needed))},
        },
        alternatives=[],
    )


SCENARIO = Scenario(
    name="cpu_saturation",
    fault_class="saturation",
    default_service="catalog",
    summary="a traffic surge beyond capacity: CPU throttling and queueing latency",
    diagnosis="the saturated service (not the frontend that forwards the surge)",
    injector=inject,
)
