"""Servicing test helpers: the servicing policy in force and confirmed base-rate fixings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

SERVICING_NUMBERS = {
    "base_rate": "hkd_prime",
    "tier_margins": {"standard": "0.030000", "preferred": "0.015000"},
    "default_tier": "standard",
    "overdue_margin": "0.040000",
    "arrangement_fee": "0",
    "liquidation_fee_rate": "0.0100",
    "client_drawdown_auto_max": "500000",
    "staff_four_eyes_above": "5000000",
    "release_initial_level": "0.7000",
    "whitelist_cooling_off_hours": 24,
    "withdrawal_officer_above": "100000",
    "withdrawal_second_above": "1000000",
    "review_months": 12,
}


def servicing_policy_in_force(*, officer, credit_manager, **overrides):
    from lending.servicing import services

    numbers = {**SERVICING_NUMBERS, **overrides}
    proposed = services.servicing_policy_propose(actor=officer, numbers=numbers, reason="Servicing terms")
    return services.servicing_policy_decide(actor=credit_manager, policy_id=proposed.pk, approve=True)


def fixing(*, rate: str, effective: date, maker, checker, base_rate: str = "hkd_prime"):
    from lending.servicing import services

    entered = services.fixing_enter(actor=maker, base_rate=base_rate, rate=Decimal(rate), effective_date=effective, source="HSBC HKD Prime announcement")
    return services.fixing_decide(actor=checker, fixing_id=entered.pk, confirm=True)
