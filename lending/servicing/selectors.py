"""Reads for servicing (never imports services)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Max, Min, Sum
from django.utils import timezone

from lending.models import PolicyStatus

from .interest import accrual_days, daily_interest, month_end
from .models import (
    ActivityStatementElection,
    BaseRateFixing,
    FacilityTerms,
    FixingStatus,
    InterestAccrual,
    ServicingPolicy,
    Statement,
)


def servicing_policy_current() -> ServicingPolicy | None:
    return ServicingPolicy.objects.filter(status=PolicyStatus.APPROVED).first()


PENDING_STATES = ("requested", "awaiting_second")  # asked for and not yet decided (RequestState)


def pending_top_up_quantity(*, client_id: int, code: str) -> Decimal:
    """What the client's undecided top-up requests of ``code`` ask to pledge, across all their facilities:
    it is spoken for, so not free for another request."""
    from .models import ServicingRequest

    total = ServicingRequest.objects.filter(client_id=client_id, kind="top_up", asset=code, state__in=PENDING_STATES).aggregate(q=Sum("quantity"))["q"]
    return total or Decimal(0)


def pending_repayment_amount(*, facility_id: int) -> Decimal:
    """What the facility's undecided repayment notices and instructions would repay."""
    from .models import ServicingRequest

    total = ServicingRequest.objects.filter(facility_id=facility_id, kind="repayment", state__in=PENDING_STATES).aggregate(a=Sum("amount"))["a"]
    return total or Decimal(0)


def with_instruments(requests: list) -> list:
    """Give each securities request its instrument (``holding_instrument``), so a page names the holding in the
    reader's language (``Instrument.name_for``) rather than the English name kept with the request; one query."""
    from lending.collateral.selectors import instruments_by_code

    codes = {r.asset for r in requests if r.asset and r.collateral_kind == "securities"}
    found = instruments_by_code(codes=codes) if codes else {}
    for r in requests:
        r.holding_instrument = found.get(r.asset)
    return requests


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
    # The accrual key is (day, facility): probed with the days that can hold the rows (interest.accrual_days).
    unposted = InterestAccrual.objects.filter(facility_id=facility.pk, posted_on__isnull=True, day__in=accrual_days(unposted=True)).aggregate(
        amount=Sum("amount"), overdue=Sum("overdue_amount"), first=Min("day"), last=Max("day"))
    last_day = unposted["last"] or InterestAccrual.objects.filter(
        facility_id=facility.pk, day__in=accrual_days(since=timezone.localdate(facility.opened_at))).aggregate(d=Max("day"))["d"]
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


def activity_statement_elections(*, user):
    """The client's elections not to receive activity statements, newest first (the open one, if any, first)."""
    return ActivityStatementElection.objects.filter(client=user).order_by("-elected_at", "-id")


@dataclass(frozen=True)
class LimitEvent:
    """One step in a facility's credit-limit history: who, when, why, from what to what."""

    at: object
    old_limit: Decimal | None
    new_limit: Decimal
    state: str  # "approved" (the limit the facility opened with), "applied", "proposed", "rejected"
    reason: str
    by: object  # the proposer
    decided_by: object
    decided_at: object
    facility_id: int
    facility_reference: str


def _opening_event(facility) -> LimitEvent:
    app = facility.application
    return LimitEvent(at=facility.accepted_at or facility.opened_at, old_limit=None, new_limit=app.approved_limit or facility.limit,
                      state="approved", reason=app.decision_note or "", by=app.decided_by,
                      decided_by=app.second_approver or app.decided_by, decided_at=app.second_decided_at or app.decided_at,
                      facility_id=facility.pk, facility_reference=facility.reference)


def _change_event(change, facility) -> LimitEvent:
    return LimitEvent(at=change.proposed_at, old_limit=change.old_limit, new_limit=change.new_limit, state=change.state,
                      reason=change.reason, by=change.proposed_by, decided_by=change.decided_by, decided_at=change.decided_at,
                      facility_id=facility.pk, facility_reference=facility.reference)


def _decision_loaded(facility) -> bool:
    """The facility came with its application and who decided it (no query needed for the opening entry)."""
    from lending.models import Facility, FacilityApplication

    if not Facility._meta.get_field("application").is_cached(facility):
        return False
    app = facility.application
    return all(FacilityApplication._meta.get_field(name).is_cached(app) for name in ("decided_by", "second_approver"))


def limit_history(*, facility) -> list[LimitEvent]:
    """Every limit the facility has had and every change asked for: the limit approved at opening, then each
    change at a review (applied, awaiting a credit manager, or rejected), oldest first. Two queries (one when the
    facility came with its application and deciders, as the facility pages load it)."""
    from lending.models import Facility

    from .models import LimitChange

    if not _decision_loaded(facility):  # the facility pages load it with the facility
        facility = Facility.objects.select_related("application__decided_by", "application__second_approver").get(pk=facility.pk)
    changes = LimitChange.objects.filter(facility_id=facility.pk).select_related("proposed_by", "decided_by").order_by("proposed_at", "id")
    return [_opening_event(facility), *(_change_event(c, facility) for c in changes)]


def limit_changes_between(*, start, end) -> list[LimitEvent]:
    """Limit changes proposed in [start, end) across the book, oldest first (for the SMF pack's credit-limit area)."""
    from .models import LimitChange

    changes = (LimitChange.objects.filter(proposed_at__gte=start, proposed_at__lt=end)
               .select_related("facility", "proposed_by", "decided_by").order_by("proposed_at", "id"))
    return [_change_event(c, c.facility) for c in changes]


def limit_at(end):
    """An expression for a facility query: the facility's limit as it stood at ``end`` (the limit before
    the first change applied after it, else today's limit)."""
    from django.db.models import F, OuterRef, Subquery
    from django.db.models.functions import Coalesce

    from .models import LimitChange, LimitChangeState

    before = (LimitChange.objects.filter(facility_id=OuterRef("pk"), state=LimitChangeState.APPLIED, decided_at__gt=end)
              .order_by("decided_at", "id").values("old_limit")[:1])
    return Coalesce(Subquery(before), F("limit"))

def call_responses(*, facility_ids: list[int], since):
    """What a client did about a margin call on these facilities: repayment notices and top-up requests
    made since ``since``, newest first, each with its state (requested → executed | refused | cancelled)."""
    from .models import RequestKind, ServicingRequest

    if not facility_ids:
        return []
    return list(ServicingRequest.objects.filter(facility_id__in=facility_ids, kind__in=[RequestKind.REPAYMENT, RequestKind.TOP_UP],
                                                requested_at__gte=since).order_by("-requested_at", "-id")[:50])


def client_interest(*, user, facility_ids: list[int]) -> dict:
    """Across a client's facilities: interest accrued and not yet posted, the next posting day and the next
    facility review (two queries, whatever the number of facilities)."""
    if not facility_ids:
        return {"accrued": Decimal("0.00"), "next_posting": None, "review_date": None}
    unposted = InterestAccrual.objects.filter(facility_id__in=facility_ids, facility__client=user, posted_on__isnull=True,
                                              day__in=accrual_days(unposted=True)).aggregate(
        amount=Sum("amount"), overdue=Sum("overdue_amount"), first=Min("day"))
    review = FacilityTerms.objects.filter(facility_id__in=facility_ids, review_date__isnull=False).aggregate(d=Min("review_date"))["d"]
    accrued = ((unposted["amount"] or Decimal(0)) + (unposted["overdue"] or Decimal(0))).quantize(Decimal("0.01"))
    return {"accrued": accrued, "next_posting": month_end(unposted["first"] or timezone.localdate()), "review_date": review}
