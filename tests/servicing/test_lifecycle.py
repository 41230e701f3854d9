"""Annual review and closing: renew, limit changes (maker-checker above authority, never below the drawn
balance), notice to close, and closing that releases every pledge through the custody ledger."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from lending.models import Facility
from lending.servicing import interest, lifecycle, requests
from lending.servicing.models import FacilityTerms
from portal.errors import ConflictError, ForbiddenError, PortalError
from tests.servicing.conftest import make_facility

pytestmark = pytest.mark.django_db


@pytest.fixture
def live(alice, book, facts):
    from lending.risk.revaluation import revalue_book

    facility = make_facility(alice, securities=(("10000000", "0.30"),), btc="2")
    revalue_book()
    interest.terms_ensure()
    FacilityTerms.objects.filter(facility=facility).update(review_date=timezone.localdate() + timedelta(days=10))
    Facility.objects.filter(pk=facility.pk).update(limit=Decimal("3000000"))
    return Facility.objects.get(pk=facility.pk)


def test_facilities_due_are_listed_and_renewal_sets_the_next_review(live, officer):
    assert [t.facility_id for t in lifecycle.facilities_due(within_days=30)] == [live.pk]
    terms = lifecycle.facility_renew(actor=officer, facility_id=live.pk)
    from lending.servicing.services import add_months

    assert terms.review_date == add_months(timezone.localdate() + timedelta(days=10), 12)
    assert not list(lifecycle.facilities_due(within_days=30))


def test_a_limit_decrease_below_the_drawn_balance_is_refused_with_the_reason(live, officer, officer2):
    requests.staff_instruction(actor=officer2, facility_id=live.pk, kind="drawdown", amount="2000000")
    with pytest.raises(PortalError, match="below the drawn balance of HK\\$2,000,000.00"):
        lifecycle.facility_limit_change(actor=officer, facility_id=live.pk, new_limit="1999999.99", reason="reduce")
    change = lifecycle.facility_limit_change(actor=officer, facility_id=live.pk, new_limit="2000000", reason="reduce to drawn")
    assert change.state == "applied" and Facility.objects.get(pk=live.pk).limit == Decimal("2000000.00")


def test_an_increase_above_authority_waits_for_a_different_credit_manager(live, officer, credit_manager, big_officer):
    change = lifecycle.facility_limit_change(actor=officer, facility_id=live.pk, new_limit="6000000", reason="client grew")  # authority 5m
    assert change.state == "proposed" and Facility.objects.get(pk=live.pk).limit == Decimal("3000000.00")
    with pytest.raises(ForbiddenError):
        lifecycle.limit_change_decide(actor=officer, change_id=change.pk, approve=True)  # not a credit manager
    change = lifecycle.limit_change_decide(actor=credit_manager, change_id=change.pk, approve=True)
    assert change.state == "applied" and Facility.objects.get(pk=live.pk).limit == Decimal("6000000.00")
    with pytest.raises(PortalError, match="above the lending value"):
        lifecycle.facility_limit_change(actor=big_officer, facility_id=live.pk, new_limit="9000000", reason="too much")


def test_notice_to_close_is_recorded_and_the_client_told(live, officer, alice):
    from portal.models import Notification

    with pytest.raises(PortalError, match="future"):
        lifecycle.facility_notice_to_close(actor=officer, facility_id=live.pk, close_by=timezone.localdate(), reason="x")
    terms = lifecycle.facility_notice_to_close(actor=officer, facility_id=live.pk, close_by=timezone.localdate() + timedelta(days=30), reason="Not renewed")
    assert terms.notice_close_by and Notification.objects.filter(user=alice, kind="servicing.notice_to_close").exists()


def test_closing_needs_full_repayment_then_releases_every_pledge(live, alice, officer2, credit_manager):
    from django.db import transaction

    from lending.collateral import services as custody
    from lending.collateral.models import CustodyBalance, Instrument

    btc = Instrument.objects.get(code="BTC")
    with transaction.atomic():
        custody.holding_set(client_id=alice.pk, instrument=btc, quantity=Decimal("5"))
        custody.custody_pledge(client_id=alice.pk, instrument_id=btc.pk, quantity="2", facility_id=live.pk, actor=None)
    requests.staff_instruction(actor=officer2, facility_id=live.pk, kind="drawdown", amount="1000")
    with pytest.raises(ConflictError, match="still owed"):
        lifecycle.facility_wind_up(actor=credit_manager, facility_id=live.pk)
    requests.staff_instruction(actor=officer2, facility_id=live.pk, kind="repayment", amount="1000")
    closed = lifecycle.facility_wind_up(actor=credit_manager, facility_id=live.pk)
    assert closed.state == "closed"
    assert CustodyBalance.objects.get(client=alice, instrument=btc).pledged == Decimal("0")
    with pytest.raises(ConflictError, match="closed"):
        lifecycle.facility_renew(actor=officer2, facility_id=live.pk)


def test_reviews_page_refuses_clients_and_lists_due_facilities(client, live, officer, alice):
    client.force_login(alice)
    assert client.get("/servicing/staff/reviews/").status_code == 403
    client.force_login(officer)
    assert live.reference in client.get("/servicing/staff/reviews/").content.decode()


@pytest.mark.parametrize("way", ["page", "api"])
def test_closing_from_the_facility_page_or_the_api_releases_every_pledge_too(client, live, alice, credit_manager, way):
    """The staff facility page's "Close facility" and POST …/close/ are the same closing as the wind-up: a facility
    closed with the client's BTC still pledged to it would keep that BTC encumbered for ever."""
    from django.db import transaction

    from lending.collateral import services as custody
    from lending.collateral.models import CustodyBalance, Instrument

    btc = Instrument.objects.get(code="BTC")
    with transaction.atomic():
        custody.holding_set(client_id=alice.pk, instrument=btc, quantity=Decimal("5"))
        custody.custody_pledge(client_id=alice.pk, instrument_id=btc.pk, quantity="2", facility_id=live.pk, actor=None)
    client.force_login(credit_manager)
    if way == "page":
        client.post(f"/lending/staff/facilities/{live.pk}/", {"action": "close"})
    else:
        assert client.post(f"/api/v1/lending/staff/facilities/{live.pk}/close/").status_code == 200
    assert Facility.objects.get(pk=live.pk).state == "closed"
    assert CustodyBalance.objects.get(client=alice, instrument=btc).pledged == Decimal("0")


def test_closing_is_refused_while_interest_accrued_is_not_yet_charged(live, alice, officer2, credit_manager, prime):
    """Interest accrues daily and is charged to the balance at the month end: a facility whose drawn balance is
    repaid mid-month still owes the month's interest. Closing it then would leave that interest to be posted to
    a closed facility (a balance nobody can repay, itself accruing interest). The closing is refused, saying how
    much and when it is charged; nothing changes."""
    from datetime import date

    from lending.servicing.models import InterestAccrual
    from tests.servicing.conftest import post

    post(live, "drawdown", "1000000.00", date(2025, 11, 3))
    interest.accrue_day(day=date(2025, 11, 3))
    post(live, "repayment", "1000000.00", date(2025, 11, 4))
    assert Facility.objects.get(pk=live.pk).drawn_balance == Decimal("0.00")
    with pytest.raises(ConflictError, match=r"HK\$226\.03 of interest .* 2025-11-30"):
        lifecycle.facility_wind_up(actor=credit_manager, facility_id=live.pk)
    assert Facility.objects.get(pk=live.pk).state == "active"
    interest.accrue_through(last_day=date(2025, 11, 30))
    interest.post_month(period_end=date(2025, 11, 30))
    assert Facility.objects.get(pk=live.pk).drawn_balance == Decimal("226.03")
    post(live, "repayment", "226.03", date(2025, 12, 1))
    assert lifecycle.facility_wind_up(actor=credit_manager, facility_id=live.pk).state == "closed"
    assert not InterestAccrual.objects.filter(facility=live, posted_on__isnull=True).exists()
