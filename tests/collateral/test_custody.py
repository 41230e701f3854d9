"""The custody ledger: held / pledged / free, never pledged beyond free (in the database too)."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from lending.collateral import selectors, services
from lending.collateral.models import CustodyBalance, CustodyEntry, Instrument
from portal.errors import ConflictError

pytestmark = pytest.mark.django_db


def _i(code):
    return Instrument.objects.get(code=code)


def test_shipped_instrument_master_has_hong_kong_securities_btc_and_eth():
    securities = Instrument.objects.filter(kind="security")
    assert securities.count() >= 100
    assert {"00700", "00005", "02800", "02828", "00388"} <= set(securities.values_list("code", flat=True))
    assert securities.filter(suspended=True).count() >= 1
    tencent = _i("00700")
    assert (tencent.name_en, tencent.name_zh, tencent.board_lot, tencent.currency) == ("Tencent Holdings", "騰訊控股", 100, "HKD")
    assert set(Instrument.objects.filter(kind="virtual_asset").values_list("code", flat=True)) == {"BTC", "ETH"}
    assert not securities.filter(issuer="").exists() and not securities.filter(sector="").exists()


def test_holdings_from_the_back_office_show_held_pledged_and_free(holdings, alice):
    rows = {h.instrument.code: h for h in selectors.custody_for_client(user=alice)}
    assert rows["00005"].held == Decimal("2000") and rows["00005"].free == Decimal("2000")
    assert rows["BTC"].held == Decimal("2") and rows["ETH"].held == Decimal("10")
    assert list(rows)[:2] == ["00005", "00700"]  # securities first


def test_pledge_moves_free_to_pledged_and_release_moves_it_back(holdings, alice, bob):
    hsbc = _i("00005")
    with transaction.atomic():
        services.custody_pledge(client_id=alice.pk, instrument_id=hsbc.pk, quantity="1200", facility_id=None, actor=bob, reference="t")
    h = selectors.custody_balance(client_id=alice.pk, instrument_id=hsbc.pk)
    assert (h.held, h.pledged, h.free) == (Decimal("2000"), Decimal("1200"), Decimal("800"))
    with transaction.atomic():
        services.custody_release(client_id=alice.pk, instrument_id=hsbc.pk, quantity="200", facility_id=None, actor=bob)
    h = selectors.custody_balance(client_id=alice.pk, instrument_id=hsbc.pk)
    assert (h.pledged, h.free) == (Decimal("1000"), Decimal("1000"))


def test_pledge_above_free_is_refused_and_changes_nothing(holdings, alice, bob):
    hsbc = _i("00005")
    with transaction.atomic():
        services.custody_pledge(client_id=alice.pk, instrument_id=hsbc.pk, quantity="1500", facility_id=None, actor=bob)
    entries = CustodyEntry.objects.count()
    with pytest.raises(ConflictError) as exc, transaction.atomic():
        services.custody_pledge(client_id=alice.pk, instrument_id=hsbc.pk, quantity="501", facility_id=None, actor=bob)
    assert exc.value.code == "insufficient_free" and "500" in exc.value.message
    assert CustodyEntry.objects.count() == entries
    assert selectors.custody_balance(client_id=alice.pk, instrument_id=hsbc.pk).pledged == Decimal("1500")


def test_database_refuses_pledged_above_held_even_from_raw_sql(holdings, alice):
    """The rule lives in the database: an UPDATE that bypasses the services still cannot over-pledge."""
    balance = CustodyBalance.objects.get(client=alice, instrument__code="00005")
    with pytest.raises(IntegrityError), transaction.atomic():
        CustodyBalance.objects.filter(pk=balance.pk).update(pledged=Decimal("2000.00000001"))
    with pytest.raises(IntegrityError), transaction.atomic():
        CustodyBalance.objects.filter(pk=balance.pk).update(pledged=Decimal("-1"))


def test_release_above_what_the_facility_has_pledged_is_refused(holdings, alice, bob, policy):
    hsbc = _i("00005")
    with pytest.raises(ConflictError) as exc, transaction.atomic():
        services.custody_release(client_id=alice.pk, instrument_id=hsbc.pk, quantity="1", facility_id=None, actor=bob)
    assert exc.value.code == "above_pledged"


def test_client_va_entries_are_never_re_pledgeable_in_the_database(holdings, alice, bob):
    btc = _i("BTC")
    with transaction.atomic():
        entry = services.custody_pledge(client_id=alice.pk, instrument_id=btc.pk, quantity="0.5", facility_id=None, actor=bob)
    assert entry.repledge_allowed is False and entry.instrument_kind == "virtual_asset"
    with pytest.raises(IntegrityError), transaction.atomic():
        CustodyEntry.objects.filter(pk=entry.pk).update(repledge_allowed=True)


def test_balances_equal_the_sum_of_their_ledger_entries(holdings, alice, charlie, bob):
    from portal.audit import SYSTEM
    from tests.collateral.conftest import positions_csv

    hsbc, btc = _i("00005"), _i("BTC")
    with transaction.atomic():
        services.custody_pledge(client_id=alice.pk, instrument_id=hsbc.pk, quantity="700", facility_id=None, actor=bob)
        services.custody_pledge(client_id=alice.pk, instrument_id=btc.pk, quantity="1.25", facility_id=None, actor=bob)
        services.custody_release(client_id=alice.pk, instrument_id=hsbc.pk, quantity="100", facility_id=None, actor=bob)
    services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("ID-1", [("M-1001", "00005", 2500), ("M-2002", "00005", 400)]))
    for balance in CustodyBalance.objects.all():
        assert selectors.ledger_totals(client_id=balance.client_id, instrument_id=balance.instrument_id) == (balance.held, balance.pledged)
    assert selectors.custody_balance(client_id=alice.pk, instrument_id=hsbc.pk).held == Decimal("2500")
