"""Margin calls: opened once per breach, cure deadline, met, escalated, closed out or waived with four eyes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine

from lending.risk import services
from lending.risk.models import CallState, MarginCall
from lending.risk.revaluation import cure_deadline, revalue_book
from portal.errors import ConflictError, ForbiddenError
from portal.models import Notification
from tests.helpers import make_user

from .conftest import make_facility, reload, set_prices

pytestmark = pytest.mark.django_db
HK = ZoneInfo("Asia/Hong_Kong")
MIXED = {"securities": (("10000000", "0.30"),), "btc": "2", "eth": "10"}  # lending value 7,702,500


@pytest.fixture
def in_call(book, alice, officer, django_capture_on_commit_callbacks):
    facility = make_facility(alice, drawn="8000000", officer=officer, **MIXED)  # 1.0386
    with django_capture_on_commit_callbacks(execute=True):
        revalue_book()
    return reload(facility)


def test_crossing_into_margin_call_opens_one_call_with_shortfall_and_flag(in_call):
    call = MarginCall.objects.get(facility=in_call)
    assert call.state == CallState.OPEN
    assert call.shortfall == Decimal("297500.00")  # 8,000,000 − 7,702,500
    assert call.utilisation_at_open == Decimal("1.0386")
    assert in_call.has_open_margin_call and in_call.band == "margin_call"


def test_client_and_officer_are_told_in_app_and_by_email(in_call, alice, officer, mailoutbox):
    assert Notification.objects.filter(user=alice, kind="risk.margin_call.opened").count() == 1
    assert Notification.objects.filter(user=officer, kind="risk.margin_call.opened").count() == 1
    assert sorted(m.to[0] for m in mailoutbox) == [alice.email, officer.email]


def test_crossings_within_the_call_bands_keep_one_call_updated_and_no_more_messages(in_call, alice, django_capture_on_commit_callbacks):
    # Deeper into the call, back up (still above the level), to close-out and back: one call throughout.
    from lending.risk.revaluation import open_calls_refresh

    for btc in ("500000", "900000", "300000", "450000"):
        with django_capture_on_commit_callbacks(execute=True):
            set_prices(btc=Decimal(btc))
    open_calls_refresh()  # the beat refreshes the shortfall of calls whose band did not change
    calls = list(MarginCall.objects.filter(facility=in_call))
    assert len(calls) == 1
    call = calls[0]
    # refreshed at BTC 450,000: LV 7,000,000 + 2 × 450,000 × 0.4 + 94,500 = 7,454,500
    assert call.shortfall == Decimal("545500.00")
    assert Notification.objects.filter(user=alice, kind="risk.margin_call.opened").count() == 1


def test_a_recovery_meets_the_call_and_a_new_fall_opens_a_new_one(in_call, alice, django_capture_on_commit_callbacks):
    for btc in ("1300000", "450000"):
        with django_capture_on_commit_callbacks(execute=True):
            set_prices(btc=Decimal(btc))
    assert list(MarginCall.objects.filter(facility=in_call).order_by("id").values_list("state", "met_by")) == [
        (CallState.MET, "market"), (CallState.OPEN, "")]
    assert Notification.objects.filter(user=alice, kind="risk.margin_call.opened").count() == 2
    assert Notification.objects.filter(user=alice, kind="risk.margin_call.met_by_market").count() == 1


def test_drawdown_is_refused_while_a_call_is_open(in_call, officer):
    from lending import services as lending_services

    with pytest.raises(ConflictError) as exc:
        lending_services.facility_drawdown(actor=officer, facility_id=in_call.pk, amount="1000")
    assert exc.value.code == "margin_call_open"
    assert reload(in_call).drawn_balance == Decimal("8000000.00")


def pledgeable(client, code="00005", price="100.00"):
    """The back office reports holdings for ``client`` (1,000,000 shares of 00005 …, 100 BTC) and 00005 is quoted at HK$100."""
    from tests.lending.conftest import give_holdings
    from tests.lending.conftest import set_prices as quote

    give_holdings(client)
    quote(securities={code: Decimal(price)})


def test_collateral_top_up_meets_the_call_and_drawdowns_resume(in_call, officer, alice, django_capture_on_commit_callbacks):
    pledgeable(alice)
    with django_capture_on_commit_callbacks(execute=True):  # 5,000 × HK$100 at 30%: lending value +350,000
        services.collateral_top_up(actor=officer, facility_id=in_call.pk, instrument="00005", quantity="5000", reference="TOPUP-1")
    call = MarginCall.objects.get(facility=in_call)
    assert call.state == CallState.MET and call.met_by == "top_up"
    facility = reload(in_call)
    assert not facility.has_open_margin_call
    assert facility.band == "watch"  # 8,000,000 / 8,052,500
    assert Notification.objects.filter(user=alice, kind="risk.margin_call.met").count() == 1


def test_a_top_up_too_small_leaves_the_call_open_with_a_smaller_shortfall(in_call, officer, alice):
    pledgeable(alice)
    services.collateral_top_up(actor=officer, facility_id=in_call.pk, instrument="00005", quantity="1000")
    call = MarginCall.objects.get(facility=in_call)
    assert call.state == CallState.OPEN and call.shortfall == Decimal("227500.00")


def test_a_top_up_pledges_the_holding_in_the_custody_ledger(in_call, officer, alice):
    from lending.collateral.models import CustodyBalance, CustodyEntry
    from lending.models import CollateralPosition

    pledgeable(alice)
    services.collateral_top_up(actor=officer, facility_id=in_call.pk, instrument="5", quantity="3000", reference="TOPUP-A")
    services.collateral_top_up(actor=officer, facility_id=in_call.pk, instrument="00005", quantity="2000", reference="TOPUP-B")
    balance = CustodyBalance.objects.get(client=alice, instrument__code="00005")
    assert (balance.held, balance.pledged) == (Decimal("1000000"), Decimal("5000"))
    entries = CustodyEntry.objects.filter(kind="pledge", facility=in_call).order_by("id")
    assert [(e.quantity, e.reference) for e in entries] == [(Decimal("3000"), "TOPUP-A"), (Decimal("2000"), "TOPUP-B")]
    position = CollateralPosition.objects.get(facility=in_call, instrument__code="00005")  # one line per instrument
    assert position.quantity == Decimal("5000") and position.market_value == Decimal("500000.00") and position.haircut == Decimal("0.3000")


def test_a_top_up_above_what_is_free_is_refused_and_changes_nothing(in_call, officer, alice):
    from lending.collateral.models import CustodyBalance, CustodyEntry
    from lending.models import CollateralPosition
    from lending.risk.models import CollateralTopUp

    pledgeable(alice)
    positions, entries = CollateralPosition.objects.count(), CustodyEntry.objects.count()
    with pytest.raises(ConflictError) as exc:
        services.collateral_top_up(actor=officer, facility_id=in_call.pk, instrument="00005", quantity="1000001")
    assert exc.value.code == "insufficient_free" and "1,000,000" in exc.value.message
    assert CollateralPosition.objects.count() == positions and CustodyEntry.objects.count() == entries
    assert not CollateralTopUp.objects.exists() and CustodyBalance.objects.get(client=alice, instrument__code="00005").pledged == 0
    assert MarginCall.objects.get(facility=in_call).state == CallState.OPEN


def test_a_top_up_cannot_be_a_typed_market_value(in_call, officer, alice):
    from portal.errors import PortalError

    pledgeable(alice)
    with pytest.raises(PortalError) as exc:
        services.collateral_top_up(actor=officer, facility_id=in_call.pk, kind="securities", quantity="1")
    assert exc.value.code == "validation_error" and "instrument" in exc.value.fields
    with pytest.raises(PortalError, match="whole number"):
        services.collateral_top_up(actor=officer, facility_id=in_call.pk, instrument="00005", quantity="10.5")
    with pytest.raises(PortalError, match="not securities"):
        services.collateral_top_up(actor=officer, facility_id=in_call.pk, instrument="BTC", kind="securities", quantity="1", custody_reference="C")


def test_a_repayment_meets_the_call_at_once_and_drawdowns_are_allowed_again(in_call, officer, alice, django_capture_on_commit_callbacks, monkeypatch):
    from disclosures import selectors as disclosure_selectors
    from lending import services as lending_services
    from lending.models import FacilityTransaction
    from onboarding import selectors as onboarding_selectors

    monkeypatch.setattr(disclosure_selectors, "clients_with_outstanding", lambda **kw: set())  # disclosures current
    monkeypatch.setattr(onboarding_selectors, "product_eligibility",  # and the client eligible
                        lambda *, user, product, **kw: onboarding_selectors.Eligibility(product=str(product), requirements=[]))

    with django_capture_on_commit_callbacks(execute=True):
        # 8,000,000 − 400,000 = 7,600,000 of 7,702,500: utilisation 98.7% — no beat, no waiting.
        lending_services.facility_repay(actor=officer, facility_id=in_call.pk, amount="400000")
    call = MarginCall.objects.get(facility=in_call)
    assert call.state == CallState.MET and call.met_by == "repayment"
    facility = reload(in_call)
    assert not facility.has_open_margin_call and facility.band == "watch"
    assert Notification.objects.filter(user=alice, kind="risk.margin_call.met").count() == 1
    lending_services.facility_drawdown(actor=officer, facility_id=in_call.pk, amount="1000")
    assert FacilityTransaction.objects.filter(facility=in_call, kind="drawdown").count() == 1


def test_a_repayment_that_leaves_utilisation_above_100_percent_keeps_the_call_open_with_a_smaller_shortfall(in_call, officer):
    from lending import services as lending_services

    lending_services.facility_repay(actor=officer, facility_id=in_call.pk, amount="100000")
    call = MarginCall.objects.get(facility=in_call)
    assert call.state == CallState.OPEN and call.shortfall == Decimal("197500.00")  # 7,900,000 − 7,702,500
    assert reload(in_call).has_open_margin_call


def test_a_repayment_that_fails_changes_nothing_in_the_risk_engine(in_call, officer):
    from lending import services as lending_services
    from lending.risk.models import RevaluationRun
    from portal.errors import PortalError

    runs = RevaluationRun.objects.count()
    with pytest.raises(PortalError):
        lending_services.facility_repay(actor=officer, facility_id=in_call.pk, amount="9000000")
    assert RevaluationRun.objects.count() == runs
    assert MarginCall.objects.get(facility=in_call).state == CallState.OPEN


def test_an_accepted_facility_is_known_to_the_risk_engine_at_once(book, alice):
    """Opening a facility (lending.application_accept) builds its risk coefficients in the same transaction."""
    from lending.risk.models import FacilityCoefficients

    facility = make_facility(alice, drawn="0", **MIXED)
    FacilityCoefficients.objects.filter(facility_id=facility.pk).delete()
    services.facility_changed(facility_id=facility.pk)
    assert FacilityCoefficients.objects.filter(facility_id=facility.pk).exists()


def test_an_officer_cannot_record_a_call_met_while_utilisation_is_above_the_level(in_call, officer):
    from lending.risk.revaluation import open_calls_refresh

    set_prices(btc=Decimal("1000000"))  # LV 7,894,500 … still above: not yet
    with pytest.raises(ConflictError):
        services.margin_call_mark_met(actor=officer, call_id=MarginCall.objects.get().pk)
    open_calls_refresh()
    call = MarginCall.objects.get()
    assert call.state == CallState.OPEN and call.shortfall == Decimal("105500.00")  # 8,000,000 − 7,894,500


def test_cure_deadline_counts_hong_kong_business_days():
    # Friday → Monday, Tuesday.
    assert cure_deadline(opened_at=datetime(2026, 1, 9, 10, tzinfo=HK), business_days=2) == datetime(2026, 1, 13, 23, 59, 59, tzinfo=HK)
    # Thursday before Easter 2026: Good Friday, the day after, Sunday, Easter Monday, the Ching Ming holiday → Wed 8, Thu 9.
    assert cure_deadline(opened_at=datetime(2026, 4, 2, 15, tzinfo=HK), business_days=2) == datetime(2026, 4, 9, 23, 59, 59, tzinfo=HK)


def test_overdue_call_escalates_to_credit_managers(in_call, credit_manager, django_capture_on_commit_callbacks):
    call = MarginCall.objects.get()
    with time_machine.travel(call.cure_deadline.timestamp() + 60, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert services.margin_calls_escalate_due() == 1
    call = MarginCall.objects.get()
    assert call.state == CallState.ESCALATED and call.escalation_reason == "overdue"
    assert Notification.objects.filter(user=credit_manager, kind="risk.margin_call.escalated").count() == 1


def test_close_out_level_escalates_at_once(book, alice):
    make_facility(alice, drawn="10013250", **MIXED)  # exactly 1.30
    revalue_book()
    call = MarginCall.objects.get()
    assert call.state == CallState.ESCALATED and call.escalation_reason == "close_out_level"


@pytest.fixture
def escalated(in_call, officer):
    call = MarginCall.objects.get()
    return services.margin_call_escalate(actor=officer, call_id=call.pk, reason="Client unreachable")


def test_close_out_needs_a_credit_manager_who_did_not_propose_it(escalated, officer, officer2, credit_manager, django_capture_on_commit_callbacks):
    services.margin_call_propose(actor=officer, call_id=escalated.pk, resolution="close_out", reason="No response by the deadline")
    with pytest.raises(ForbiddenError):  # an officer cannot approve
        services.margin_call_decide(actor=officer2, call_id=escalated.pk, approve=True, note="ok")
    other_manager = make_user("credit_manager", email="max@example.com")
    # A second maker cannot replace the proposal awaiting its checker (it withdrew the officer's liquidation plan).
    with pytest.raises(ConflictError) as exc:
        services.margin_call_propose(actor=credit_manager, call_id=escalated.pk, resolution="waive", reason="Another idea")
    assert exc.value.code == "already_proposed"
    call = MarginCall.objects.get()
    assert (call.proposed_resolution, call.proposed_by) == ("close_out", officer)
    services.margin_call_decide(actor=other_manager, call_id=escalated.pk, approve=False, note="Give the client one more day")
    services.margin_call_propose(actor=credit_manager, call_id=escalated.pk, resolution="close_out", reason="Still no response")
    with pytest.raises(ForbiddenError) as exc:  # maker ≠ checker
        services.margin_call_decide(actor=credit_manager, call_id=escalated.pk, approve=True, note="ok")
    assert exc.value.code == "four_eyes"
    assert MarginCall.objects.get().state == CallState.ESCALATED
    with django_capture_on_commit_callbacks(execute=True):
        services.margin_call_decide(actor=other_manager, call_id=escalated.pk, approve=True, note="Liquidate BTC first")
    call = MarginCall.objects.get()
    assert call.state == CallState.CLOSED_OUT and call.resolved_by == other_manager
    facility = reload(escalated.facility)
    assert facility.state == "suspended" and not facility.has_open_margin_call
    from portal.models import AuditEvent

    assert AuditEvent.objects.filter(action="risk.margin_call.closed_out", object_id=str(call.pk)).exists()


def test_waiver_by_a_second_credit_manager(escalated, officer, credit_manager):
    services.margin_call_propose(actor=officer, call_id=escalated.pk, resolution="waive", reason="Top-up in transit, confirmed by custodian")
    services.margin_call_decide(actor=credit_manager, call_id=escalated.pk, approve=True, note="Waived pending settlement")
    assert MarginCall.objects.get().state == CallState.WAIVED
    assert not reload(escalated.facility).has_open_margin_call


def test_open_call_cannot_be_waived_before_escalation(in_call, officer):
    with pytest.raises(ConflictError):
        services.margin_call_propose(actor=officer, call_id=MarginCall.objects.get().pk, resolution="waive", reason="x")


def test_staff_cannot_act_on_a_call_on_their_own_facility(book):
    staff_client = make_user("account_officer", email="own@example.com")
    from portal.permissions import Role
    from portal.services import user_add_role

    user_add_role(user=staff_client, role=Role.CLIENT)
    make_facility(staff_client, drawn="8000000", **MIXED)
    revalue_book()
    with pytest.raises(ForbiddenError):
        services.margin_call_escalate(actor=staff_client, call_id=MarginCall.objects.get().pk, reason="mine")


def test_a_new_breach_after_a_met_call_opens_a_new_call(in_call, officer, alice):
    pledgeable(alice)
    services.collateral_top_up(actor=officer, facility_id=in_call.pk, instrument="00005", quantity="5000")
    set_prices(btc=Decimal("100000"))
    revalue_book()
    assert list(MarginCall.objects.order_by("id").values_list("state", flat=True)) == [CallState.MET, CallState.OPEN]


def test_refusals_are_in_the_users_language(in_call, officer):
    """Services' error messages are translatable: a drawdown refused during a call reads in Chinese for a zh-Hant user."""
    from django.utils import translation

    from lending import services as lending_services

    with translation.override("zh-hant"), pytest.raises(ConflictError) as exc:
        lending_services.facility_drawdown(actor=officer, facility_id=in_call.pk, amount="1000")
    assert exc.value.message == "此融資有未了結的追加保證金通知：在符合要求前暫停進一步放款。"
    with translation.override("zh-hant"), pytest.raises(ConflictError) as exc:
        services.margin_call_propose(actor=officer, call_id=MarginCall.objects.get(facility=in_call).pk, resolution="waive", reason="r")
    assert "只有已上報的通知可平倉或豁免" in exc.value.message and "MC-" in exc.value.message
