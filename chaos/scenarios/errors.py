"""errors: after a deploy one endpoint throws for a share of its requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.catalog import Defect
from chaos.scenarios import Injection, Scenario, deploy_defect
from chaos.topology import OPERATIONS

if TYPE_CHECKING:
    from chaos.shop import Shop

ROUTE = {
    "cart": "POST /cart/items",
    "catalog": "GET /products/{id}",
    "checkout": "POST /checkout",
    "payment": "POST /payments",
}
EXCEPTION = ("KeyError", "'variant_id'")


def inject(shop: Shop, service: str, intensity: float) -> Injection:
    """Deploy a version of `service` whose route throws (a real commit)."""
    op = ROUTE.get(service) or next(name for (svc, name) in OPERATIONS if svc == service)
    defect = Defect(
        service,
        "errors",
        {
            "op": op,
            "rate": min(1.0, 0.15 * intensity),
            "exception": EXCEPTION[0],
            "message": EXCEPTION[1],
        },
    )
    return deploy_defect(
        shop, "errors", "error_rate", service, defect, intensity, operation=op, part=1
    )


SCENARIO = Scenario(
    name="errors",
    fault_class="error_rate",
    default_service="cart",
    summary="an endpoint throws for a fraction of requests after a deploy",
    diagnosis="the service, the route and the version",
    injector=inject,
)
