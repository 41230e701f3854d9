"""In a browser: the client's margin-call page follows the market without a reload, and says when the market met the call."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.helpers import browser_sign_in

from .conftest import make_facility, set_prices

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_clients_call_page_updates_live_when_the_price_moves(page, book, alice, officer):
    from playwright.sync_api import expect

    from lending.risk import views
    from lending.risk.models import CallState, MarginCall
    from lending.risk.revaluation import revalue_book

    # Securities 10,000,000 at 30% + 2 BTC at 60% + 10 ETH at 65%: lending value 7,702,500; drawn 8,000,000 → 103.86%.
    facility = make_facility(alice, drawn="8000000", securities=(("10000000", "0.30"),), btc="2", eth="10", officer=officer)
    revalue_book()
    call = MarginCall.objects.get(facility=facility)
    assert views.selectors.LIVE_POLL_MS == 5000

    browser_sign_in(page, alice)
    page.goto(f"/risk/calls/{call.pk}/")
    banner = page.locator("[data-testid=call-banner]")
    assert banner.locator("[data-testid=call-utilisation]").text_content() == "103.86%"
    assert banner.locator("[data-testid=call-repay]").text_content() == "HK$297,500.00"
    assert "left" in banner.locator("[data-testid=countdown]").text_content()
    page.evaluate("window.__notReloaded = true")

    # The price authority takes a new BTC quote; the engine revalues the book (a whole-book tick).
    set_prices(btc=Decimal("900000"))  # lending value 7,814,500: 102.37%, repay 185,500
    revalue_book()
    expect(banner.locator("[data-testid=call-utilisation]")).to_have_text("102.37%", timeout=20_000)
    assert banner.locator("[data-testid=call-repay]").text_content() == "HK$185,500.00"
    assert page.locator("[data-testid=risk-utilisation] [data-live=utilisation]").text_content() == "102.37%"
    assert page.evaluate("window.__notReloaded") is True  # no reload: the same document

    # The market recovers: the engine meets the call, and the page says so.
    set_prices(btc=Decimal("1200000"))
    revalue_book()
    assert MarginCall.objects.get(pk=call.pk).state == CallState.MET
    expect(banner.locator("[data-live-show=met]")).to_be_visible(timeout=20_000)
    assert page.evaluate("window.__notReloaded") is True
