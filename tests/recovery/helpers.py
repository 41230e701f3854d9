"""Recovery helpers shared with the lending and risk fixtures: the recovery policy in force."""

from __future__ import annotations

RECOVERY_NUMBERS = {"target_utilisation": "0.75", "liquidation_order": ["BTC", "ETH", "securities"], "securities_order": "haircut",
                    "va_sale_increment": "0.0001", "debt_due_business_days": 2, "collections_after_days": 7, "dunning_days": [1, 7, 14, 30, 60, 90]}


def recovery_policy_in_force(*, officer, credit_manager, numbers=None):
    from lending.recovery import selectors, services

    current = selectors.recovery_policy_current()
    if current is not None and numbers is None:
        return current
    proposed = services.recovery_policy_propose(actor=officer, numbers=numbers or RECOVERY_NUMBERS, reason="Recovery policy for tests")
    return services.recovery_policy_decide(actor=credit_manager, policy_id=proposed.pk, approve=True)
