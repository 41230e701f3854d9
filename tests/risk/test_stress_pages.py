"""What a credit manager reads on the stress pages: shocks as percentages, the way the policy page takes them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lending.risk import services

from .conftest import make_facility

pytestmark = pytest.mark.django_db


def _read(client, path: str, user) -> str:
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("value,text", [
    (Decimal("-0.5000"), "-50%"), ("-0.2000", "-20%"), (Decimal("-0.125"), "-12.5%"), (Decimal("-0.1234"), "-12.34%"),
    (Decimal("0.1000"), "+10%"), (Decimal("0.0000"), "0%"), (Decimal("-1"), "-100%"), (None, ""), ("", ""),
])
def test_a_shock_reads_as_a_percentage_to_the_places_it_needs(value, text):
    from lending.risk.templatetags.risk_tags import shock

    assert shock(value) == text


def test_stored_stress_reports_show_their_shocks_as_percentages(client, book, alice, officer):
    make_facility(alice, drawn="6000000", securities=(("10000000", "0.30"),), btc="2", eth="10")
    report = services.stress_report_store(actor=officer, btc_shock=Decimal("-0.5"), eth_shock=Decimal("-0.125"), securities_shock=Decimal("-0.2"))
    listing = _read(client, "/risk/stress/reports/", officer)
    assert "<td>-50% / -12.5% / -20%</td>" in listing and "-0.5000" not in listing
    page = _read(client, f"/risk/stress/reports/{report.pk}/", officer)
    assert "BTC -50%, ETH -12.5%, securities -20%." in page
    by_asset = page[page.index("Exposure by collateral asset"):page.index("Exposure by client")]
    assert '<td class="num">-20%</td>' in by_asset and '<td class="num">-50%</td>' in by_asset and '<td class="num">-12.5%</td>' in by_asset
    assert "-0.5000" not in page and "-0.2000" not in page and "-0.1250" not in page


def test_a_stress_run_shows_its_shocks_as_percentages(client, book, alice, officer):
    make_facility(alice, drawn="6000000", securities=(("10000000", "0.30"),), btc="2", eth="10")
    client.force_login(officer)
    page = client.post("/risk/stress/", {"btc": "-50", "eth": "-60", "securities": "-30"}).content.decode()
    by_asset = page[page.index("Exposure by collateral asset"):page.index("Exposure by client")]
    assert '<td class="num">-50%</td>' in by_asset and '<td class="num">-60%</td>' in by_asset and '<td class="num">-30%</td>' in by_asset


def test_stored_stress_reports_show_their_shortfall_to_the_cent_grouped(client, book, alice, officer):
    make_facility(alice, drawn="6000000", securities=(("10000000", "0.30"),), btc="2", eth="10")
    report = services.stress_report_store(actor=officer, btc_shock=Decimal("-0.5"), eth_shock=Decimal("-0.6"), securities_shock=Decimal("-0.3"))
    assert Decimal(str(report.result["summary"]["shortfall"])) == Decimal("758200.00")
    listing = _read(client, "/risk/stress/reports/", officer)
    assert '<td class="num">758,200.00</td>' in listing
