"""An import's report names every bad line by its number in the file, in one validation pass."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from lending.collateral import services
from lending.collateral.custody import custody_pledge
from lending.collateral.models import CustodyBalance, CustodyEntry, Instrument
from portal.audit import SYSTEM
from tests.collateral.conftest import positions_csv

pytestmark = pytest.mark.django_db


def _codes(result):
    return [(e["line"], e["field"], e["code"]) for e in result.batch.errors]


def _pledge(user, code, quantity):
    with transaction.atomic():
        custody_pledge(client_id=user.pk, instrument_id=Instrument.objects.get(code=code).pk, quantity=quantity, facility_id=None, actor=SYSTEM)


def test_a_blank_account_is_reported_at_its_line(holdings):
    result = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv(
        "BL-1", [("M-1001", "00005", "2100"), ("", "00005", "1")]))
    assert _codes(result) == [(3, "account", "required")]


def test_a_holding_below_its_pledge_is_reported_with_the_other_line_errors(holdings, alice):
    _pledge(alice, "00005", "1500")
    entries = CustodyEntry.objects.count()
    result = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv(
        "BP-1", [("M-1001", "00005", "1000"), ("M-1001", "00700", "-1")]))
    assert result.batch.status == "rejected"
    assert _codes(result) == [(2, "quantity", "below_pledged"), (3, "quantity", "negative_quantity")]
    assert CustodyEntry.objects.count() == entries


def test_a_pledged_holding_an_end_of_day_file_leaves_out_is_reported_at_its_accounts_line(holdings, alice):
    _pledge(alice, "00700", "100")
    result = services.batch_import(kind="positions_eod", actor=SYSTEM, content=positions_csv(
        "EOD-LEFT", [("M-2002", "00005", "1000"), ("M-1001", "00005", "2000")]))
    assert _codes(result) == [(3, "instrument", "below_pledged")]
    assert "M-1001" in result.batch.errors[0]["message"] and "00700" in result.batch.errors[0]["message"]
    assert CustodyBalance.objects.get(client=alice, instrument__code="00700").held == Decimal("500")


def _price_file(batch_id, lines):
    as_of = timezone.now().isoformat()
    return "\n".join(["batch_id,as_of,instrument,price,source"] + [f"{batch_id},{as_of},{c},{p},{s}" for c, p, s in lines]) + "\n"


def test_a_price_the_price_authority_refuses_is_reported_at_its_line(db, policy):
    from lending.risk import services as risk_services
    from lending.risk.models import PriceQuote

    risk_services.source_ensure(code="hkex-close", name="HKEX closing prices")
    services.batch_import(kind="prices_eod", actor=SYSTEM, content=_price_file("PX-A", [("00700", "482.60", "hkex-close"), ("00005", "95.40", "hkex-close")]))
    quotes = PriceQuote.objects.count()
    result = services.batch_import(kind="prices_eod", actor=SYSTEM, content=_price_file("PX-B", [
        ("00005", "95.50", "hkex-close"), ("00700", "4826.00", "hkex-close")]))
    assert _codes(result) == [(3, "price", "quote_out_of_band")]
    assert not result.batch.errors[0]["message"].startswith("Row")
    assert PriceQuote.objects.count() == quotes
