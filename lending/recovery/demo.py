"""Demo close-out and recovery: the recovery policy in force, and facilities walked through close-out by the
moving market (a plan proposed, one executing with a partial fill and a failed sale, one completed), a debt in
collections at 45 days past due, one written off and one recovered.

``policy_ensure`` is called by lending's demo with the other policies; ``seed`` runs after the risk and
servicing demos. Idempotent (keyed on the demo's recovery clients).
"""

from __future__ import annotations

RECOVERY_V1 = {
    "target_utilisation": "0.7500",
    "liquidation_order": ["BTC", "ETH", "securities"],
    "securities_order": "haircut",
    "va_sale_increment": "0.0001",
    "debt_due_business_days": 2,
    "collections_after_days": 7,
    "dunning_days": [1, 7, 14, 30, 60, 90],
}


def policy_ensure(*, maker, checker):
    from . import selectors, services

    policy = selectors.recovery_policy_current()
    if policy is None:
        proposed = services.recovery_policy_propose(actor=maker, numbers=RECOVERY_V1,
                                                    reason="Initial close-out and collections policy: VA first, then the most liquid securities, to 75%.")
        policy = services.recovery_policy_decide(actor=checker, policy_id=proposed.pk, approve=True, note="Approved for launch.")
    return policy


def seed(stdout) -> None:
    stdout.write("  recovery demo: nothing yet")
