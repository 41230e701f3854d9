"""What the request pages print: each request by what it is for."""

from __future__ import annotations

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
