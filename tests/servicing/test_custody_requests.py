"""Collateral requests move holdings through the custody ledger: a securities release frees exactly the
shares released, a top-up request pledges a holding the client has free (never a typed market value)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lending.collateral.models import CustodyBalance, CustodyEntry
from lending.servicing import requests
from portal.errors import PortalError

pytestmark = pytest.mark.django_db


def _hsbc(facility):
    return facility.positions.get(instrument__code="00005")


def test_a_securities_release_frees_exactly_the_shares_released(opened, eligible_client, officer):
    position = _hsbc(opened)  # 100,000 shares pledged on acceptance
    assert CustodyBalance.objects.get(client=eligible_client, instrument__code="00005").pledged == Decimal("100000")
    req = requests.release_request(user=eligible_client, facility_id=opened.pk, position_id=position.pk, quantity="40000")
    assert req.state == "requested" and req.quantity == Decimal("40000") and req.value_hkd == Decimal("4000000.00")
    assert CustodyBalance.objects.get(client=eligible_client, instrument__code="00005").pledged == Decimal("100000")  # not before it executes
    req = requests.request_approve(actor=officer, request_id=req.pk)
    assert req.state == "executed"
    release = CustodyEntry.objects.get(kind="release", facility=opened)
    assert (release.quantity, release.reference) == (Decimal("40000"), req.reference)
    assert CustodyBalance.objects.get(client=eligible_client, instrument__code="00005").pledged == Decimal("60000")
    position.refresh_from_db()
    assert position.quantity == Decimal("60000") and position.market_value == Decimal("6000000.00")
    opened.refresh_from_db()
    assert opened.lending_value == Decimal("4504000.00")  # 60,000 × 100 × 70% + 1 BTC × 760,000 × 40%


def test_a_securities_release_without_a_quantity_releases_the_whole_line(opened, eligible_client, officer, officer2):
    position = _hsbc(opened)
    req = requests.release_request(user=eligible_client, facility_id=opened.pk, position_id=position.pk)
    assert req.quantity == Decimal("100000") and req.needs_second  # HK$10,000,000: above the four-eyes amount
    assert requests.request_approve(actor=officer, request_id=req.pk).state == "awaiting_second"
    assert requests.request_approve(actor=officer2, request_id=req.pk).state == "executed"
    assert CustodyBalance.objects.get(client=eligible_client, instrument__code="00005").pledged == 0
    position.refresh_from_db()
    assert position.quantity == 0 and position.market_value == 0


@pytest.mark.parametrize(("drawn", "allowed"), [("1682800.00", True), ("1683300.00", False)])
def test_a_securities_release_is_allowed_only_within_the_initial_level(opened, eligible_client, officer2, drawn, allowed):
    """Releasing 70,000 of 100,000 HSBC leaves 30,000 × 100 × 70% + 304,000 BTC = 2,404,000: 1,682,800 drawn is exactly 70.00%."""
    requests.staff_instruction(actor=officer2, facility_id=opened.pk, kind="drawdown", amount=drawn)
    req = requests.release_request(user=eligible_client, facility_id=opened.pk, position_id=_hsbc(opened).pk, quantity="70000")
    if allowed:
        assert req.state == "requested" and req.utilisation_after == Decimal("0.7000")
    else:
        assert req.state == "refused" and req.utilisation_after == Decimal("0.7002")
    assert CustodyBalance.objects.get(client=eligible_client, instrument__code="00005").pledged == Decimal("100000")


def test_a_release_above_the_line_or_in_part_shares_is_refused(opened, eligible_client):
    position = _hsbc(opened)
    with pytest.raises(PortalError, match="Only 100,000"):
        requests.release_request(user=eligible_client, facility_id=opened.pk, position_id=position.pk, quantity="100001")
    with pytest.raises(PortalError, match="whole number"):
        requests.release_request(user=eligible_client, facility_id=opened.pk, position_id=position.pk, quantity="10.5")
    assert not CustodyEntry.objects.filter(kind="release").exists()


def test_a_top_up_request_pledges_a_free_holding_when_approved(opened, eligible_client, officer):
    req = requests.top_up_request(user=eligible_client, facility_id=opened.pk, instrument="00004", quantity="20000")
    assert (req.collateral_kind, req.asset, req.quantity) == ("securities", "00004", Decimal("20000"))
    assert not CustodyEntry.objects.filter(kind="pledge", instrument__code="00004").exists()
    requests.request_approve(actor=officer, request_id=req.pk)
    assert CustodyBalance.objects.get(client=eligible_client, instrument__code="00004").pledged == Decimal("20000")
    position = opened.positions.get(instrument__code="00004")
    assert position.quantity == Decimal("20000") and position.market_value == Decimal("2000000.00")


def test_a_top_up_request_above_free_or_without_a_holding_is_refused(opened, eligible_client):
    from lending.servicing.models import ServicingRequest

    with pytest.raises(PortalError) as exc:  # 1,000,000 held, 100,000 already pledged
        requests.top_up_request(user=eligible_client, facility_id=opened.pk, instrument="00005", quantity="900001")
    assert exc.value.code == "above_free" and "900,000" in exc.value.message
    with pytest.raises(PortalError):
        requests.top_up_request(user=eligible_client, facility_id=opened.pk, collateral_kind="securities", quantity="1")
    assert not ServicingRequest.objects.filter(kind="top_up").exists()


def test_the_requests_page_offers_free_holdings_to_pledge(client, opened, eligible_client):
    client.force_login(eligible_client)
    body = client.get(f"/servicing/facilities/{opened.pk}/requests/").content.decode()
    assert 'name="haircut_class"' not in body and 'name="market_value"' not in body
    assert "00005 HSBC Holdings" in body and "900,000" in body  # free after the 100,000 pledged
    assert "100,000 00005" in body  # the pledged line, in whole shares


def test_pending_top_up_requests_count_against_the_free_holding_across_the_clients_facilities(opened, eligible_client):
    """900,000 HSBC free: 400,000 asked on this facility and 400,000 on another are pending, so only 100,000 more
    can be asked for; a cancelled request frees its quantity again."""
    from lending.servicing.models import ServicingRequest
    from tests.servicing.conftest import make_facility

    other = make_facility(eligible_client)
    first = requests.top_up_request(user=eligible_client, facility_id=opened.pk, instrument="00005", quantity="400000")
    requests.top_up_request(user=eligible_client, facility_id=other.pk, instrument="00005", quantity="400000")
    with pytest.raises(PortalError) as exc:
        requests.top_up_request(user=eligible_client, facility_id=opened.pk, instrument="00005", quantity="100001")
    assert exc.value.code == "above_free" and "100,000" in exc.value.message
    assert ServicingRequest.objects.filter(kind="top_up").count() == 2
    assert requests.top_up_request(user=eligible_client, facility_id=opened.pk, instrument="00005", quantity="100000").state == "requested"
    requests.request_cancel(user=eligible_client, request_id=first.pk)
    assert requests.top_up_request(user=eligible_client, facility_id=other.pk, instrument="00005", quantity="400000").state == "requested"


def _free_btc(client_user, quantity="5"):
    from django.db import transaction

    from lending.collateral import services as custody
    from lending.collateral.models import Instrument

    with transaction.atomic():
        custody.holding_set(client_id=client_user.pk, instrument=Instrument.objects.get(code="BTC"), quantity=Decimal(quantity))


def test_a_va_top_up_request_without_a_custody_reference_is_refused_when_asked_with_the_officers_words(opened, eligible_client):
    """The officer's top-up refuses bitcoin without its custody reference; the client's request was accepted and
    could then never be carried out. One set of checks (lending.risk.services.collateral_top_up_check) refuses it now."""
    from lending.servicing.models import ServicingRequest

    _free_btc(eligible_client)
    with pytest.raises(PortalError) as exc:
        requests.top_up_request(user=eligible_client, facility_id=opened.pk, instrument="BTC", quantity="1")
    assert exc.value.message == "Give the custody reference of the virtual assets." and "custody_reference" in exc.value.fields
    with pytest.raises(PortalError, match="more than 8 decimal places"):  # refused, not rounded to 1.00000000
        requests.top_up_request(user=eligible_client, facility_id=opened.pk, instrument="BTC", quantity="1.000000001", custody_reference="C-1")
    assert not ServicingRequest.objects.filter(kind="top_up").exists()


def test_a_top_up_request_above_a_concentration_limit_is_refused_when_asked(opened, eligible_client, officer, credit_manager):
    """The concentration limit was checked only at the officer's approval (409 concentration_limit); the client's request
    is refused up front with the same message, and a request the officer approves is checked again."""
    from lending.collateral import concentration
    from lending.risk import services as risk_services
    from lending.servicing.models import ServicingRequest

    limits = concentration.Limits(client={"instrument": Decimal("0.9"), "issuer": Decimal("1"), "sector": Decimal("1")},
                                  firm={"instrument": Decimal("1"), "issuer": Decimal("1"), "sector": Decimal("1")}, firm_min_book=Decimal("1e12"))
    import unittest.mock

    with unittest.mock.patch("lending.collateral.concentration.limits_for", return_value=limits):
        with pytest.raises(PortalError) as asked:
            requests.top_up_request(user=eligible_client, facility_id=opened.pk, instrument="00005", quantity="900000")
        with pytest.raises(PortalError) as recorded:
            risk_services.collateral_top_up(actor=officer, facility_id=opened.pk, instrument="00005", quantity="900000")
    assert asked.value.code == recorded.value.code == "concentration_limit" and asked.value.http_status == 409
    assert asked.value.message == recorded.value.message
    assert not ServicingRequest.objects.filter(kind="top_up").exists()


def test_the_officer_supplies_the_custody_reference_when_approving_a_request_without_one(client, api_client, opened, eligible_client, officer):
    from lending.collateral.models import CustodyBalance
    from lending.servicing.models import ServicingRequest

    _free_btc(eligible_client)
    first = requests.top_up_request(user=eligible_client, facility_id=opened.pk, instrument="BTC", quantity="1", custody_reference="C-1")
    second = requests.top_up_request(user=eligible_client, facility_id=opened.pk, instrument="BTC", quantity="1", custody_reference="C-2")
    ServicingRequest.objects.filter(pk__in=[first.pk, second.pk]).update(custody_reference="")  # asked before the reference was required
    api_client.force_login(officer)
    refused = api_client.post(f"/api/v1/servicing/staff/requests/{first.pk}/approve/", {}, format="json")
    assert refused.status_code == 400 and "custody_reference" in refused.json()["error"]["fields"]
    done = api_client.post(f"/api/v1/servicing/staff/requests/{first.pk}/approve/", {"custody_reference": "CUST-BTC-77"}, format="json")
    assert done.status_code == 200 and done.json()["state"] == "executed"
    assert ServicingRequest.objects.get(pk=first.pk).custody_reference == "CUST-BTC-77"
    client.force_login(officer)
    page = client.get("/servicing/staff/requests/").content.decode()
    assert 'name="custody_reference"' in page
    client.post("/servicing/staff/requests/", {"action": "approve", "request_id": second.pk, "custody_reference": "CUST-BTC-78"})
    assert ServicingRequest.objects.get(pk=second.pk).state == "executed"
    assert CustodyBalance.objects.get(client=eligible_client, instrument__code="BTC").pledged == Decimal("3")


def test_a_chinese_reader_sees_instrument_names_in_chinese_on_the_requests_page_and_statement(client, opened, eligible_client, officer):
    """The requests page's selects and request list, the staff queue and the statement named holdings in English
    ('HSBC Holdings', 'Bitcoin') to a Chinese reader: they use the instrument's own name in the reader's language."""
    from datetime import date

    from lending.servicing import statements
    from portal.pdf import pdf_text

    eligible_client.preferred_language = "zh-hant"
    eligible_client.save(update_fields=["preferred_language"])
    requests.top_up_request(user=eligible_client, facility_id=opened.pk, instrument="00004", quantity="1000")
    client.force_login(eligible_client)
    page = client.get(f"/servicing/facilities/{opened.pk}/requests/").content.decode()
    assert "滙豐控股" in page and "九龍倉集團" in page
    assert "HSBC Holdings" not in page and "Wharf (Holdings)" not in page
    statement = statements.issue_one(facility_id=opened.pk, kind="monthly", period_start=date(2025, 11, 1), period_end=date(2025, 11, 30))
    text = pdf_text(bytes(statement.pdf))
    assert "滙豐控股" in text and "比特幣" in text and "HSBC Holdings" not in text and "Bitcoin" not in text
