"""oom: a new version leaks memory; pods climb to their limit and get OOMKilled, over and over."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.catalog import Defect
from chaos.scenarios import Injection, Scenario, bump_version, change_manifest, new_tag

if TYPE_CHECKING:
    from chaos.shop import Shop

LEAK_MIB_PER_S = 0.5  # at intensity 1 a 512 MiB pod is killed about ten minutes after the deploy


def inject(shop: Shop, service: str, intensity: float) -> Injection:
    """Deploy a leaking version of `service` (a real commit)."""
    previous = shop.desired[service].version
    version = bump_version(previous)
    shop.catalog.add_version(
        service, version, Defect(service, "leak", {"mib_per_s": LEAK_MIB_PER_S * intensity})
    )
    sha, restore = change_manifest(
        shop, service, ("version",), version, f"deploy {service} {version}"
    )
    limit = shop.desired[service].memory_limit_mib
    return Injection(
        scenario="oom",
        tag=new_tag(shop, "oom"),
        fault_class="memory_leak",
        service=service,
        onset_ns=shop.now_ns,
        intensity=intensity,
        version=version,
        previous_version=previous,
        commit=sha,
        remediation={
            "action": "rollback_version",
            "params": {"service": service, "version": previous},
        },
        alternatives=[
            {
                "action": "raise_memory_limit",
                "params": {"service": service, "memory_limit_mib": min(8192, limit * 2)},
                "note": "only delays the next OOM",
            },
            {"action": "revert_commit", "params": {"commit": sha}},
        ],
        restores=[restore],
    )


SCENARIO = Scenario(
    name="oom",
    fault_class="memory_leak",
    default_service="checkout",
    summary="a deploy with a memory leak: memory climbs to the limit, OOMKilled restarts, errors upstream",
    diagnosis="the leaking service and the version that brought the leak",
    injector=inject,
)
