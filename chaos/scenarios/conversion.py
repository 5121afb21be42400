"""conversion: a fraud rule behind a feature flag declines one loyalty segment's payments (HTTP 200)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.catalog import Defect
from chaos.scenarios import Injection, Scenario, commit_config

if TYPE_CHECKING:
    from chaos.shop import Shop

FLAG = "new_fraud_rules"
SEGMENT = "gold"


def inject(shop: Shop, service: str, intensity: float) -> Injection:
    """Turn the flag on (a real commit); payments of the segment are then mostly declined."""
    rate = min(1.0, 0.9 * intensity)
    shop.catalog.add_flag(
        service,
        FLAG,
        Defect(
            service, "decline", {"segment": SEGMENT, "rate": rate, "reason": "risk_score_threshold"}
        ),
    )
    change = (("feature_flags", FLAG), True, f"{service}: enable {FLAG} (stricter risk scoring)")
    return commit_config(
        shop,
        "conversion",
        "business_logic",
        service,
        change,
        intensity,
        remediation={
            "action": "set_feature_flag",
            "params": {"service": service, "flag": FLAG, "value": False},
        },
        operation="POST /payments",
        flag=FLAG,
        segment=f"app.loyalty_level={SEGMENT}",
    )


SCENARIO = Scenario(
    name="conversion",
    fault_class="business_logic",
    default_service="payment",
    summary="a flag-gated rule declines one segment's payments with HTTP 200: conversion drops, no 5xx",
    diagnosis="the flag (or its commit) and the segment, with no server errors at all",
    injector=inject,
)
