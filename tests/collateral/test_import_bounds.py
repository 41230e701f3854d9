"""Every number of every import kind is bounded by the column that keeps it: a per-line error, nothing applied."""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from lending.collateral import services
from lending.collateral.models import CustodyBalance, CustodyEntry, ImportBatch
from portal.audit import SYSTEM
from tests.collateral.conftest import positions_csv, statement_csv

pytestmark = pytest.mark.django_db


def _codes(result):
    return [(e["line"], e["field"], e["code"]) for e in result.batch.errors]


@pytest.mark.parametrize("quantity", ["1e30", "12345678901234567890", "10000000000000000"])
def test_a_quantity_larger_than_its_column_is_a_line_error_through_the_machine_api(api_client, machine_key, holdings, quantity):
    entries = CustodyEntry.objects.count()
    response = api_client.post("/api/v1/collateral/imports/positions_intraday/", {
        "batch_id": "P-HUGE-1", "as_of": "2026-03-02",
        "lines": [{"account": "M-1001", "instrument": "00005", "quantity": "2100"}, {"account": "M-1001", "instrument": "00700", "quantity": quantity}]},
        format="json", HTTP_AUTHORIZATION=f"Api-Key {machine_key.token}")
    assert response.status_code == 422, response.content
    batch = ImportBatch.objects.get(batch_id="P-HUGE-1")
    assert [(e["line"], e["field"], e["code"]) for e in batch.errors] == [(2, "quantity", "out_of_range")]
    assert CustodyEntry.objects.count() == entries
    assert CustodyBalance.objects.get(client__email="alice@example.com", instrument__code="00005").held == Decimal("2000")


def test_the_largest_quantity_the_database_keeps_exactly_is_applied_and_one_more_digit_is_refused(holdings):
    # numeric(24, 8) on PostgreSQL; on SQLite Django keeps 15 significant digits (a REAL), and a 16-digit
    # quantity would be stored as another number (9999999999999999 reads back as 1E16, over the column).
    largest, too_many = ("999999999999999", "9999999999999999") if connection.vendor == "sqlite" else ("9999999999999999", "10000000000000000")
    result = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("P-MAX", [("M-1001", "00005", largest)]))
    assert result.batch.status == "applied", result.batch.errors
    assert CustodyBalance.objects.get(client__email="alice@example.com", instrument__code="00005").held == Decimal(largest)
    result = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("P-MAX-2", [("M-1001", "00700", too_many)]))
    assert _codes(result) == [(2, "quantity", "out_of_range")]
    assert CustodyBalance.objects.get(client__email="alice@example.com", instrument__code="00700").held == Decimal("500")


def test_a_pledge_larger_than_the_ledger_keeps_is_refused_not_a_500(holdings):
    from lending.collateral.custody import custody_pledge
    from lending.collateral.models import Instrument
    from portal.errors import PortalError

    alice = CustodyBalance.objects.get(client__email="alice@example.com", instrument__code="00005")
    with transaction.atomic(), pytest.raises(PortalError) as refused:
        custody_pledge(client_id=alice.client_id, instrument_id=Instrument.objects.get(code="00005").pk, quantity="1e30", facility_id=None, actor=SYSTEM)
    assert refused.value.code == "out_of_range"


def test_held_and_pledged_of_a_custody_statement_are_bounded(holdings):
    result = services.batch_import(kind="custody_statement", actor=SYSTEM, content=statement_csv(
        "CS-HUGE", [("M-1001", "BTC", "1e20", "0"), ("M-1001", "ETH", "10", "123456789012345678")]))
    assert result.batch.status == "rejected"
    assert _codes(result) == [(2, "held", "out_of_range"), (3, "pledged", "out_of_range")]


def _price_file(batch_id, lines):
    as_of = timezone.now().isoformat()
    return "\n".join(["batch_id,as_of,instrument,price,source"] + [f"{batch_id},{as_of},{c},{p},{s}" for c, p, s in lines]) + "\n"


def test_a_price_larger_than_its_column_or_finer_than_a_tenth_of_a_cent_is_a_line_error(db, policy):
    from lending.risk import services as risk_services
    from lending.risk.models import PriceQuote

    risk_services.source_ensure(code="hkex-close", name="HKEX closing prices")
    result = services.batch_import(kind="prices_eod", actor=SYSTEM, content=_price_file("PX-HUGE", [
        ("00700", "482.60", "hkex-close"), ("00005", "1e30", "hkex-close"), ("00388", "5.68449", "hkex-close")]))
    assert result.batch.status == "rejected"
    assert _codes(result) == [(3, "price", "out_of_range"), (4, "price", "invalid_price")]
    assert "3 decimal places" in result.batch.errors[1]["message"]
    assert not PriceQuote.objects.exists()
