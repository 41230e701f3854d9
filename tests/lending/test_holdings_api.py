"""The client's holdings to pledge, through the API: what the application form offers (held, pledged, free, price, haircut,
lending value of what is free), the client's own only."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
URL = "/api/v1/lending/holdings/"


def test_a_client_reads_its_holdings_as_the_application_form_offers_them(eligible_client, client):
    from lending.collateral.custody import custody_pledge
    from lending.collateral.models import Instrument
    from lending.collateral.selectors import haircuts_by_code
    from lending.selectors import policy_current

    custody_pledge(client_id=eligible_client.pk, instrument_id=Instrument.objects.get(code="00005").pk, quantity="250000", facility_id=None,
                   actor=eligible_client)
    api = APIClient()
    api.force_authenticate(eligible_client)
    rows = {r["instrument"]: r for r in api.get(URL).json()}
    assert set(rows) == {"00005", "00004", "00303", "BTC", "ETH"}
    cut = haircuts_by_code(policy=policy_current())["00005"]
    hsbc = rows["00005"]
    assert (Decimal(hsbc["held"]), Decimal(hsbc["pledged"]), Decimal(hsbc["free"])) == (Decimal(1_000_000), Decimal(250_000), Decimal(750_000))
    assert Decimal(hsbc["price"]) == Decimal("100.00") and Decimal(hsbc["haircut"]) == cut and hsbc["fresh"] is True
    assert Decimal(hsbc["free_lending_value"]) == (Decimal(750_000) * 100 * (1 - cut)).quantize(Decimal("0.01"))
    assert rows["BTC"]["kind"] == "virtual_asset" and hsbc["kind"] == "securities" and hsbc["name"]
    client.force_login(eligible_client)
    form = client.get("/lending/apply/").content.decode()
    assert f"{Decimal(hsbc['free_lending_value']):,}" in form


def test_holdings_are_the_clients_own_and_refused_to_others(eligible_client, charlie, officer, client):
    api = APIClient()
    assert api.get(URL).status_code == 401
    api.force_authenticate(charlie)
    assert api.get(URL).json() == []
    client.force_login(officer)
    assert client.get(URL).status_code == 403


@pytest.mark.parametrize("more", [0, 4])
def test_the_holdings_query_count_does_not_grow_with_the_holdings(eligible_client, more):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from lending.collateral import services as collateral
    from lending.collateral.models import Instrument

    for instrument in Instrument.objects.filter(kind="security").exclude(code__in=["00005", "00004", "00303"]).order_by("code")[:more]:
        collateral.holding_set(client_id=eligible_client.pk, instrument=instrument, quantity=Decimal(1000))
    api = APIClient()
    api.force_authenticate(eligible_client)
    with CaptureQueriesContext(connection) as ctx:
        assert len(api.get(URL).json()) == 5 + more
    # the client's groups, the policy, the prices, the marginable list's haircuts, the custody balances
    assert len(ctx.captured_queries) == 5, [q["sql"][:80] for q in ctx.captured_queries]


def test_an_officer_reads_a_clients_holdings_and_no_one_else_does(eligible_client, charlie, officer, compliance_user, client):
    url = f"/api/v1/lending/staff/clients/{eligible_client.pk}/holdings/"
    assert APIClient().get(url).status_code in (401, 403)
    api = APIClient()
    api.force_authenticate(charlie)  # a client's token never reaches a staff endpoint
    assert api.get(url).status_code == 403
    client.force_login(compliance_user)  # staff without the facility permission
    assert client.get(url).status_code == 403
    client.force_login(officer)
    rows = {r["instrument"]: r for r in client.get(url).json()}
    assert set(rows) == {"00005", "00004", "00303", "BTC", "ETH"} and Decimal(rows["00005"]["held"]) == Decimal(1_000_000)
    assert client.get(f"/api/v1/lending/staff/clients/{officer.pk}/holdings/").status_code == 404  # staff hold no custody here
    assert client.get("/api/v1/lending/staff/clients/999999/holdings/").status_code == 404
