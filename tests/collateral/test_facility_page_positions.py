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


def test_the_client_facility_api_values_the_facility_at_current_prices_as_the_page_does(client, policy, alice):
    """The engine stores a facility's valuation when its band changes; between, prices move. The API answers what
    the page shows (lending.selectors.facility_valued_now), not the stored figures."""
    from rest_framework.test import APIClient

    set_prices({"BTC": Decimal("760000.00"), "ETH": Decimal("27000.00"), "00005": Decimal("80.00")})
    facility = book_facility(alice, holdings={"00005": 30000}, drawn="500000")
    set_prices({"00005": Decimal("78.00")})  # no band changes: nothing stored
    api = APIClient()
    api.force_authenticate(alice)
    detail = api.get(f"/api/v1/lending/facilities/{facility.pk}/").json()
    listed = api.get("/api/v1/lending/facilities/").json()["results"][0]
    client.force_login(alice)
    page = client.get(f"/lending/facilities/{facility.pk}/").content.decode()
    for answer in (detail, listed):
        assert Decimal(answer["market_value"]) == Decimal("2340000.00")
        assert Decimal(answer["positions"][0]["market_value"]) == Decimal("2340000.00")
        assert f"{Decimal(answer['lending_value']):,}" in page
    assert detail["valued_at"] > listed["accepted_at"]  # valued now, not when the band last changed


def test_a_fully_drawn_facility_page_shows_nothing_available_to_the_cent(client, alice, policy):
    set_prices({"BTC": Decimal("760000.00"), "ETH": Decimal("27000.00"), "00700": Decimal("400.00")})
    facility = book_facility(alice, holdings={"00700": 1000}, drawn="280000")  # LV 280,000: all of it drawn
    client.force_login(alice)
    html = client.get(f"/lending/facilities/{facility.pk}/").content.decode()
    assert 'data-testid="facility-available">HK$0.00<' in html
    assert 'data-testid="total-available">HK$0.00<' in client.get("/dashboard/").content.decode()


def test_the_staff_facility_api_values_the_facility_at_current_prices_as_the_staff_page_does(client, policy, alice, credit_manager):
    """The officer's facility page values the facility now (facility_valued_now); its API answered the figures stored
    when the band last changed, so an officer's tool and page disagreed after any price move."""
    set_prices({"BTC": Decimal("760000.00"), "ETH": Decimal("27000.00"), "00005": Decimal("80.00")})
    facility = book_facility(alice, holdings={"00005": 30000}, drawn="500000")
    set_prices({"00005": Decimal("78.00")})  # no band changes: nothing stored
    client.force_login(credit_manager)  # staff use the API on their MFA-verified session
    answer = client.get(f"/api/v1/lending/staff/facilities/{facility.pk}/")
    assert answer.status_code == 200, answer.content
    detail = answer.json()
    page = client.get(f"/lending/staff/facilities/{facility.pk}/").content.decode()
    assert Decimal(detail["market_value"]) == Decimal("2340000.00")
    assert Decimal(detail["positions"][0]["market_value"]) == Decimal("2340000.00")
    assert f"{Decimal(detail['lending_value']):,}" in page


def test_a_facility_api_names_each_holding_by_its_instrument_code(policy, alice):
    """A securities line's ``asset`` is blank (it is for BTC/ETH); a program reading the API could not tell which stock a
    position is except by its English name."""
    from rest_framework.test import APIClient

    set_prices({"BTC": Decimal("760000.00"), "ETH": Decimal("27000.00"), "00005": Decimal("80.00")})
    facility = book_facility(alice, holdings={"00005": 30000, "BTC": "0.5"})
    api = APIClient()
    api.force_authenticate(alice)
    positions = api.get(f"/api/v1/lending/facilities/{facility.pk}/").json()["positions"]
    assert [(p["instrument"], p["price"]) for p in positions] == [("00005", "80.00"), ("BTC", "760000.00")]


def test_each_pledged_holding_shows_its_price_and_own_lending_value_on_the_page_and_the_api(client, policy, alice):
    """A client reading the facility saw each holding's market value and haircut but had to work out its price and what it
    lends; the API gave no lending value per position either."""
    from rest_framework.test import APIClient

    from lending.collateral.selectors import haircuts_by_code

    set_prices({"BTC": Decimal("760000.00"), "ETH": Decimal("27000.00"), "00005": Decimal("80.35")})
    facility = book_facility(alice, holdings={"00005": 30000, "BTC": "0.5"})
    cut = haircuts_by_code(policy=policy)["00005"]
    client.force_login(alice)
    page = client.get(f"/lending/facilities/{facility.pk}/").content.decode()
    table = page.split('data-testid="positions"')[1].split("</table>")[0]
    hsbc = next(row for row in table.split("<tr>") if "00005" in row)
    own = (Decimal("2410500.00") * (1 - cut)).quantize(Decimal("0.01"))
    assert ">80.35<" in hsbc and ">2,410,500.00<" in hsbc and f">{own:,}<" in hsbc
    api = APIClient()
    api.force_authenticate(alice)
    lines = {p["instrument"]: p for p in api.get(f"/api/v1/lending/facilities/{facility.pk}/").json()["positions"]}
    assert Decimal(lines["00005"]["lending_value"]) == own and Decimal(lines["BTC"]["lending_value"]) == Decimal("152000.00")
