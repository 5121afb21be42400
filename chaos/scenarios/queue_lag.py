"""queue_lag: the order consumer slows down; lag grows and orders are placed late."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from chaos.catalog import Defect
from chaos.scenarios import Injection, Scenario, runtime_fault, scale_out
from chaos.topology import CART_TO_CHECKOUT, QUEUE, ROUTE_MIX

if TYPE_CHECKING:
    from chaos.shop import Shop

CAPACITY_SHARE = 0.5  # at intensity 1 the consumers keep up with half of the orders arriving now


def order_rate(shop: Shop) -> float:
    """Orders per second the shop produces at this time of day (no noise)."""
    return shop.traffic.expected(shop.now_ns) * dict(ROUTE_MIX)["POST /api/cart"] * CART_TO_CHECKOUT


def inject(shop: Shop, service: str, intensity: float) -> Injection:
    """Each message takes far longer to process (slow downstream; a restart does not help)."""
    arrivals = order_rate(shop)
    replicas = shop.desired[service].replicas
    healthy_capacity = replicas * 1000.0 / QUEUE.consumer_ms_per_message
    factor = max(1.0, healthy_capacity / (CAPACITY_SHARE * arrivals) * intensity)
    defect = Defect(service, "slow_consumer", {"factor": factor})
    per_pod = 1000.0 / (QUEUE.consumer_ms_per_message * factor)
    # enough consumers for the daily peak with headroom, so the backlog drains
    scale = scale_out(service, replicas, math.ceil(2.0 * arrivals / per_pod))
    return runtime_fault(
        shop,
        "queue_lag",
        "queue_lag",
        service,
        defect,
        intensity,
        scale,
        healed_by_restart=False,
        operation=QUEUE.consumer_op,
    )


SCENARIO = Scenario(
    name="queue_lag",
    fault_class="queue_lag",
    default_service="order-worker",
    summary="the order consumer slows: lag grows, orders arrive late",
    diagnosis="the consumer service",
    injector=inject,
)
