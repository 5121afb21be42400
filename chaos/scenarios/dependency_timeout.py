"""dependency_timeout: a downstream hangs; its callers time out (only the caller's spans are errors)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.catalog import Defect, RuntimeFault
from chaos.scenarios import Injection, Scenario, new_tag

if TYPE_CHECKING:
    from chaos.shop import Shop

HANG_MS = 4000.0


def inject(shop: Shop, service: str, intensity: float) -> Injection:
    """`service` gets stuck on an untraced call (a runtime fault a restart clears)."""
    tag = new_tag(shop, "dependency_timeout")
    shop.catalog.add_runtime(
        RuntimeFault(
            Defect(service, "hang", {"median_ms": HANG_MS * intensity}),
            shop.desired[service].restarted_at,
            tag=tag,
        )
    )
    callers = sorted(
        {c for c, pods in shop.cluster.pods.items() if c != service and _calls(c, service)}
    )
    return Injection(
        scenario="dependency_timeout",
        tag=tag,
        fault_class="dependency_timeout",
        service=service,
        onset_ns=shop.now_ns,
        intensity=intensity,
        remediation={"action": "restart", "params": {"service": service}},
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
