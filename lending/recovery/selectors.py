"""Reads for close-out and recovery: the policy in force, plans with their lines and executions, the
collections queue (days past due and delinquency buckets) and the write-off register."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from lending.models import PolicyStatus

from .models import (
    LIVE_DEBT_STATES,
    Debt,
    DebtState,
    Execution,
    LiquidationLine,
    LiquidationPlan,
    PlanAmendment,
    PlanState,
    RecoveryPolicy,
)

# Delinquency buckets by days past due: (code, label, lowest, highest or None).
BUCKETS = (("current", "Not yet due", 0, 0), ("1-30", "1–30", 1, 30), ("31-60", "31–60", 31, 60), ("61-90", "61–90", 61, 90), ("90+", "90+", 91, None))


def recovery_policy_current() -> RecoveryPolicy | None:
    return RecoveryPolicy.objects.filter(status=PolicyStatus.APPROVED).first()


def recovery_policies() -> QuerySet[RecoveryPolicy]:
    return RecoveryPolicy.objects.select_related("proposed_by", "decided_by").order_by("-version")


def plans(*, state: str = "", live_only: bool = False) -> QuerySet[LiquidationPlan]:
    qs = LiquidationPlan.objects.select_related("facility", "client", "call", "proposed_by", "approved_by").order_by("-id")
    if state:
        qs = qs.filter(state=state)
    elif live_only:
        qs = qs.filter(state__in=[PlanState.PROPOSED, PlanState.APPROVED, PlanState.EXECUTING])
    return qs


def plan_detail(*, plan_id: int) -> LiquidationPlan:
    return (LiquidationPlan.objects.select_related("facility", "client", "call", "proposed_by", "approved_by", "supersedes", "policy")
            .prefetch_related(Prefetch("lines", queryset=LiquidationLine.objects.select_related("instrument").order_by("sequence")),
                              Prefetch("executions", queryset=Execution.objects.select_related("recorded_by", "line").order_by("-id")),
                              Prefetch("amendments", queryset=PlanAmendment.objects.select_related("proposed_by", "decided_by").order_by("-id")))
            .get(pk=plan_id))


def plan_for_call(*, call_id: int) -> LiquidationPlan | None:
    """The call's live plan, else its latest (for the margin-call page), with its lines."""
    qs = (LiquidationPlan.objects.filter(call_id=call_id).select_related("proposed_by", "approved_by")
          .prefetch_related(Prefetch("lines", queryset=LiquidationLine.objects.order_by("sequence"))))
    return qs.filter(state__in=[PlanState.PROPOSED, PlanState.APPROVED, PlanState.EXECUTING]).first() or qs.order_by("-id").first()


def plans_for_facility(*, facility_id: int) -> list[LiquidationPlan]:
    return list(LiquidationPlan.objects.filter(facility_id=facility_id).exclude(state=PlanState.WITHDRAWN)
                .prefetch_related(Prefetch("executions", queryset=Execution.objects.order_by("executed_at", "id"))).order_by("id"))


def days_past_due(due_on: date, today: date | None = None) -> int:
    today = today or timezone.localdate()
    return max(0, (today - due_on).days)


def bucket_of(dpd: int) -> str:
    for code, _label, lo, hi in BUCKETS:
        if dpd >= lo and (hi is None or dpd <= hi):
            return code
    return "90+"


def _bucket_q(code: str, today: date) -> Q:
    for c, _label, lo, hi in BUCKETS:
        if c == code:
            q = Q(due_on__lte=today - timedelta(days=lo))
            if hi is not None:
                q &= Q(due_on__gte=today - timedelta(days=hi))
            return q
    return Q()


def debts(*, state: str = "", bucket: str = "", live_only: bool = False, today: date | None = None) -> QuerySet[Debt]:
    today = today or timezone.localdate()
    qs = Debt.objects.select_related("facility", "client", "write_off_proposed_by", "written_off_by").order_by("due_on", "id")
    if state:
        qs = qs.filter(state=state)
    elif live_only:
        qs = qs.filter(state__in=LIVE_DEBT_STATES)
    if bucket:
        qs = qs.filter(_bucket_q(bucket, today))
    return qs


def with_delinquency(rows, today: date | None = None) -> list:
    """Each debt with ``dpd`` (days past due) and ``bucket`` set (no queries)."""
    today = today or timezone.localdate()
    for d in rows:
        d.dpd = days_past_due(d.due_on, today) if d.state in LIVE_DEBT_STATES else None
        d.bucket = bucket_of(d.dpd) if d.dpd is not None else ""
    return rows


def bucket_totals(*, today: date | None = None) -> list[dict]:
    """Count and amount owed per delinquency bucket of the live debts (one query)."""
    today = today or timezone.localdate()
    totals = {code: {"code": code, "label": label, "count": 0, "amount": Decimal("0")} for code, label, _lo, _hi in BUCKETS}
    for due_on, owed in Debt.objects.filter(state__in=LIVE_DEBT_STATES).values_list("due_on", "facility__drawn_balance"):
        row = totals[bucket_of(days_past_due(due_on, today))]
        row["count"] += 1
        row["amount"] += owed
    return list(totals.values())


def debt_detail(*, debt_id: int) -> Debt:
    return (Debt.objects.select_related("facility", "client", "plan", "write_off_proposed_by", "written_off_by")
            .prefetch_related("notices", "recoveries__recorded_by").get(pk=debt_id))


def debt_for_facility(*, facility_id: int) -> Debt | None:
    return Debt.objects.filter(facility_id=facility_id).prefetch_related("notices", "recoveries").first()


def register() -> QuerySet[Debt]:
    """The write-off register for compliance: every debt written off (and recovered), newest first."""
    return (Debt.objects.filter(state__in=[DebtState.WRITTEN_OFF, DebtState.RECOVERED])
            .select_related("facility", "client", "write_off_proposed_by", "written_off_by").order_by("-written_off_at", "-id"))
