"""Pages name an instrument in the reader's language (Instrument.shown_name): the facility page, the application
page and the margin-call page named HSBC "HSBC Holdings" to a reader of Traditional Chinese, whose holdings
page already said 滙豐控股."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lending.collateral.models import Instrument
from tests.collateral.conftest import book_facility, set_prices

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(policy):
    set_prices({"BTC": Decimal("760000.00"), "ETH": Decimal("27000.00"), "00005": Decimal("80.00")})
    return policy


def test_the_facility_page_names_a_holding_in_the_readers_language(client, market, alice):
    hsbc = Instrument.objects.get(code="00005")
    assert hsbc.name_zh and hsbc.name_zh != hsbc.name_en
    facility = book_facility(alice, holdings={"00005": 1000})
    client.force_login(alice)
    english = client.get(f"/lending/facilities/{facility.pk}/").content.decode()
    assert f"00005 {hsbc.name_en}" in english
    client.post("/language/", {"language": "zh-hant", "next": "/"})
    chinese = client.get(f"/lending/facilities/{facility.pk}/").content.decode()
    assert f"00005 {hsbc.name_zh}" in chinese and f"00005 {hsbc.name_en}" not in chinese

