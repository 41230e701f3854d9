"""A whole crash, from the first fall to the write-off and a recovery: one story, checked at every step."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from lending.models import Facility, FacilityTransaction
from lending.recovery import selectors, services
from lending.recovery.models import Debt, DebtState, ExecutionStatus, LineStatus, LiquidationPlan, PlanState
from lending.risk import services as risk
from lending.risk.models import BandChange, CallState, MarginCall
from portal.errors import ForbiddenError
from portal.models import Notification

from .conftest import custody_consistent, ledger_ok, pledged_facility, set_prices

pytestmark = pytest.mark.django_db

HOLDINGS = {"BTC": "3", "00005": "20000"}  # 3 BTC at HK$760,000 and 20,000 HSBC at HK$100 (board lot 400)


def _facility(f):
    return Facility.objects.get(pk=f.pk)


def test_a_crash_from_first_fall_to_write_off_and_recovery(book, alice, officer, credit_manager, credit_manager2, django_capture_on_commit_callbacks):
    facility = pledged_facility(alice, holdings=HOLDINGS, drawn="1900000", officer=officer)
    # LV = 20,000 × 100 × 0.70 + 3 × 760,000 × 0.40 = 1,400,000 + 912,000 (VA cap 933,333 not binding)
    assert facility.lending_value == Decimal("2312000.00") and facility.band == "healthy"
    assert ledger_ok() and custody_consistent(facility)

    # 1. Prices fall step by step through the price authority: into watch once (not on every tick), then margin call.
    for btc in ("650000", "560000", "480000", "420000"):
        with django_capture_on_commit_callbacks(execute=True):
            set_prices(BTC=btc)
    facility = _facility(facility)
    assert facility.band == "watch"
    assert BandChange.objects.filter(facility_id=facility.pk, to_band="watch").count() == 1  # one crossing, one record
    with django_capture_on_commit_callbacks(execute=True):
        set_prices(BTC="400000")  # LV 1,880,000: utilisation 1.0106
    call = MarginCall.objects.get(facility_id=facility.pk)
    assert call.state == CallState.OPEN and call.shortfall == Decimal("20000.00")
    assert Notification.objects.filter(user=alice, kind="risk.margin_call.opened").count() == 1

    # 2. The client gives notice of a repayment (tracked as a servicing request).
    from lending.servicing import requests as servicing

    notice = servicing.repayment_notice(user=alice, facility_id=facility.pk, amount="20000", note="Transfer from my bank on Monday")
    assert notice.kind == "repayment" and notice.state not in ("executed", "refused")

    # 3. A second fall, before the money arrives, reaches the close-out level: the call goes to the credit managers.
    with django_capture_on_commit_callbacks(execute=True):
        set_prices(BTC="150000", s00005="40")
    call.refresh_from_db()
    assert call.state == CallState.ESCALATED and call.band == "close_out"
    assert services.plans_prepare() == 1  # the credit managers can look at a plan at once
    prepared = LiquidationPlan.objects.get(call=call)
    assert prepared.state == PlanState.PROPOSED and prepared.proposed_by is None

    # 4. The officer proposes the close-out: the plan at current prices, shown before approval.
    risk.margin_call_propose(actor=officer, call_id=call.pk, resolution="close_out", reason="Close-out level reached; client cannot top up")
    prepared.refresh_from_db()
    assert prepared.state == PlanState.WITHDRAWN
    plan = selectors.plan_for_call(call_id=call.pk)
    assert plan.state == PlanState.PROPOSED and plan.version == 2 and plan.proposed_by == officer
    lines = list(plan.lines.all())
    assert [(x.code, x.planned_quantity) for x in lines] == [("BTC", Decimal("3")), ("00005", Decimal("20000"))]  # VA first, everything
    # Selling all: 450,000 + 800,000 of proceeds, 1% liquidation fee 12,500: 1,900,000 + 12,500 − 1,250,000 still owed.
    assert plan.expected_proceeds == Decimal("1250000.00") and plan.expected_fees == Decimal("12500.00")
    assert not plan.reaches_target and plan.expected_shortfall == Decimal("662500.00")
    with pytest.raises(ForbiddenError):
        risk.margin_call_decide(actor=officer, call_id=call.pk, approve=True, note="mine")  # not a credit manager
    with django_capture_on_commit_callbacks(execute=True):
        risk.margin_call_decide(actor=credit_manager, call_id=call.pk, approve=True, note="Approved: sell per plan")
    plan.refresh_from_db()
    assert plan.state == PlanState.APPROVED and plan.approved_by == credit_manager
    assert _facility(facility).state == "suspended"

    # 5. The dealing desk records partial executions, a failed sale, and the rest.
    btc_line, sec_line = lines
    now = timezone.now()
    services.execution_record(actor=officer, plan_id=plan.pk, instrument="BTC", quantity="1.5", price="150000", executed_at=now, venue_reference="HKVAX-1")
    plan.refresh_from_db()
    facility = _facility(facility)
    assert plan.state == PlanState.EXECUTING
    assert facility.drawn_balance == Decimal("1677250.00")  # + fee 2,250 − 225,000
    assert facility.positions.get(asset="BTC").quantity == Decimal("1.5")
    assert ledger_ok() and custody_consistent(facility)
    assert Notification.objects.filter(user=alice, kind="recovery.execution.filled").count() == 1
    services.execution_record(actor=officer, plan_id=plan.pk, instrument="BTC", quantity="1.5", price="149000", executed_at=now, venue_reference="HKVAX-2")
    services.execution_record(actor=officer, plan_id=plan.pk, instrument="00005", status=ExecutionStatus.FAILED, quantity="8000",
                              executed_at=now, note="No bids at the limit")
    sec_line.refresh_from_db()
    assert sec_line.status == LineStatus.FAILED and sec_line.filled_quantity == 0
    services.execution_record(actor=officer, plan_id=plan.pk, instrument="00005", quantity="8000", price="40", executed_at=now, venue_reference="HKEX-77")
    facility = _facility(facility)
    assert facility.drawn_balance == Decimal("1139185.00")
    assert facility.band == "close_out" and ledger_ok() and custody_consistent(facility)
    assert not Debt.objects.exists()
    services.execution_record(actor=officer, plan_id=plan.pk, instrument="00005", quantity="12000", price="39.50", executed_at=now, venue_reference="HKEX-78")
    plan.refresh_from_db()
    facility = _facility(facility)
    assert plan.state == PlanState.COMPLETED
    assert facility.drawn_balance == Decimal("669925.00")  # 1,139,185 + 4,740 − 474,000
    assert facility.lending_value == Decimal("0.00") and ledger_ok() and custody_consistent(facility)
    entries = FacilityTransaction.objects.filter(facility_id=facility.pk)
    assert entries.filter(kind="sale_proceeds").count() == 4 and entries.filter(kind="fee").count() == 4
    assert sum(e.delta for e in entries) == facility.drawn_balance

    # 6. The residual shortfall is a debt; it goes delinquent, dunning notices go out on the schedule.
    debt = Debt.objects.get(facility_id=facility.pk)
    assert debt.state == DebtState.OPEN and debt.principal_at_open == Decimal("669925.00")
    assert Notification.objects.filter(user=alice, kind="recovery.debt.opened").count() == 1
    for days, state, step in ((debt.due_on + timedelta(days=1), DebtState.OPEN, 1), (debt.due_on + timedelta(days=10), DebtState.IN_COLLECTIONS, 7),
                              (debt.due_on + timedelta(days=40), DebtState.IN_COLLECTIONS, 30)):
        services.debts_review(today=days)
        services.debts_review(today=days)  # the hourly job again the same day: nothing more
        debt.refresh_from_db()
        assert debt.state == state and debt.dunning_step == step
    assert debt.notices.count() == 3 and Notification.objects.filter(user=alice, kind="recovery.debt.dunning").count() == 3
    row = selectors.with_delinquency([debt], today=debt.due_on + timedelta(days=40))[0]
    assert row.dpd == 40 and row.bucket == "31-60"

    # 7. Written off by two people, with reasons; the same person cannot approve their own proposal.
    services.write_off_propose(actor=credit_manager, debt_id=debt.pk, reason="Client bankrupt; no assets in Hong Kong")
    with pytest.raises(ForbiddenError):
        services.write_off_decide(actor=credit_manager, debt_id=debt.pk, approve=True, note="self")
    services.write_off_decide(actor=credit_manager2, debt_id=debt.pk, approve=True, note="Agreed: irrecoverable")
    debt.refresh_from_db()
    facility = _facility(facility)
    assert debt.state == DebtState.WRITTEN_OFF and debt.written_off_amount == Decimal("669925.00")
    assert facility.drawn_balance == Decimal("0.00") and ledger_ok()
    entry = FacilityTransaction.objects.get(facility_id=facility.pk, kind="write_off")
    assert entry.recorded_by == credit_manager and entry.approved_by == credit_manager2

    # 8. Money comes back later: recoveries are recorded (on the ledger, not reviving the balance).
    services.recovery_record(actor=officer, debt_id=debt.pk, amount="100000", reference="Liquidator dividend 1")
    debt.refresh_from_db()
    assert debt.state == DebtState.WRITTEN_OFF and debt.recovered_total == Decimal("100000.00")
    services.recovery_record(actor=officer, debt_id=debt.pk, amount="50000", reference="Liquidator final dividend", final=True)
    debt.refresh_from_db()
    assert debt.state == DebtState.RECOVERED and debt.recovered_total == Decimal("150000.00")
    assert _facility(facility).drawn_balance == 0 and ledger_ok()
    assert list(selectors.register()) == [debt]
    from portal.models import AuditEvent

    actions = set(AuditEvent.objects.filter(object_type__startswith="recovery.").values_list("action", flat=True))
    assert {"recovery.plan.proposed", "recovery.plan.approved", "recovery.execution.filled", "recovery.execution.failed", "recovery.debt.opened",
            "recovery.debt.in_collections", "recovery.debt.dunning_sent", "recovery.debt.write_off_proposed", "recovery.debt.written_off",
            "recovery.debt.recovery_recorded"} <= actions
    assert time_machine  # the schedule is driven by ``today`` above
