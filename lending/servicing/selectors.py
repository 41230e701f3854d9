"""Reads for servicing (never imports services)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Max, Min, Sum
from django.utils import timezone

from lending.models import PolicyStatus

from .interest import daily_interest, month_end
from .models import BaseRateFixing, FacilityTerms, FixingStatus, InterestAccrual, ServicingPolicy, Statement


def servicing_policy_current() -> ServicingPolicy | None:
    return ServicingPolicy.objects.filter(status=PolicyStatus.APPROVED).first()


def servicing_policies():
    return ServicingPolicy.objects.select_related("proposed_by", "decided_by").order_by("-version")


def fixings(*, limit: int = 50):
    return BaseRateFixing.objects.select_related("entered_by", "decided_by").order_by("-effective_date", "-id")[:limit]


def fixings_in_effect(*, day: date | None = None) -> dict[str, BaseRateFixing]:
    day = day or timezone.localdate()
    found: dict[str, BaseRateFixing] = {}
    for fixing in BaseRateFixing.objects.filter(status=FixingStatus.CONFIRMED, effective_date__lte=day).order_by("base_rate", "-effective_date", "-id"):
        found.setdefault(fixing.base_rate, fixing)
    return found


@dataclass(frozen=True)
class InterestSummary:
    terms: FacilityTerms | None
    base_rate: Decimal | None
    annual_rate: Decimal | None
    accrued_to_date: Decimal
    accrued_through: date | None
    next_posting: date
    review_date: date | None
    today_so_far: Decimal | None = None  # today's interest at the current balance (charged when the day ends)


def facility_interest(*, facility) -> InterestSummary:
    """What the facility page shows: the rate now, interest accrued and not yet posted, the next posting date (four queries)."""
    terms = FacilityTerms.objects.filter(facility_id=facility.pk).select_related("policy").first()
    unposted = InterestAccrual.objects.filter(facility_id=facility.pk, posted_on__isnull=True).aggregate(
        amount=Sum("amount"), overdue=Sum("overdue_amount"), first=Min("day"))
    last_day = InterestAccrual.objects.filter(facility_id=facility.pk).aggregate(d=Max("day"))["d"]
    first_unposted = unposted["first"]
    accrued = ((unposted["amount"] or Decimal(0)) + (unposted["overdue"] or Decimal(0))).quantize(Decimal("0.01"))
    today = timezone.localdate()
    base = annual = None
    if terms:
        fixing = fixings_in_effect(day=today).get(terms.base_rate)
        if fixing:
            base = fixing.rate
            annual = fixing.rate + terms.margin
    return InterestSummary(
        terms=terms, base_rate=base, annual_rate=annual, accrued_to_date=accrued, accrued_through=last_day,
        next_posting=month_end(first_unposted or today), review_date=terms.review_date if terms else None,
        today_so_far=daily_interest(balance=facility.drawn_balance, annual_rate=annual) if annual is not None else None,
    )


def statements_for_client(*, user):
    return (Statement.objects.filter(client=user).select_related("facility").defer("html", "pdf").order_by("-period_end", "-id"))


def statements_for_staff(*, facility_id: int | None = None):
    qs = Statement.objects.select_related("facility", "client").defer("html", "pdf").order_by("-issued_at", "-id")
    if facility_id:
        qs = qs.filter(facility_id=facility_id)
    return qs


def statement_for_client(*, user, statement_id: int) -> Statement:
    return Statement.objects.select_related("facility").get(pk=statement_id, client=user)
