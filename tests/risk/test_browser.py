"""Issue 6 "Done when", in a browser: an officer stress-tests the book and acts on a margin call that a price
move opened; a credit manager (not the proposer) approves the waiver; the client sees the call."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.helpers import browser_sign_in

from .conftest import make_facility, set_prices

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _new_page(page):
    context = page.context.browser.new_context(base_url=page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2], locale="en-GB")
    context.set_default_timeout(15_000)
    return context.new_page()


def test_officer_stress_tests_and_acts_on_a_call_credit_manager_waives_it_client_sees_it(page, book, alice, officer, credit_manager):
    from lending.risk.models import CallState, MarginCall
    from lending.risk.revaluation import revalue_book

    # Securities 10,000,000 at 30% + 2 BTC at 60% + 10 ETH at 65%: lending value 7,702,500; drawn 7,600,000 → 98.7%, watch.
    facility = make_facility(alice, drawn="7600000", securities=(("10000000", "0.30"),), btc="2", eth="10", officer=officer)
    healthy = make_facility(alice, drawn="100000", securities=(("10000000", "0.30"),))
    revalue_book()

    # 1. The officer opens the risk board and runs the BTC −50% preset.
    browser_sign_in(page, officer)
    page.goto("/risk/board/")
    assert page.locator("h1").first.text_content().strip()
    page.goto("/risk/stress/")
    page.click("a[href='?preset=va_crash']")  # BTC −50%, ETH −60%
    page.wait_for_selector("[data-testid=stress-facilities]")
    table = page.text_content("[data-testid=stress-facilities]")
    assert facility.reference in table and healthy.reference not in table

    # 2. A price move (through the services) pushes the facility into margin call.
    set_prices(btc=Decimal("600000"), eth=Decimal("24000"))  # lending value 7,564,000: utilisation 100.5%
    revalue_book()
    call = MarginCall.objects.get(facility=facility)
    assert call.state == CallState.OPEN

    # 3. The client sees the call, its amount and deadline, on their facility page.
    client_page = _new_page(page)
    browser_sign_in(client_page, alice)
    client_page.goto(f"/risk/facility/{facility.pk}/")
    notice = client_page.text_content("[data-testid=facility-risk]")
    assert call.reference in notice and f"{call.shortfall:,}" in notice

    # 4. The officer escalates the call and proposes a waiver (the maker) …
    page.goto("/risk/margin-calls/")
    page.click(f"text={call.reference}")
    page.fill("#id_esc", "Client is travelling; top-up promised for Monday")
    page.click("text=Escalate to a credit manager")
    page.wait_for_selector("[data-testid=call-state]:has-text('Escalated')")
    page.check("input[name=resolution][value=waive]")
    page.fill("#id_prop", "Long-standing client; securities top-up confirmed by the custodian")
    page.click("[data-testid=propose]")
    page.wait_for_selector("text=a credit manager other than you must approve it")
    assert page.locator("[data-testid=approve]").count() == 0  # an officer cannot approve

    # … and a credit manager approves it (the checker).
    manager_page = _new_page(page)
    browser_sign_in(manager_page, credit_manager)
    manager_page.goto(f"/risk/margin-calls/{call.pk}/")
    manager_page.fill("#id_dec", "Waiver approved for two days")
    manager_page.click("[data-testid=approve]")
    manager_page.wait_for_selector("[data-testid=call-state]:has-text('Waived')")
    call = MarginCall.objects.get(pk=call.pk)
    assert call.state == CallState.WAIVED and call.proposed_by_id == officer.pk and call.resolved_by_id == credit_manager.pk
