"""The client's holdings page (and an officer's view of it): held, pledged, free, valued at the policy in force, and the
custody ledger's movements; the client's own only, query count pinned."""

from decimal import Decimal

import pytest

pytestmark = pytest.mark.django_db
URL = "/lending/holdings/"


def _pledge(user, code, quantity):
    from lending.collateral.custody import custody_pledge
    from lending.collateral.models import Instrument

    return custody_pledge(client_id=user.pk, instrument_id=Instrument.objects.get(code=code).pk, quantity=quantity, facility_id=None, actor=user)


def test_a_client_sees_what_is_held_pledged_and_free_and_every_movement(client, eligible_client):
    _pledge(eligible_client, "00005", "250000")
    client.force_login(eligible_client)
    page = client.get(URL).content.decode()
    table = page.split('data-testid="holdings"')[1].split("</table>")[0]
    hsbc = next(row for row in table.split("<tr>") if "00005" in row)
    assert ">1,000,000<" in hsbc and ">250,000<" in hsbc and ">750,000<" in hsbc
    ledger = page.split('data-testid="custody-entries"')[1].split("</table>")[0]
    assert ledger.count("<tr>") == 1 + 5 + 1  # the header, five holdings reported, one pledge
    assert "Pledged to a facility" in ledger and "Holding reported by the back office" in ledger
    assert 'data-testid="holdings-link"' in client.get("/lending/").content.decode()


def test_the_holdings_page_reads_in_traditional_chinese(client, eligible_client):
    eligible_client.preferred_language = "zh-hant"
    eligible_client.save(update_fields=["preferred_language"])
    client.force_login(eligible_client)
    page = client.get(URL, HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    for english in ("Your holdings", "Custody ledger", "Free to pledge", "Held after", "Holding reported by the back office"):
        assert english not in page, english


def test_an_officer_reads_a_clients_holdings_and_outsiders_are_refused(client, eligible_client, officer, charlie):
    _pledge(eligible_client, "00005", "1000")
    assert client.get(URL).status_code == 302
    staff_url = f"/lending/staff/clients/{eligible_client.pk}/holdings/"
    assert client.get(staff_url).status_code == 302
    client.force_login(charlie)  # another client: his own holdings (none), never alice's
    assert "00005" not in client.get(URL).content.decode()
    assert client.get(staff_url).status_code == 403
    client.force_login(officer)
    assert client.get(URL).status_code == 403
    page = client.get(staff_url).content.decode()
    assert "00005" in page and (eligible_client.full_name or eligible_client.email) in page
    assert client.get(f"/lending/staff/clients/{officer.pk}/holdings/").status_code == 404  # staff have no custody
    assert client.get(f"{staff_url}?page=x").status_code == 400


@pytest.mark.parametrize("more", [0, 4])
def test_the_holdings_page_query_count_does_not_grow(client, eligible_client, more):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from lending.collateral import services as collateral
    from lending.collateral.models import Instrument

    for instrument in Instrument.objects.filter(kind="security").exclude(code__in=["00005", "00004", "00303"]).order_by("code")[:more]:
        collateral.holding_set(client_id=eligible_client.pk, instrument=instrument, quantity=Decimal(1000))
        _pledge(eligible_client, instrument.code, "10")
    client.force_login(eligible_client)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(URL).status_code == 200
    assert len(ctx.captured_queries) == EXPECTED, [q["sql"][:90] for q in ctx.captured_queries]


# session, user, groups; the policy and prices; the marginable list's haircuts; the custody balances with their instruments;
# the ledger page (count, rows with instrument and batch); the unread notifications badge
EXPECTED = 10


def test_a_ledger_movement_links_its_facility_where_the_reader_may_open_it_and_names_who_made_it(client, eligible_client, officer):
    from lending.collateral.custody import custody_pledge
    from lending.collateral.models import Instrument
    from tests.collateral.conftest import book_facility

    facility = book_facility(eligible_client, holdings={"00005": 1000})
    custody_pledge(client_id=eligible_client.pk, instrument_id=Instrument.objects.get(code="00005").pk, quantity="1000",
                   facility_id=facility.pk, actor=eligible_client)
    client.force_login(eligible_client)
    ledger = client.get(URL).content.decode().split('data-testid="custody-entries"')[1].split("</table>")[0]
    pledge = next(row for row in ledger.split("<tr>") if "Pledged to a facility" in row)
    assert f'<a href="/lending/facilities/{facility.pk}/">{facility.reference}</a>' in pledge and ">You<" in pledge
    client.force_login(officer)
    ledger = client.get(f"/lending/staff/clients/{eligible_client.pk}/holdings/").content.decode().split('data-testid="custody-entries"')[1]
    pledge = next(row for row in ledger.split("<tr>") if "Pledged to a facility" in row)
    assert f'<a href="/lending/staff/facilities/{facility.pk}/">{facility.reference}</a>' in pledge and eligible_client.email in pledge
