"""oom: a new version leaks memory; pods climb to their limit and get OOMKilled, over and over."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.catalog import Defect
from chaos.scenarios import Injection, Scenario, deploy_defect

if TYPE_CHECKING:
    from chaos.shop import Shop

LEAK_MIB_PER_S = 0.5  # at intensity 1 a 512 MiB pod is killed about ten minutes after the deploy


def inject(shop: Shop, service: str, intensity: float) -> Injection:
    """Deploy a leaking version of `service` (a real commit)."""
    # Raising the limit only delays the next OOM: an alternative, never the fix.
    limit = shop.desired[service].memory_limit_mib
    defect = Defect(service, "leak", {"mib_per_s": LEAK_MIB_PER_S * intensity})
    raise_limit = {
        "action": "raise_memory_limit",
        "params": {"service": service, "memory_limit_mib": min(8192, limit * 2)},
        "note": "only delays the next OOM",
    }
    return deploy_defect(
        shop, "oom", "memory_leak", service, defect, intensity, alternatives=[raise_limit]
    )


SCENARIO = Scenario(
    name="oom",
    fault_class="memory_leak",
    default_service="checkout",
    summary="a deploy with a memory leak: memory climbs to the limit, OOMKilled restarts, errors upstream",
    diagnosis="the leaking service and the version that brought the leak",
    injector=inject,
)
