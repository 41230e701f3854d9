"""What the request pages print: each request by what it is for, the facility valued at current prices, money to the cent."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from lending.servicing import requests
from tests.servicing.conftest import make_facility

pytestmark = pytest.mark.django_db


@pytest.fixture
def live(alice, book, facts):
    from lending.risk.revaluation import revalue_book

    facility = make_facility(alice, securities=(("10000000", "0.30"),), btc="2")
    revalue_book()
    return facility


def _open_row(page: str, reference: str) -> str:
    table = page.split('data-testid="open-requests"')[1].split("</table>")[0]
    return next(row for row in table.split("<tr>") if reference in row)


def test_the_staff_list_shows_a_request_without_an_amount_by_what_it_is_for(client, live, alice, officer):
    from tests.lending.conftest import give_holdings

    give_holdings(alice)  # ETH in custody to pledge
    top_up = requests.top_up_request(user=alice, facility_id=live.pk, collateral_kind="virtual_asset", asset="ETH", quantity="1.5",
                                     custody_reference="C")
    assert top_up.amount is None and top_up.value_hkd is None
    client.force_login(officer)
    page = client.get("/servicing/staff/requests/").content.decode()
    row = _open_row(page, top_up.reference)
    assert "None" not in row
    assert "1.5 ETH" in row


def test_the_staff_list_shows_a_dash_for_a_request_with_nothing_to_name(client, live, alice, officer):
    from lending.servicing.models import ServicingRequest

    bare = ServicingRequest.objects.create(facility=live, client=alice, kind="top_up", origin="client", requested_by=alice)
    client.force_login(officer)
    row = _open_row(client.get("/servicing/staff/requests/").content.decode(), bare.reference)
    assert "None" not in row and '<td class="num">—</td>' in row


def test_the_requests_page_shows_the_facility_valued_at_current_prices(client, live, alice, officer2):
    """The engine stores a valuation only when the band changes; a price move between leaves the stored figures
    behind. The page answers what lending.selectors.facility_valued_now says, as the facility page does."""
    from lending import selectors as lending_selectors
    from lending.models import Facility
    from tests.lending.conftest import set_prices

    requests.staff_instruction(actor=officer2, facility_id=live.pk, kind="drawdown", amount="1000000")
    set_prices(btc=Decimal("700000.00"))  # BTC down: no band changes, nothing stored
    stored = Facility.objects.get(pk=live.pk)
    now = Facility.objects.get(pk=live.pk)
    lending_selectors.facility_valued_now(facility=now)
    assert now.lending_value != stored.lending_value and now.band == stored.band  # the stored figures are stale
    client.force_login(alice)
    page = client.get(f"/servicing/facilities/{live.pk}/requests/").content.decode()
    available = re.search(r'data-testid="available">([^<]*)<', page).group(1)
    assert available == f"HK${now.available:,}" != f"HK${stored.available:,}"
    assert available in client.get(f"/lending/facilities/{live.pk}/").content.decode()


def test_money_on_the_requests_pages_is_shown_to_the_cent(client, live, alice, officer):
    """Nothing left to draw is HK$0.00, as every other sum on the page reads (not HK$0)."""
    from lending.models import Facility

    Facility.objects.filter(pk=live.pk).update(drawn_balance=Decimal("99999999.50"))  # above the lending value
    client.force_login(alice)
    page = client.get(f"/servicing/facilities/{live.pk}/requests/").content.decode()
    assert 'data-testid="available">HK$0.00<' in page
    assert "HK$99,999,999.50" in page
    notice = requests.repayment_notice(user=alice, facility_id=live.pk, amount="1234.5")
    client.force_login(officer)
    assert "HK$1,234.50" in _open_row(client.get("/servicing/staff/requests/").content.decode(), notice.reference)


def test_a_drawdown_above_what_is_left_names_both_sums_to_the_cent(live, alice):
    from lending.models import Facility
    from portal.errors import PortalError

    Facility.objects.filter(pk=live.pk).update(drawn_balance=Decimal("99999999.50"))  # above the lending value: nothing left
    with pytest.raises(PortalError) as refused:
        requests.drawdown_request(user=alice, facility_id=live.pk, amount="10")
    assert refused.value.code == "above_available"
    assert "HK$10.00 is above the available HK$0.00" in refused.value.message
