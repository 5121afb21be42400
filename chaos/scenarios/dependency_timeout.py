"""dependency_timeout: a downstream hangs; its callers time out (only the caller's spans are errors)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.catalog import Defect
from chaos.scenarios import Injection, Scenario, runtime_fault

if TYPE_CHECKING:
    from chaos.shop import Shop

HANG_MS = 4000.0


def inject(shop: Shop, service: str, intensity: float) -> Injection:
    """`service` gets stuck on an untraced call (a runtime fault a restart clears)."""
    defect = Defect(service, "hang", {"median_ms": HANG_MS * intensity})
    callers = sorted(
        {c for c, pods in shop.cluster.pods.items() if c != service and _calls(c, service)}
    )
    return runtime_fault(
        shop,
        "dependency_timeout",
        "dependency_timeout",
        service,
        defect,
        intensity,
        {"action": "restart", "params": {"service": service}},
        alternatives=[
            {
                "action": "raise_timeout",
                "params": {"service": c, "downstream_ms": 10_000, "circuit_breaker": True},
            }
            for c in callers
        ],
    )


def _calls(caller: str, callee: str) -> bool:
    from chaos.topology import OPERATIONS

    return any(
        call.service == callee
        for (svc, _), op in OPERATIONS.items()
        if svc == caller
        for call in op.calls
    )


SCENARIO = Scenario(
    name="dependency_timeout",
    fault_class="dependency_timeout",
    default_service="shipping",
    summary="a downstream hangs; callers time out while its own spans stay OK but long",
    diagnosis="the hanging downstream, not the caller whose spans carry the errors",
    injector=inject,
)
