"""A facility page asks for live figures only while the engine values the facility: a closed facility has
none (the live endpoint answers 404 for it), so its page must not poll that endpoint every five seconds."""

from __future__ import annotations

import pytest
from django.utils import timezone

from lending.models import Facility

from .conftest import make_facility

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("state", ["active", "suspended", "closed"])
def test_a_facility_page_polls_live_figures_only_while_the_facility_is_valued(client, book, alice, officer, state):
    facility = make_facility(alice, officer=officer, state="suspended" if state == "suspended" else "active")
    if state == "closed":
        Facility.objects.filter(pk=facility.pk).update(state="closed", closed_at=timezone.now())
    live = f"/risk/facility/{facility.pk}/live/"
    for user, page in [(alice, f"/lending/facilities/{facility.pk}/"), (officer, f"/lending/staff/facilities/{facility.pk}/")]:
        client.force_login(user)
        response = client.get(page)
        assert response.status_code == 200, page
        polled = f'data-live-url="{live}"' in response.content.decode()
        assert polled == (client.get(live).status_code == 200) == (state != "closed"), (page, state)


def test_a_closed_facility_offers_nothing_to_draw_and_no_drawdown_form(client, book, alice, officer):
    from django.utils import translation

    facility = make_facility(alice, officer=officer)
    closed_on = timezone.localdate()
    Facility.objects.filter(pk=facility.pk).update(state="closed", closed_at=timezone.now())
    client.force_login(alice)
    page = client.get(f"/lending/facilities/{facility.pk}/").content.decode()
    assert f"Nothing: the facility was closed on {closed_on:%Y-%m-%d}." in page
    assert 'data-testid="next-posting">—<' in page  # no interest is charged to a closed facility
    client.force_login(officer)
    staff = client.get(f"/lending/staff/facilities/{facility.pk}/").content.decode()
    assert 'value="drawdown"' not in staff and "Nothing: the facility was closed" in staff
    with translation.override("zh-hant"):
        from django.utils.translation import gettext

        assert gettext("Nothing: the facility was closed on %(day)s.") == "無：融資額度已於 %(day)s 終止。"
    # An open facility still has both.
    open_facility = make_facility(alice, officer=officer)
    assert 'value="drawdown"' in client.get(f"/lending/staff/facilities/{open_facility.pk}/").content.decode()
    client.force_login(alice)
    assert 'data-testid="next-posting">—<' not in client.get(f"/lending/facilities/{open_facility.pk}/").content.decode()


@pytest.mark.parametrize("state", ["closed", "suspended"])
def test_the_api_gives_a_closed_or_suspended_facility_nothing_available(client, book, alice, officer, state):
    """A suspended facility refuses drawdowns (its page says nothing can be drawn): the API said HK$888,000.00."""
    facility = make_facility(alice, officer=officer)
    Facility.objects.filter(pk=facility.pk).update(state=state, closed_at=timezone.now() if state == "closed" else None, lending_value=7000000)
    client.force_login(alice)
    assert client.get(f"/api/v1/lending/facilities/{facility.pk}/").json()["available"] == "0.00"
    client.force_login(officer)
    assert client.get(f"/api/v1/lending/staff/facilities/{facility.pk}/").json()["available"] == "0.00"


def test_a_closed_facilitys_requests_page_offers_no_request_and_says_why(client, book, alice, officer):
    from django.utils import translation
    from django.utils.translation import gettext

    facility = make_facility(alice, officer=officer)
    Facility.objects.filter(pk=facility.pk).update(state="closed", closed_at=timezone.now())
    client.force_login(alice)
    page = client.get(f"/servicing/facilities/{facility.pk}/requests/").content.decode()
    assert 'data-testid="facility-closed"' in page
    assert not any(f'name="action" value="{a}"' in page for a in ("drawdown", "repayment", "top_up", "release"))
    open_page = client.get(f"/servicing/facilities/{make_facility(alice, officer=officer).pk}/requests/").content.decode()
    assert all(f'name="action" value="{a}"' in open_page for a in ("drawdown", "repayment", "top_up", "release"))
    with translation.override("zh-hant"):
        assert "終止" in gettext("The facility was closed on %(day)s: no drawdown, repayment, top-up or release can be asked for on it. "
                                 "Your earlier requests are below.")


def test_the_risk_figures_round_half_cents_up_as_the_positions_do(book, alice):
    """0.5 BTC at HK$735,682.25 is HK$367,841.125: the risk panel said 367,841.12 (half to even) beside the position's
    367,841.13 (lending.valuation.money, half up) on the same page."""
    from decimal import Decimal

    from lending.risk import selectors as risk_selectors
    from lending.risk.revaluation import revalue_book

    from .conftest import set_prices

    facility = make_facility(alice, btc="0.5", securities=(("1000000", "0.30"),))
    set_prices(btc=Decimal("735682.25"))
    revalue_book()
    risk = risk_selectors.facility_risk(facility_id=facility.pk)
    assert risk["btc_market_value"] == Decimal("367841.13")
