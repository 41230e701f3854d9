"""A reference price's source reads in the reader's language on the prices page: the price authority stores it in
English ('median of 3 sources', 'override PO-…'), the record the API and the admin keep."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from lending.models import CurrentPrice
from lending.risk import services
from portal.audit import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(db):
    from tests.helpers import make_user

    return make_user("credit_manager", email="wing@example.com", language="zh-hant")


def _reference_row(client, user, asset: str) -> str:
    client.force_login(user)
    response = client.get("/risk/prices/")
    assert response.status_code == 200
    page = response.content.decode()
    table = page[page.index('data-testid="reference"'):]
    table = table[:table.index("</table>")]
    return table[table.index(f"<tr><td>{asset}</td>"):][:600].split("</tr>")[0]


def test_the_median_source_reads_in_chinese_and_the_api_keeps_the_record(client, api_client, book, sources, reader, officer):
    for code, price in (("alpha", "760000"), ("beta", "761000"), ("gamma", "759000")):
        services.quote_record(actor=SYSTEM, source_code=code, asset="BTC", price_hkd=price)
    services.quote_record(actor=SYSTEM, source_code="alpha", asset="ETH", price_hkd="27000")
    assert CurrentPrice.objects.get(asset="BTC").source == "median of 3 sources"
    assert CurrentPrice.objects.get(asset="ETH").source == "median of 1 source"
    assert "<td>3 個來源的中位數</td>" in _reference_row(client, reader, "BTC")
    assert "<td>1 個來源的中位數</td>" in _reference_row(client, reader, "ETH")
    assert "<td>median of 3 sources</td>" in _reference_row(client, officer, "BTC")
    assert "<td>median of 1 source</td>" in _reference_row(client, officer, "ETH")
    api_client.force_authenticate(reader)
    sources_by_asset = {row["asset"]: row["source"] for row in api_client.get("/api/v1/lending/prices/current/").json()}
    assert sources_by_asset["BTC"] == "median of 3 sources"


def test_an_override_source_reads_in_chinese(client, book, sources, reader, officer, credit_manager, credit_manager2):
    services.quote_record(actor=SYSTEM, source_code="alpha", asset="BTC", price_hkd="760000")
    proposed = services.override_propose(actor=credit_manager, asset="BTC", price_hkd="740000", expires_at=timezone.now() + timedelta(hours=1),
                                         reason="Exchange outage; OTC desk print")
    override = services.override_decide(actor=credit_manager2, override_id=proposed.pk, approve=True, note="Seen the prints")
    assert CurrentPrice.objects.get(asset="BTC").source == f"override {override.reference}"
    assert f"<td>人手覆蓋 {override.reference}</td>" in _reference_row(client, reader, "BTC")
    assert f"<td>override {override.reference}</td>" in _reference_row(client, officer, "BTC")


def test_a_source_stored_in_another_form_is_shown_as_it_is(client, book, reader):
    CurrentPrice.objects.filter(asset="BTC").update(source="Bloomberg BGN close")
    assert "<td>Bloomberg BGN close</td>" in _reference_row(client, reader, "BTC")


def test_lendings_prices_page_reads_the_source_in_chinese_too(client, book, sources, reader):
    """The desk's price page (/lending/staff/prices/) shows the same current prices and their history: its source column
    printed the stored English."""
    for code, price in (("alpha", "760000"), ("beta", "761000"), ("gamma", "759000")):
        services.quote_record(actor=SYSTEM, source_code=code, asset="BTC", price_hkd=price)
    client.force_login(reader)
    page = client.get("/lending/staff/prices/").content.decode()
    assert "<td>3 個來源的中位數</td>" in page and "median of" not in page
