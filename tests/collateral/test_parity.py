"""One owner of valuation: lending.valuation (Python) and lending.risk.book (SQL) agree to the cent.

A grid of facilities — mixed instruments, the VA cap binding and not, zero lending value, utilisation
exactly on each band boundary and a hair either side — valued both ways.
"""

import random
from decimal import Decimal

import pytest

from lending import valuation
from lending.collateral.models import Instrument
from lending.models import Facility
from lending.risk import book
from tests.collateral.conftest import book_facility, set_prices
from tests.helpers import need_postgres

pytestmark = pytest.mark.django_db

SECURITIES = ["00005", "00700", "00388", "02800", "00004", "00303", "01299", "09988"]


def _python_value(facility, policy, prices):
    inputs = []
    for p in facility.positions.select_related("instrument"):
        inputs.append(valuation.PositionValueInput(kind=p.kind, haircut=p.haircut, quantity=p.quantity, price=prices[p.instrument.code]))
    return valuation.value_facility(positions=inputs, drawn=facility.drawn_balance, max_share=policy.va_max_share,
                                    watch=policy.watch_level, margin_call=policy.margin_call_level, close_out=policy.close_out_level)


def _sql_values(policy, prices):
    params = book.Scenario.current(policy=policy, prices=prices).params()
    return {r["facility_id"]: r for r in book.fetch(book.live_sql(), params)}


def _grid(client, rng):
    """(holdings, drawn or target utilisation) cases."""
    cases = [
        ({"00005": 1000}, "0"),                                   # nothing drawn
        ({"00303": 0}, "5000"),                                   # zero lending value, something drawn
        ({"BTC": "0.5"}, "1000"),                                 # VA only: the cap leaves no lending value
        ({"00700": 100, "BTC": "3.2"}, "util:0.5"),               # VA cap binding
        ({"00700": 5000, "ETH": "1.75"}, "util:0.95"),            # VA cap not binding
        ({"00005": 400, "00388": 300, "BTC": "0.12345678", "ETH": "7.5"}, "util:0.9"),
        ({"02800": 2000, "01299": 600}, "util:1.0"),
        ({"00004": 1000, "09988": 700, "ETH": "2"}, "util:1.3"),
    ]
    for _ in range(40):
        holdings = {code: rng.choice([100, 200, 400, 500, 1000, 2500]) * rng.randint(1, 40) for code in rng.sample(SECURITIES, rng.randint(1, 5))}
        if rng.random() < 0.6:
            holdings["BTC"] = str(Decimal(rng.randint(1, 900_000_000)) / Decimal(100_000_000))
        if rng.random() < 0.4:
            holdings["ETH"] = str(Decimal(rng.randint(1, 9_000_000_000)) / Decimal(100_000_000))
        cases.append((holdings, f"util:{rng.choice(['0.3', '0.8999', '0.9', '0.9999', '1.0', '1.00005', '1.0001', '1.2999', '1.3', '2'])}"))
    return cases


def test_python_and_sql_valuations_are_identical_to_the_cent(alice, policy):
    need_postgres()
    rng = random.Random(20260211)
    prices = {"BTC": Decimal("761234.57"), "ETH": Decimal("27013.09")}
    prices |= {code: Decimal(rng.randint(100, 90000)) / 100 for code in SECURITIES}
    set_prices(prices)
    facilities = []
    for holdings, drawn in _grid(alice, rng):
        facility = book_facility(alice, holdings=holdings)
        if drawn.startswith("util:"):
            # drawn at exactly the target utilisation of the Python lending value (the boundary cases)
            lv = _python_value(facility, policy, prices).lending_value
            amount = (lv * Decimal(drawn[5:])).quantize(Decimal("0.01"))
            Facility.objects.filter(pk=facility.pk).update(drawn_balance=amount)
            facility.refresh_from_db()
        facilities.append(facility)
    sql = _sql_values(policy, prices)
    seen_bands, capped = set(), 0
    for facility in facilities:
        py = _python_value(facility, policy, prices)
        row = sql[facility.pk]
        assert Decimal(row["lv"]) == py.lending_value, facility.pk
        assert Decimal(row["util"]) == py.utilisation, facility.pk
        assert row["band"] == py.band, facility.pk
        assert valuation.money(Decimal(row["sec_mv"])) == py.securities_market_value
        assert valuation.money(Decimal(row["va_mv"])) == py.va_market_value
        seen_bands.add(py.band)
        capped += py.va_capped
    assert seen_bands == {"healthy", "watch", "margin_call", "close_out"} and capped >= 3


def test_zero_lending_value_bands_the_same_everywhere():
    """One rule: nothing drawn is 0; something drawn against no lending value is 99 (close-out)."""
    assert valuation.utilisation(drawn=Decimal("0"), lending_value=Decimal("0")) == 0
    assert valuation.utilisation(drawn=Decimal("0.01"), lending_value=Decimal("0")) == valuation.NO_LENDING_VALUE_UTILISATION
    assert book.NO_LENDING_VALUE_UTILISATION == valuation.NO_LENDING_VALUE_UTILISATION


@pytest.mark.parametrize("util,expected", [("0.8999", "healthy"), ("0.9", "watch"), ("1.0", "watch"), ("1.0001", "margin_call"),
                                           ("1.2999", "margin_call"), ("1.3", "close_out")])
def test_band_boundaries(util, expected):
    assert valuation.band(utilisation=Decimal(util), watch=Decimal("0.9"), margin_call=Decimal("1.0"), close_out=Decimal("1.3")) == expected


def test_va_cap_compares_exactly_and_divides_only_when_binding():
    share = Decimal("0.40")
    assert valuation.va_counted(Decimal("600"), Decimal("400"), share) == Decimal("400")  # exactly 40%: not capped
    assert valuation.lending_value(Decimal("1"), Decimal("5"), share) == Decimal("1.67")   # 1 / 0.6
    assert Instrument.objects.filter(code__in=SECURITIES).count() == len(SECURITIES)
