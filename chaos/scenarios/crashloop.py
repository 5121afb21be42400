"""crashloop: a config commit sets a timeout too tight for the startup check; pods crash-loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.catalog import Defect
from chaos.scenarios import Injection, Scenario, commit_config, new_tag

if TYPE_CHECKING:
    from chaos.shop import Shop

BAD_TIMEOUT_MS = 50
THRESHOLD_MS = 100  # below this the dependency check at start-up never passes


def inject(shop: Shop, service: str, intensity: float) -> Injection:
    """Commit a timeout below what the start-up check needs (a real commit)."""
    tag = new_tag(shop, "crashloop")
    shop.catalog.add_config_rule(
        service,
        lambda d: d.downstream_timeout_ms < THRESHOLD_MS,
        Defect(service, "crashloop", {"reason": "CrashLoopBackOff"}),
        tag,
    )
    message = f"{service}: tighten downstream timeout to {BAD_TIMEOUT_MS} ms"
    change = (("timeouts", "downstream_ms"), BAD_TIMEOUT_MS, message)
    return commit_config(shop, "crashloop", "crashloop", service, change, intensity, tag=tag)


SCENARIO = Scenario(
    name="crashloop",
    fault_class="crashloop",
    default_service="recommendation",
    summary="a bad config commit makes pods fail their start-up check and restart with back-off",
    diagnosis="the service and the config commit",
    injector=inject,
)
