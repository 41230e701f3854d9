"""The reporting side's firm-policy numbers, in one place and shown on the pages that use them.

Complaint deadlines are firm policy (the SFC sets none in days); they count Hong Kong business days
(weekends and HK general holidays skipped) with the risk engine's calendar, the same one that sets a
margin call's cure deadline.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from lending.risk.revaluation import cure_deadline

COMPLAINT_ACKNOWLEDGE_BUSINESS_DAYS = 2
COMPLAINT_ANSWER_BUSINESS_DAYS = 20
# SMF Guidelines benchmark: total margin loans at most 5 × the firm's liquid capital.
LOANS_TO_CAPITAL_BENCHMARK = Decimal("5")
TOP_CLIENTS = 10
TOP_GROUPS = 10


def hk_business_days_after(start: datetime, days: int) -> datetime:
    """The end (23:59:59 HKT) of the ``days``-th Hong Kong business day after ``start``."""
    return cure_deadline(opened_at=start, business_days=days)


def complaint_deadlines(received_at: datetime) -> tuple[datetime, datetime]:
    return (
        hk_business_days_after(received_at, COMPLAINT_ACKNOWLEDGE_BUSINESS_DAYS),
        hk_business_days_after(received_at, COMPLAINT_ANSWER_BUSINESS_DAYS),
    )
