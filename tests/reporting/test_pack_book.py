"""Which valuation of the book an SMF pack stands on: today's pack before the end-of-day valuation is the
live book (never a snapshot of part of the book taken earlier in the day), and within one pack the
collateral by type and by instrument come from the same valuation (the same moment, prices and facilities)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from tests.reporting.conftest import make_facility

pytestmark = pytest.mark.django_db
HK = ZoneInfo("Asia/Hong_Kong")
# Ahead of the clock: the fixtures' prices are quoted now, and a reference price never goes back in time.
DAY = (datetime.now(HK) + timedelta(days=2)).date()


def _at(hour, minute=0, day=DAY):
    return time_machine.travel(datetime(day.year, day.month, day.day, hour, minute, tzinfo=HK), tick=False)


def test_todays_pack_before_the_end_of_day_valuation_is_the_live_book_not_an_earlier_snapshot(book, alice, charlie):
    from lending.reporting import render, smf
    from lending.risk import services as risk_services

    with _at(10):
        make_facility(alice, drawn="6000000", securities=(("10000000", "0.30"),), btc="2")
        assert risk_services.snapshots_take() == 3  # today's snapshot taken mid-morning: alice's facility only
    with _at(15):
        make_facility(charlie, drawn="1500000", securities=(("2000000", "0.50"),), eth="100")
        d = smf.compute(as_of=DAY)
    assert d["book_source"]["kind"] == "live" and d["book_source"]["at"].startswith(f"{DAY}T15:00")
    assert d["total_loans"]["total_loans"] == "7500000.00" and d["total_loans"]["facilities"] == 2
    assert [(r["email"], r["drawn"]) for r in d["client_concentration"]["top"]] == [("alice@example.com", "6000000.00"), ("charlie@example.com", "1500000.00")]
    assert render.book_source_text(d["book_source"]) == "Book valued live (today's end-of-day valuation is not stored yet)."
    with _at(23, 56):
        risk_services.snapshots_take()  # the scheduled job adds charlie's rows; alice's stay as taken at 10:00
        assert smf.compute(as_of=DAY)["book_source"]["kind"] == "live"
    with _at(9, day=DAY + timedelta(days=1)):
        past = smf.compute(as_of=DAY)
    assert past["book_source"]["kind"] == "snapshot" and past["book_source"]["end_of_day"] is False
    assert render.book_source_text(past["book_source"]) == (
        f"Book as at the valuation snapshot of {DAY} taken from 10:00 Hong Kong time, before that day's end-of-day valuation.")


def test_a_snapshot_taken_at_the_scheduled_end_of_day_run_is_the_end_of_day_valuation(book, alice):
    from lending.reporting import render, smf
    from lending.risk import services as risk_services

    with _at(10):
        make_facility(alice, drawn="6000000", securities=(("10000000", "0.30"),), btc="2")
    assert smf.end_of_day_moment(DAY) == datetime(DAY.year, DAY.month, DAY.day, 23, 55, tzinfo=HK)
    with _at(23, 55):
        risk_services.snapshots_take()
    with _at(23, 57):
        d = smf.compute(as_of=DAY)
    assert d["book_source"]["kind"] == "snapshot" and d["book_source"]["end_of_day"] is True
    assert render.book_source_text(d["book_source"]) == f"Book as at the end-of-day valuation of {DAY}."


def _by_type_and_instrument(d):
    cc = d["collateral_concentration"]
    by_type = {r["asset"]: r["market_value"] for r in cc["by_asset"]}
    by_instrument = {r["code"]: r["market_value"] for r in cc["instruments"]["by_instrument"]}
    return by_type, by_instrument


@pytest.fixture
def pledged(book, alice, charlie, officer):
    from tests.lending.conftest import set_prices
    from tests.recovery.conftest import pledged_facility

    with _at(10):
        set_prices(btc="760000", eth="27000", securities={"00005": "50"})
        pledged_facility(alice, holdings={"BTC": "2", "00005": "4000"}, drawn="500000", officer=officer)
        pledged_facility(charlie, holdings={"ETH": "30", "00005": "2000"}, drawn="300000", officer=officer)


def test_live_pack_values_collateral_by_type_and_by_instrument_at_the_same_prices(pledged):
    from lending.reporting import smf
    from tests.lending.conftest import set_prices

    with _at(14):
        set_prices(btc="800000", eth="28000", securities={"00005": "52"})  # the market moved since the pledges
        d = smf.compute(as_of=DAY)
    by_type, by_instrument = _by_type_and_instrument(d)
    assert d["book_source"]["kind"] == "live"
    assert by_type["BTC"] == by_instrument["BTC"] == "1600000.00" and by_type["ETH"] == by_instrument["ETH"] == "840000.00"
    assert by_type["securities"] == by_instrument["00005"] == "312000.00"


def test_snapshot_pack_values_collateral_by_instrument_at_the_snapshots_moment(pledged):
    from lending.reporting import smf
    from lending.risk import services as risk_services
    from tests.lending.conftest import set_prices

    with _at(23, 55):
        risk_services.snapshots_take()
    with _at(23, 57):
        set_prices(btc="700000", eth="25000", securities={"00005": "45"})  # after the end-of-day valuation, before midnight
    with _at(9, day=DAY + timedelta(days=1)):
        d = smf.compute(as_of=DAY)
    by_type, by_instrument = _by_type_and_instrument(d)
    assert d["book_source"]["kind"] == "snapshot"
    assert by_type["BTC"] == by_instrument["BTC"] == "1520000.00" and by_type["ETH"] == by_instrument["ETH"] == "810000.00"
    assert by_type["securities"] == by_instrument["00005"] == "300000.00"
