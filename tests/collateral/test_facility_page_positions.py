"""The facility page names each pledged holding as the client knows it and counts it as people read quantities."""

from decimal import Decimal

import pytest

from tests.collateral.conftest import book_facility, set_prices

pytestmark = pytest.mark.django_db


def test_the_facility_page_shows_a_holding_by_stock_code_and_name_with_its_quantity_grouped(client, policy, alice):
    set_prices({"BTC": Decimal("760000.00"), "ETH": Decimal("27000.00"), "00005": Decimal("80.00")})
    facility = book_facility(alice, holdings={"00005": 30000, "BTC": "0.5"})
    client.force_login(alice)
    page = client.get(f"/lending/facilities/{facility.pk}/").content.decode()
    table = page.split("Collateral positions")[1].split("</table>")[0]
    assert "00005 HSBC Holdings" in table and "()" not in table
    assert ">30,000<" in table and ">0.5<" in table and "30000.00000000" not in table
