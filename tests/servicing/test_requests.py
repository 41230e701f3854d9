"""Client requests and staff instructions: auto-execution below the policy amount, officer and four-eyes
above it, repayment matching, the release initial-level boundary, whitelist cooling-off and MFA step-up."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from lending import services as lending_services
from lending.ledger import ledger_check
from lending.models import Facility, FacilityTransaction
from lending.servicing import requests
from lending.servicing.models import ServicingRequest
from portal.errors import ConflictError, ForbiddenError, PortalError
from tests.servicing.conftest import make_facility

pytestmark = pytest.mark.django_db
MIXED = {"securities": (("10000000", "0.30"),), "btc": "2"}  # lending value 7,000,000 + 608,000


@pytest.fixture
def live(alice, book, facts):
    from lending.risk.revaluation import revalue_book

    facility = make_facility(alice, **MIXED)
    revalue_book()
    return Facility.objects.get(pk=facility.pk)


def test_a_small_drawdown_request_is_paid_at_once(live, alice):
    req = requests.drawdown_request(user=alice, facility_id=live.pk, amount="100000")
    assert req.state == "executed" and not req.needs_officer
    entry = FacilityTransaction.objects.get(pk=req.ledger_entry_id)
    assert entry.kind == "drawdown" and entry.amount == Decimal("100000.00") and entry.reference == req.reference
    assert Facility.objects.get(pk=live.pk).drawn_balance == Decimal("100000.00") and ledger_check().ok


@pytest.mark.parametrize("amount", ["1e309", "-1e309", "99999999999999999999"])
@pytest.mark.parametrize("action", ["drawdown", "repayment"])
def test_an_amount_beyond_any_column_is_refused_on_the_page_and_nothing_changes(client, live, alice, action, amount):
    """1e309 passed the bounds and raised where it was rounded to the cent: a 500 (found by crawling the client's pages)."""
    client.force_login(alice)
    response = client.post(f"/servicing/facilities/{live.pk}/requests/", {"action": action, "amount": amount}, follow=True)
    assert response.status_code == 200 and "Amount must be" in response.content.decode()
    assert not ServicingRequest.objects.exists()
    assert Facility.objects.get(pk=live.pk).drawn_balance == live.drawn_balance and ledger_check().ok


def test_a_larger_drawdown_waits_for_an_officer_and_above_four_eyes_for_a_second_person(live, alice, officer, officer2):
    req = requests.drawdown_request(user=alice, facility_id=live.pk, amount="600000")  # above the 500,000 auto limit
    assert req.state == "requested" and req.needs_officer and not req.needs_second
    assert not FacilityTransaction.objects.exists()
    req = requests.request_approve(actor=officer, request_id=req.pk)
    assert req.state == "executed" and FacilityTransaction.objects.get().approved_by_id == officer.pk
    big = requests.drawdown_request(user=alice, facility_id=live.pk, amount="5000000.01")  # above the 5,000,000 four-eyes amount
    assert big.needs_second
    big = requests.request_approve(actor=officer, request_id=big.pk)
    assert big.state == "awaiting_second"
    with pytest.raises(ForbiddenError):
        requests.request_approve(actor=officer, request_id=big.pk)  # not the same person twice
    big = requests.request_approve(actor=officer2, request_id=big.pk)
    assert big.state == "executed" and FacilityTransaction.objects.get(pk=big.ledger_entry_id).approved_by_id == officer2.pk


def test_a_drawdown_request_is_refused_above_available_and_during_a_margin_call(live, alice, charlie):
    with pytest.raises(PortalError, match="above the available"):
        requests.drawdown_request(user=alice, facility_id=live.pk, amount="99000000")
    Facility.objects.filter(pk=live.pk).update(has_open_margin_call=True)
    with pytest.raises(ConflictError, match="margin call is open"):
        requests.drawdown_request(user=alice, facility_id=live.pk, amount="1000")
    with pytest.raises(PortalError) as exc:
        requests.drawdown_request(user=charlie, facility_id=live.pk, amount="1000")
    assert exc.value.http_status == 404
    assert not ServicingRequest.objects.exists()


def test_staff_drawdowns_above_the_policy_amount_need_a_second_person(live, officer, officer2):
    with pytest.raises(PortalError, match="second member of staff"):
        lending_services.facility_drawdown(actor=officer, facility_id=live.pk, amount="5000000.01")
    small = requests.staff_instruction(actor=officer, facility_id=live.pk, kind="drawdown", amount="5000000.00")
    assert small.state == "executed"
    big = requests.staff_instruction(actor=officer, facility_id=live.pk, kind="repayment", amount="5000000.00")
    assert big.state == "executed"
    big = requests.staff_instruction(actor=officer, facility_id=live.pk, kind="drawdown", amount="5000000.01")
    assert big.state == "awaiting_second"
    with pytest.raises(ForbiddenError):
        requests.request_approve(actor=officer, request_id=big.pk)
    assert requests.request_approve(actor=officer2, request_id=big.pk).state == "executed"
    assert ledger_check().ok


def test_a_repayment_notice_is_matched_to_the_receipt(live, alice, officer):
    requests.drawdown_request(user=alice, facility_id=live.pk, amount="300000")
    notice = requests.repayment_notice(user=alice, facility_id=live.pk, amount="120000")
    assert notice.reference in requests.payment_instructions(notice)
    with pytest.raises(PortalError, match="receipt reference"):
        requests.request_approve(actor=officer, request_id=notice.pk)
    notice = requests.request_approve(actor=officer, request_id=notice.pk, received_reference="FPS-8812")
    assert notice.state == "executed" and FacilityTransaction.objects.get(pk=notice.ledger_entry_id).reference == "FPS-8812"
    assert Facility.objects.get(pk=live.pk).drawn_balance == Decimal("180000.00")


def test_pending_repayment_notices_count_against_the_drawn_balance(live, alice, officer):
    """300,000 drawn: notices of 200,000 and 100,000 are pending, so a third, of a cent, is more than is owed;
    a cancelled notice no longer counts."""
    requests.drawdown_request(user=alice, facility_id=live.pk, amount="300000")
    first = requests.repayment_notice(user=alice, facility_id=live.pk, amount="200000")
    requests.repayment_notice(user=alice, facility_id=live.pk, amount="100000")
    with pytest.raises(PortalError) as exc:
        requests.repayment_notice(user=alice, facility_id=live.pk, amount="0.01")
    assert exc.value.code == "above_drawn" and "300,000.00" in exc.value.message
    assert ServicingRequest.objects.filter(kind="repayment").count() == 2
    requests.request_cancel(user=alice, request_id=first.pk)
    assert requests.repayment_notice(user=alice, facility_id=live.pk, amount="200000").state == "requested"


def _custody(alice, facility, qty="2"):
    from django.db import transaction

    from lending.collateral import services as custody
    from lending.collateral.models import Instrument

    btc = Instrument.objects.get(code="BTC")
    with transaction.atomic():
        custody.holding_set(client_id=alice.pk, instrument=btc, quantity=Decimal("5"))
        custody.custody_pledge(client_id=alice.pk, instrument_id=btc.pk, quantity=qty, facility_id=facility.pk, actor=None)
    return btc


def _active_address(alice, time_machine=None):
    entry, token = requests.address_add(user=alice, asset="BTC", address="bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq")
    requests.address_confirm(user=alice, token=token)
    from lending.servicing.models import WithdrawalAddress

    WithdrawalAddress.objects.filter(pk=entry.pk).update(active_from=timezone.now() - timedelta(seconds=1))
    requests.addresses_activate_due()
    return WithdrawalAddress.objects.get(pk=entry.pk)


@pytest.mark.parametrize(("drawn", "allowed"), [("5112800.00", True), ("5113600.00", False)])
def test_a_release_is_allowed_only_within_the_initial_level(live, alice, officer2, drawn, allowed):
    """Releasing 1 BTC leaves a lending value of 7,304,000: at 5,112,800 drawn that is exactly 70.00%."""
    from lending.collateral.models import CustodyBalance

    requests.staff_instruction(actor=officer2, facility_id=live.pk, kind="drawdown", amount="5000000.00")
    requests.staff_instruction(actor=officer2, facility_id=live.pk, kind="drawdown", amount=str(Decimal(drawn) - Decimal("5000000")))
    btc = _custody(alice, live)
    address = _active_address(alice)
    position = live.positions.get(asset="BTC")
    req = requests.release_request(user=alice, facility_id=live.pk, position_id=position.pk, quantity="1", address_id=address.pk,
                                   stepup_at=timezone.now())
    balance = CustodyBalance.objects.get(client=alice, instrument=btc)
    if allowed:
        assert req.utilisation_after == Decimal("0.7000")
        assert req.needs_officer and not req.needs_second and req.state == "requested"  # HK$760,000: officer tier only
    else:
        assert req.state == "refused" and "above the initial level of 70.00%" in req.refused_reason
        assert req.utilisation_after == Decimal("0.7001")
    assert balance.pledged == Decimal("2")  # nothing moves before it executes


def test_a_refused_release_keeps_a_code_and_reads_in_the_readers_language(live, alice, officer2):
    """The refusal is stored as a code and its figures beside the English sentence; each reader gets their
    language; a row stored before codes gets one from its sentence (data migration), staff's words stay as written."""
    import importlib

    from django.apps import apps
    from django.utils import translation

    from lending.servicing.models import ServicingRequest

    requests.staff_instruction(actor=officer2, facility_id=live.pk, kind="drawdown", amount="5000000.00")
    requests.staff_instruction(actor=officer2, facility_id=live.pk, kind="drawdown", amount="113600.00")
    _custody(alice, live)
    address = _active_address(alice)
    position = live.positions.get(asset="BTC")
    req = requests.release_request(user=alice, facility_id=live.pk, position_id=position.pk, quantity="1", address_id=address.pk,
                                   stepup_at=timezone.now())
    assert req.state == "refused" and req.refused_code == "release.above_initial_level"
    assert req.refused_params == {"after": "70.01%", "level": "70.00%"}
    assert req.refused_reason.startswith("Utilisation after the release would be 70.01%, above the initial level of 70.00%")
    with translation.override("zh-hant"):
        chinese = req.refusal_text
    assert chinese.startswith("發還後使用率將為 70.01%") and "Utilisation" not in chinese
    with translation.override("en"):
        assert req.refusal_text == req.refused_reason
    # Rows stored before the code existed: the portal's sentence gets its code, a typed reason stays as written.
    ServicingRequest.objects.filter(pk=req.pk).update(refused_code="", refused_params={})
    typed = ServicingRequest.objects.create(facility=live, client=alice, kind=req.kind, origin=req.origin, requested_by=alice,
                                            state="refused", refused_reason="Call the desk first.")
    importlib.import_module("lending.servicing.migrations.0012_request_refused_code_from_text").codes_from_text(apps, None)
    req.refresh_from_db()
    typed.refresh_from_db()
    assert (req.refused_code, req.refused_params) == ("release.above_initial_level", {"after": "70.01%", "level": "70.00%"})
    assert typed.refused_code == "" and typed.refusal_text == "Call the desk first."
    with translation.override("zh-hant"):
        assert req.refusal_text == chinese and typed.refusal_text == "Call the desk first."


def test_a_withdrawal_executes_through_the_custody_ledger_after_two_approvals(live, alice, officer, officer2):
    from lending.collateral.models import CustodyBalance, CustodyEntry

    btc = _custody(alice, live)
    address = _active_address(alice)
    position = live.positions.get(asset="BTC")
    req = requests.release_request(user=alice, facility_id=live.pk, position_id=position.pk, quantity="0.5", address_id=address.pk,
                                   stepup_at=timezone.now())
    assert req.needs_officer and not req.needs_second  # HK$380,000: above the officer tier, below the second tier
    req = requests.request_approve(actor=officer, request_id=req.pk)
    assert req.state == "executed"
    assert CustodyBalance.objects.get(client=alice, instrument=btc).pledged == Decimal("1.5")
    release = CustodyEntry.objects.get(kind="release")
    assert release.quantity == Decimal("0.5") and release.facility_id == live.pk and release.reference == req.reference
    position.refresh_from_db()
    assert position.quantity == Decimal("1.5")
    with pytest.raises(PortalError, match="transaction hash"):
        requests.withdrawal_broadcast(actor=officer2, request_id=req.pk, transfer_reference="nope")
    req = requests.withdrawal_broadcast(actor=officer2, request_id=req.pk, transfer_reference="ab" * 32)
    assert req.broadcast_reference == "ab" * 32


def test_a_withdrawal_needs_a_fresh_step_up_and_an_address_past_its_cooling_off(live, alice, time_machine):
    position = live.positions.get(asset="BTC")
    entry, token = requests.address_add(user=alice, asset="BTC", address="bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq")
    assert entry.state == "added"
    with pytest.raises(ConflictError, match="Confirm this address"):
        requests.release_request(user=alice, facility_id=live.pk, position_id=position.pk, quantity="0.01", address_id=entry.pk, stepup_at=timezone.now())
    entry = requests.address_confirm(user=alice, token=token)
    assert entry.state == "cooling_off" and entry.active_from == entry.confirmed_at + timedelta(hours=24)
    with pytest.raises(ConflictError, match="cooling off until"):
        requests.release_request(user=alice, facility_id=live.pk, position_id=position.pk, quantity="0.01", address_id=entry.pk, stepup_at=timezone.now())
    with pytest.raises(ForbiddenError, match="Confirm it is you with your authenticator"):
        requests.release_request(user=alice, facility_id=live.pk, position_id=position.pk, quantity="0.01", address_id=entry.pk,
                                 stepup_at=timezone.now() - timedelta(minutes=6))
    time_machine.move_to(timezone.now() + timedelta(hours=24, seconds=1))
    assert requests.addresses_activate_due() == 1


def test_an_address_must_be_valid_and_the_confirmation_link_is_single_use(alice, book):
    with pytest.raises(PortalError, match="not a valid BTC address"):
        requests.address_add(user=alice, asset="BTC", address="0x1234")
    entry, token = requests.address_add(user=alice, asset="ETH", address="0x" + "a" * 40)
    requests.address_confirm(user=alice, token=token)
    with pytest.raises(PortalError, match="not valid"):
        requests.address_confirm(user=alice, token=token)


def test_a_request_notification_names_the_kind_in_the_readers_language(live, alice, officer):
    from portal.models import Notification
    from portal.notifications import notification_text

    req = requests.drawdown_request(user=alice, facility_id=live.pk, amount="600000")
    requests.request_approve(actor=officer, request_id=req.pk)  # "Drawdown: done.", written while English is active
    note = Notification.objects.filter(user=alice, kind="servicing.request.executed").latest("id")
    assert notification_text(note, language="en")[1] == "Drawdown: done."
    zh = " ".join(notification_text(note, language="zh-hant"))
    assert "Drawdown" not in zh and "提款" in zh, zh


@pytest.mark.parametrize("amount", ["1.234", "0.025", "2.999"])
def test_an_amount_with_more_than_two_decimal_places_is_refused_not_rounded(client, live, alice, officer, amount):
    """The web forms paid HK$1.23, 0.02 (half-even) and 3.00 for these; the API refused them. Now every servicing
    service refuses them, with a clear message, and nothing changes."""
    client.force_login(alice)
    for action in ("drawdown", "repayment"):
        page = client.post(f"/servicing/facilities/{live.pk}/requests/", {"action": action, "amount": amount}, follow=True).content.decode()
        assert "more than 2 decimal places" in page, action
    with pytest.raises(PortalError, match="more than 2 decimal places"):
        requests.staff_instruction(actor=officer, facility_id=live.pk, kind="drawdown", amount=amount)
    assert not ServicingRequest.objects.exists() and not FacilityTransaction.objects.exists()
    assert requests.drawdown_request(user=alice, facility_id=live.pk, amount="1.20").amount == Decimal("1.20")  # trailing zeros are fine


def test_a_suspended_facility_takes_repayments_and_top_ups_but_no_drawdown_or_release(client, api_client, book, facts, alice):
    """The suspension notice says the client may repay, add collateral and read statements: the requests page offers
    no drawdown or release form there, and a release request is refused (409) with nothing recorded."""
    from lending.risk.revaluation import revalue_book

    suspended = make_facility(alice, state="suspended", **MIXED)
    revalue_book()
    client.force_login(alice)
    page = client.get(f"/servicing/facilities/{suspended.pk}/requests/").content.decode()
    assert 'data-testid="facility-suspended"' in page
    assert not any(f'name="action" value="{a}"' in page for a in ("drawdown", "release"))
    assert all(f'name="action" value="{a}"' in page for a in ("repayment", "top_up"))
    position = suspended.positions.get(asset="BTC")
    api_client.force_login(alice)
    response = api_client.post(f"/api/v1/servicing/facilities/{suspended.pk}/release-requests/",
                               {"position_id": position.pk, "quantity": "0.1"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "facility_suspended"
    with pytest.raises(ConflictError, match="suspended"):
        requests.release_request(user=alice, facility_id=suspended.pk, position_id=position.pk, quantity="0.1")
    assert not ServicingRequest.objects.exists()
