"""The margin call from the client's side: met by the market, the cure figures, the live figure, the actions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import translation

from lending.risk.models import CallState, MarginCall
from lending.risk.revaluation import revalue_book
from portal.models import AuditEvent, Notification

from .conftest import make_facility, reload, set_prices

pytestmark = pytest.mark.django_db
HK = ZoneInfo("Asia/Hong_Kong")
MIXED = {"securities": (("10000000", "0.30"),), "btc": "2", "eth": "10"}  # lending value 7,702,500 at BTC 760,000


@pytest.fixture
def in_call(book, alice, officer, django_capture_on_commit_callbacks):
    facility = make_facility(alice, drawn="8000000", officer=officer, **MIXED)  # 1.0386
    with django_capture_on_commit_callbacks(execute=True):
        revalue_book()
    return reload(facility)


def _eligible(monkeypatch):
    from disclosures import selectors as disclosure_selectors
    from onboarding import selectors as onboarding_selectors

    monkeypatch.setattr(disclosure_selectors, "clients_with_outstanding", lambda **kw: set())
    monkeypatch.setattr(onboarding_selectors, "product_eligibility",
                        lambda *, user, product, **kw: onboarding_selectors.Eligibility(product=str(product), requirements=[]))


def test_a_call_cured_by_the_market_is_met_by_the_market_and_drawdowns_reopen(in_call, alice, officer, monkeypatch,
                                                                               django_capture_on_commit_callbacks):
    from lending.servicing import requests as servicing_requests

    _eligible(monkeypatch)
    call = MarginCall.objects.get(facility=in_call)
    assert servicing_requests.drawdown_blockers(facility=in_call)  # blocked while the call is open
    with django_capture_on_commit_callbacks(execute=True):
        set_prices(btc=Decimal("1200000"))  # LV 8,054,500: utilisation 0.9932, shortfall gone
        revalue_book()
    call = MarginCall.objects.get(pk=call.pk)
    assert call.state == CallState.MET and call.met_by == "market"
    facility = reload(in_call)
    assert not facility.has_open_margin_call and facility.band == "watch"
    assert servicing_requests.drawdown_blockers(facility=facility) == []
    met = AuditEvent.objects.get(object_type="risk.margincall", object_id=str(call.pk), action="risk.margin_call.met")
    assert met.after["met_by"] == "market" and met.actor_label == "system"
    told = Notification.objects.filter(user=alice, kind="risk.margin_call.met_by_market")
    assert told.count() == 1
    # Told once: a second run at the same prices sends nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        revalue_book()
    assert Notification.objects.filter(user=alice, kind__startswith="risk.margin_call.met").count() == 1


def test_the_beat_meets_calls_the_market_cured_too(in_call, monkeypatch):
    from lending.risk import services
    from lending.risk.revaluation import open_calls_refresh

    monkeypatch.setattr(services, "revalue_book", lambda **kw: None)  # the tick is missed: only the beat sees the recovery
    set_prices(btc=Decimal("1200000"))
    assert MarginCall.objects.get().state == CallState.OPEN
    refreshed, met = open_calls_refresh()
    assert met == 1 and MarginCall.objects.get().met_by == "market"
    assert not reload(in_call).has_open_margin_call


# --- what cures a call (lending.valuation) -----------------------------------------------------------


def test_the_cure_is_repay_the_shortfall_or_add_enough_lending_value_in_securities_btc_or_eth():
    from lending import valuation

    cure = valuation.cure(drawn=Decimal("8000000"), securities_lending_value=Decimal("7000000"), va_lending_value_uncapped=Decimal("702500"),
                          max_share=Decimal("0.40"), margin_call=Decimal("1.00"), prices={"BTC": Decimal("760000"), "ETH": Decimal("27000")},
                          haircuts={"BTC": Decimal("0.60"), "ETH": Decimal("0.65")})
    assert cure.repay == Decimal("297500.00") and cure.securities_lending_value == Decimal("297500.00")
    assert cure.btc_quantity == Decimal("0.97861843")  # 297,500 ÷ (760,000 × 0.40), rounded up
    assert cure.eth_quantity == Decimal("31.48148149")  # 297,500 ÷ (27,000 × 0.35), rounded up
    # Adding exactly that much bitcoin brings utilisation to the level (not above it).
    lv = valuation.lending_value(Decimal("7000000"), Decimal("702500") + cure.btc_quantity * Decimal("760000") * Decimal("0.4"), Decimal("0.40"))
    assert valuation.utilisation(drawn=Decimal("8000000"), lending_value=lv) <= Decimal("1.00")


def test_virtual_assets_alone_cannot_cure_a_call_the_va_cap_stops():
    from lending import valuation

    # Securities 1,000,000 of lending value: VA may add at most 666,666.67 (40% share); the target is 2,000,000.
    cure = valuation.cure(drawn=Decimal("2000000"), securities_lending_value=Decimal("1000000"), va_lending_value_uncapped=Decimal("800000"),
                          max_share=Decimal("0.40"), margin_call=Decimal("1.00"), prices={"BTC": Decimal("760000"), "ETH": Decimal("27000")},
                          haircuts={"BTC": Decimal("0.60"), "ETH": Decimal("0.65")})
    assert cure.btc_quantity is None and cure.eth_quantity is None
    # Securities raise the cap with them: 2,000,000 ÷ (1 + 2/3) = 1,200,000 of securities lending value in all.
    assert cure.securities_lending_value == Decimal("200000.00")
    assert cure.repay == Decimal("333333.33")  # 2,000,000 − 1,666,666.67


# --- one utilisation figure everywhere ----------------------------------------------------------------


def test_utilisation_is_shown_the_same_way_on_every_page(client, book, alice, officer):
    from lending.risk.templatetags.risk_tags import utilisation_text

    # 7,740,000 ÷ 7,702,500 = 1.0049: once shown as 100%, 100.5% and 101% on one page.
    facility = make_facility(alice, drawn="7740000", officer=officer, **MIXED)
    revalue_book()
    call = MarginCall.objects.get(facility=facility)
    assert utilisation_text(reload(facility).utilisation) == "100.49%"
    client.force_login(alice)
    pages = {url: client.get(url).content.decode() for url in ("/dashboard/", f"/lending/facilities/{facility.pk}/", f"/risk/calls/{call.pk}/",
                                                                 f"/risk/facility/{facility.pk}/")}
    client.force_login(officer)
    pages |= {url: client.get(url).content.decode() for url in ("/risk/board/", f"/lending/staff/facilities/{facility.pk}/",
                                                                  f"/risk/margin-calls/{call.pk}/")}
    for url, html in pages.items():
        assert "100.49%" in html, url
        assert "100.5%" not in html and "101%" not in html and ">100%<" not in html, url
    live = client.get(f"/risk/facility/{facility.pk}/live/").json()
    assert live["utilisation_text"] == "100.49%"


# --- the call on the client's pages ------------------------------------------------------------------


def test_the_call_shows_what_to_repay_or_add_by_when_in_hong_kong_time_and_whom_to_call(client, book, alice, officer, settings):
    import time_machine

    settings.MARGIN_DESK_PHONE = "+852 2111 2222"
    with time_machine.travel(datetime(2026, 1, 9, 10, 0, tzinfo=HK), tick=False):  # a Friday
        facility = make_facility(alice, drawn="8000000", officer=officer, **MIXED)
        revalue_book()
        call = MarginCall.objects.get(facility=facility)
        client.force_login(alice)
        for url in ("/dashboard/", f"/lending/facilities/{facility.pk}/", f"/risk/calls/{call.pk}/"):
            html = client.get(url).content.decode()
            assert "2026-01-13 23:59 Hong Kong time" in html, url  # two HK business days: Monday, Tuesday
            assert "4 d 13 h 59 min left" in html, url
            assert 'data-deadline="2026-01-13T23:59:59+08:00"' in html, url
            assert "HK$297,500.00" in html and "0.97861843" in html and "31.48148149" in html, url
            assert officer.email in html and "Bob Officer" in html and "+852 2111 2222" in html, url
    with time_machine.travel(datetime(2026, 1, 9, 10, 0, tzinfo=HK), tick=False), translation.override("zh-hant"):
        alice.preferred_language = "zh-hant"
        alice.save(update_fields=["preferred_language"])
        html = client.get(f"/risk/calls/{call.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert "2026-01-13 23:59" in html


def test_the_call_page_is_the_clients_own(client, book, alice, charlie, officer):
    facility = make_facility(alice, drawn="8000000", officer=officer, **MIXED)
    revalue_book()
    call = MarginCall.objects.get(facility=facility)
    client.force_login(charlie)
    assert client.get(f"/risk/calls/{call.pk}/").status_code == 404
    assert client.post(f"/risk/calls/{call.pk}/", {"action": "repayment", "amount": "297500"}).status_code == 404
    client.force_login(officer)
    assert client.get(f"/risk/calls/{call.pk}/").status_code == 403  # staff use the workbench's call page
    from lending.servicing.models import ServicingRequest

    assert not ServicingRequest.objects.exists()


def test_a_repayment_notice_from_the_call_is_tracked_until_the_back_office_confirms_it_and_the_call_is_met(
        client, in_call, alice, officer, django_capture_on_commit_callbacks):
    from lending.servicing import requests as servicing_requests
    from lending.servicing.models import RequestKind, ServicingRequest

    call = MarginCall.objects.get(facility=in_call)
    client.force_login(alice)
    response = client.post(f"/risk/calls/{call.pk}/", {"action": "repayment", "amount": "297500", "note": "HSBC ref 123"}, follow=True)
    html = response.content.decode()
    req = ServicingRequest.objects.get()
    assert req.kind == RequestKind.REPAYMENT and req.amount == Decimal("297500.00") and req.state == "requested"
    assert req.reference in html and "quoting " + req.reference in html  # the payment instructions, with its reference
    assert "Waiting for the back office to confirm" in html
    assert AuditEvent.objects.filter(object_type="risk.margincall", object_id=str(call.pk), action="risk.margin_call.repayment_notice").exists()
    assert MarginCall.objects.get(pk=call.pk).state == CallState.OPEN  # a notice is not money
    with django_capture_on_commit_callbacks(execute=True):
        servicing_requests.request_approve(actor=officer, request_id=req.pk, received_reference="BO-RCPT-1")
    call = MarginCall.objects.get(pk=call.pk)
    assert call.state == CallState.MET and call.met_by == "repayment"
    html = client.get(f"/risk/calls/{call.pk}/").content.decode()
    assert "Confirmed" in html and "BO-RCPT-1" in html and "by a repayment" in html


def test_a_top_up_request_from_the_call_is_tracked_and_meets_the_call_when_recorded(client, in_call, alice, officer):
    from lending.servicing import requests as servicing_requests
    from lending.servicing.models import ServicingRequest
    from tests.lending.conftest import give_holdings

    give_holdings(alice, btc="5")  # what the back office holds for her, free to pledge
    call = MarginCall.objects.get(facility=in_call)
    client.force_login(alice)
    assert "free 5 " in client.get(f"/risk/calls/{call.pk}/").content.decode() or "(free 5" in client.get(f"/risk/calls/{call.pk}/").content.decode()
    client.post(f"/risk/calls/{call.pk}/", {"action": "top_up", "instrument": "BTC", "quantity": "1", "custody_reference": "CUST-BTC-9"})
    req = ServicingRequest.objects.get()
    assert req.kind == "top_up" and req.quantity == Decimal("1.00000000")
    assert "Waiting for the back office to confirm" in client.get(f"/risk/calls/{call.pk}/").content.decode()
    servicing_requests.request_approve(actor=officer, request_id=req.pk)
    call = MarginCall.objects.get(pk=call.pk)
    assert call.state == CallState.MET and call.met_by == "top_up"


def test_bad_input_on_the_call_page_says_so_and_changes_nothing(client, in_call, alice):
    from lending.servicing.models import ServicingRequest

    call = MarginCall.objects.get(facility=in_call)
    client.force_login(alice)
    html = client.post(f"/risk/calls/{call.pk}/", {"action": "repayment", "amount": "-5"}, follow=True).content.decode()
    assert "messages" in html and not ServicingRequest.objects.exists()
    html = client.post(f"/risk/calls/{call.pk}/", {"action": "top_up", "instrument": "DOGE", "quantity": "1"}, follow=True).content.decode()
    assert "Choose a holding of your margin account, bitcoin or ether." in html and not ServicingRequest.objects.exists()
    html = client.post(f"/risk/calls/{call.pk}/", {"action": "top_up", "instrument": "BTC", "quantity": "1"}, follow=True).content.decode()
    assert "free to pledge" in html and not ServicingRequest.objects.exists()  # she holds no free bitcoin


def test_a_met_call_takes_no_more_notices(in_call, alice):
    from lending.risk import services
    from portal.errors import ConflictError

    set_prices(btc=Decimal("1200000"))
    call = MarginCall.objects.get(facility=in_call)
    assert call.state == CallState.MET
    with pytest.raises(ConflictError):
        services.margin_call_repayment_notice(user=alice, call_id=call.pk, amount="1000")


# --- the live figures ---------------------------------------------------------------------------------


def test_the_live_endpoint_is_for_the_owner_and_staff_who_may_see_the_facility(client, in_call, alice, charlie, officer, compliance_user, admin_user):
    url = f"/risk/facility/{in_call.pk}/live/"
    assert client.get(url).status_code == 302  # signed out: to the sign-in page
    client.force_login(alice)
    body = client.get(url).json()
    assert body["utilisation_text"] == "103.86%" and body["call"]["repay"] == "297,500.00" and body["call"]["btc"] == "0.97861843"
    client.force_login(charlie)
    assert client.get(url).status_code == 404
    client.force_login(admin_user)  # staff, but no page of theirs shows facilities
    assert client.get(url).status_code == 404
    for staff in (officer, compliance_user):
        client.force_login(staff)
        assert client.get(url).json()["utilisation_text"] == "103.86%"


def test_the_live_endpoint_runs_a_fixed_number_of_queries_and_follows_the_price(client, in_call, alice, charlie, django_assert_num_queries):
    url = f"/risk/facility/{in_call.pk}/live/"
    client.force_login(alice)
    client.get(url)
    # session, user, roles; policy, prices, the facility valued from its stored coefficients, its open call
    with django_assert_num_queries(7):
        before = client.get(url).json()
    for i in range(5):  # more facilities in the book, and more of hers, change nothing
        make_facility(charlie if i % 2 else alice, drawn="100000", **MIXED)
    set_prices(btc=Decimal("900000"))
    with django_assert_num_queries(7):
        after = client.get(url).json()
    assert before["utilisation_text"] != after["utilisation_text"]
    assert after["utilisation_text"] == "102.37%"  # 8,000,000 ÷ (7,000,000 + 2 × 900,000 × 0.4 + 94,500)


# --- the account on the dashboard -----------------------------------------------------------------------


def test_the_dashboard_leads_with_the_account(client, book, alice, officer):
    near = make_facility(alice, drawn="7740000", officer=officer, **MIXED)  # in call
    healthy = make_facility(alice, drawn="1000000", officer=officer, **MIXED)
    revalue_book()
    client.force_login(alice)
    html = client.get("/dashboard/").content.decode()
    assert html.index('id="panel-risk-facilities"') < html.index('id="panel-lending"')  # the call first, then the account
    assert html.index('id="panel-lending"') < html.index('id="panel-onboarding-checklist"') if 'id="panel-onboarding-checklist"' in html else True
    assert "HK$8,740,000.00" in html  # total drawn
    # Available: the healthy facility only (min(limit, LV) − drawn); none from the one in call.
    assert f'data-testid="total-available">HK${Decimal("6702500.00"):,}' in html
    assert 'data-testid="total-utilisation">56.73%' in html  # 8,740,000 ÷ 15,405,000 across both
    assert "Interest accrued, not yet charged" in html and "Next due" in html
    call = MarginCall.objects.get(facility=near)
    assert f"Margin call {call.reference}: respond by" in html
    assert healthy.reference in html


def test_a_suspended_facility_says_why_and_what_to_do_and_shows_no_available_amount(client, book, alice, officer, credit_manager):
    from lending import services as lending_services

    facility = make_facility(alice, drawn="1000000", officer=officer, **MIXED)
    lending_services.facility_suspend(actor=credit_manager, facility_id=facility.pk, reason="KYC refresh overdue since 1 November")
    client.force_login(alice)
    for url in ("/dashboard/", f"/lending/facilities/{facility.pk}/", "/lending/"):
        html = client.get(url).content.decode()
        assert "suspended" in html.lower(), url
        assert "6,702,500.00" not in html, url  # min(limit, lending value 7,702,500) − drawn 1,000,000
    for url in ("/dashboard/", f"/lending/facilities/{facility.pk}/"):
        html = client.get(url).content.decode()
        assert "KYC refresh overdue since 1 November" in html and "You can still repay, add collateral" in html and officer.email in html, url


def test_the_account_panel_costs_the_same_for_one_facility_or_many(rf, book, alice, officer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from lending import panels

    def cost():
        request = rf.get("/dashboard/")
        request.user = alice
        with CaptureQueriesContext(connection) as ctx:
            panels.client_panel(request)
        return len(ctx)

    make_facility(alice, drawn="7740000", officer=officer, **MIXED)
    revalue_book()
    one = cost()
    for _i in range(4):
        make_facility(alice, drawn="7740000", officer=officer, **MIXED)
    revalue_book()
    assert cost() == one


def test_the_call_page_offers_only_holdings_that_add_lending_value(client, in_call, alice):
    """Country Garden (02007, suspended, haircut 100%) was offered as a holding to pledge against the call: a top-up of it
    adds HK$0."""
    from django.db import transaction

    from lending.collateral import services as collateral
    from lending.collateral.models import Instrument
    from tests.lending.conftest import give_holdings

    give_holdings(alice, btc="5")
    suspended = Instrument.objects.get(code="02007")
    assert suspended.suspended
    with transaction.atomic():
        collateral.holding_set(client_id=alice.pk, instrument=suspended, quantity=Decimal("50000"))
    call = MarginCall.objects.get(facility=in_call)
    client.force_login(alice)
    page = client.get(f"/risk/calls/{call.pk}/").content.decode()
    assert 'value="BTC"' in page and 'value="02007"' not in page
