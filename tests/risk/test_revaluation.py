"""Whole-book revaluation: values per asset, band boundaries, set-based statement counts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lending.risk import selectors
from lending.risk.models import BandChange, MarginCall
from lending.risk.revaluation import revalue_book
from tests.helpers import make_user

from .conftest import make_facility, reload, set_prices

pytestmark = pytest.mark.django_db

# Hand-computed at BTC 760,000 and ETH 27,000 (haircuts: securities A 30%, BTC 60%, ETH 65%):
#   securities 10,000,000 × 0.70 = 7,000,000
#   BTC 2 × 760,000 = 1,520,000 × 0.40 = 608,000
#   ETH 10 × 27,000 = 270,000 × 0.35 = 94,500
#   lending value 7,702,500 (VA 702,500 is under the cap 7,000,000 × 0.4/0.6 = 4,666,666.67)
MIXED = {"securities": (("10000000", "0.30"),), "btc": "2", "eth": "10"}
LV = Decimal("7702500.00")


def test_revaluation_weights_securities_btc_and_eth_per_asset(book, alice):
    facility = make_facility(alice, drawn="7000000", **MIXED)
    run = revalue_book()
    facility = reload(facility)
    assert run.band_changes == 1
    assert facility.band == "watch"  # 7,000,000 / 7,702,500 = 0.9088
    assert facility.lending_value == LV
    assert facility.market_value == Decimal("11790000.00")
    assert facility.va_market_value == Decimal("1790000.00")
    assert facility.utilisation == Decimal("0.9088")
    risk = selectors.facility_risk(facility_id=facility.pk)
    assert risk["securities_lending_value"] == Decimal("7000000.00")
    assert risk["btc_market_value"] == Decimal("1520000.00") and risk["eth_market_value"] == Decimal("270000.00")
    assert risk["va_lending_value"] == Decimal("702500.00") and not risk["va_capped"]


def test_va_lending_value_is_capped_so_securities_stay_the_main_support(book, alice):
    facility = make_facility(alice, drawn="1100000", securities=(("1000000", "0.30"),), btc="2")
    revalue_book()
    facility = reload(facility)
    # 700,000 + min(608,000, 700,000 × 0.4 / 0.6 = 466,666.67)
    assert facility.lending_value == Decimal("1166666.67")
    assert facility.band == "watch"  # 1,100,000 / 1,166,666.67 = 0.9429


@pytest.mark.parametrize(
    ("drawn", "band"),
    [
        ("6931479.75", "healthy"),  # 0.8999
        ("6932250.00", "watch"),  # exactly 0.90
        ("7702500.00", "watch"),  # exactly 1.00: not above the margin-call level
        ("7703270.25", "margin_call"),  # 1.0001
        ("10012479.75", "margin_call"),  # 1.2999
        ("10013250.00", "close_out"),  # exactly 1.30
    ],
)
def test_band_boundaries(book, alice, drawn, band):
    facility = make_facility(alice, drawn=drawn, **MIXED)
    revalue_book()
    assert reload(facility).band == band
    assert MarginCall.objects.filter(facility=facility).count() == (1 if band in ("margin_call", "close_out") else 0)


def test_only_band_changes_are_written(book, alice):
    a = make_facility(alice, drawn="7000000", **MIXED)  # watch
    b = make_facility(alice, drawn="1000000", **MIXED)  # healthy: stays healthy, row untouched
    revalue_book()
    assert reload(b).valued_at is None
    assert list(BandChange.objects.values_list("facility_id", "from_band", "to_band")) == [(a.pk, "healthy", "watch")]
    run = revalue_book()  # same prices: nothing to do
    assert run.band_changes == 0 and BandChange.objects.count() == 1


def test_price_fall_moves_facilities_across_bands(book, alice):
    facility = make_facility(alice, drawn="5800000", securities=(("8000000", "0.30"),), btc="3")
    revalue_book()
    assert reload(facility).band == "healthy"  # 5,800,000 / (5,600,000 + 912,000) = 0.8907
    set_prices(btc=Decimal("100000"))
    revalue_book()
    # 5,600,000 + 3 × 100,000 × 0.4 = 5,720,000 → 1.0140: margin call
    assert reload(facility).band == "margin_call"


def _book_of(n, client, policy):
    for i in range(n):
        # alternate healthy, watch, just under the margin-call level
        drawn = ["3000000", "7000000", "7600000"][i % 3]
        make_facility(client, drawn=drawn, policy=policy, **MIXED)


def _tick_statements(n, client, policy) -> tuple[int, int]:
    """Build a book of ``n`` facilities, settle it, then count the SQL statements of one price tick
    (governed quotes → reference refresh → whole-book revaluation opening calls); rolled back after."""
    from django.db import transaction

    from lending.risk.models import RevaluationRun

    sid = transaction.savepoint()
    try:
        _book_of(n, client, policy)
        revalue_book()  # settle the bands
        last = RevaluationRun.objects.order_by("-id").values_list("id", flat=True).first()
        with CaptureQueriesContext(connection) as ctx:
            set_prices(btc=Decimal("200000"), eth=Decimal("5000"))  # every watch facility crosses into margin call
        run = RevaluationRun.objects.filter(id__gt=last).get()
        return len(ctx.captured_queries), run.calls_opened
    finally:
        transaction.savepoint_rollback(sid)


def test_revaluation_statement_count_is_independent_of_the_book_size(book, alice):
    small, opened_small = _tick_statements(5, alice, book)
    large, opened_large = _tick_statements(50, alice, book)
    assert 0 < opened_small < opened_large  # the tick really opened calls, more of them in the larger book
    assert small == large, (small, large)


def test_revaluation_ignores_closed_and_suspended_facilities(book, alice):
    suspended = make_facility(alice, drawn="9000000", state="suspended", **MIXED)
    revalue_book()
    assert reload(suspended).band == "healthy" and not MarginCall.objects.exists()


def test_new_facilities_are_picked_up_without_a_coefficients_row(book, alice):
    from lending.risk.models import FacilityCoefficients

    facility = make_facility(alice, drawn="7000000", **MIXED)
    FacilityCoefficients.objects.filter(facility_id=facility.pk).delete()
    revalue_book()
    assert reload(facility).band == "watch"


def test_client_sees_how_far_btc_and_eth_can_fall(book, alice):
    facility = make_facility(alice, drawn="7300000", **MIXED)
    risk = selectors.facility_risk(facility_id=facility.pk)
    # needed LV = 7,300,000; VA must give 300,000. BTC alone: 300,000 − 94,500 = 205,500 of 608,000 → fall 66.20%.
    assert risk["fall_to_call"]["BTC"] == Decimal("0.6620")
    # ETH alone: 300,000 − 608,000 < 0 → even zero keeps it out of a call.
    assert risk["fall_to_call"]["ETH"] == Decimal("1")
    # Both together: 300,000 / 702,500 → fall 57.30%.
    assert risk["fall_to_call"]["both"] == Decimal("0.5730")
    set_prices(btc=Decimal("760000") * (1 - Decimal("0.67")))  # a little past the point: 1.0007
    revalue_book()
    assert reload(facility).band == "margin_call"


def test_outsider_client_cannot_read_another_clients_facility_risk(book, alice, charlie):
    facility = make_facility(alice, drawn="100", **MIXED)
    assert selectors.facility_risk_for_client(user=charlie, facility_id=facility.pk) is None
    assert selectors.facility_risk_for_client(user=alice, facility_id=facility.pk) is not None


def test_staff_member_who_is_also_a_client_is_valued_like_anyone(book):
    staff_client = make_user("client", email="sc@example.com")
    facility = make_facility(staff_client, drawn="7000000", **MIXED)
    revalue_book()
    assert reload(facility).band == "watch"


def test_the_sums_keep_the_facility_columns_the_prefilter_reads_whoever_writes_them(book, alice):
    """Risk migration 0006: the database copies drawn balance, band, warning level and state into the sums
    on every change, so the prefilter, which reads the sums alone, never bands from a stale copy."""
    from lending.models import Facility
    from lending.risk.models import FacilityCoefficients

    facility = make_facility(alice, drawn="7000000", **MIXED)
    revalue_book()

    def mirrored():
        f, c = Facility.objects.get(pk=facility.pk), FacilityCoefficients.objects.get(facility_id=facility.pk)
        assert (c.drawn_f, c.band, c.warned_level_f, c.active) == (float(f.drawn_balance), f.band, float(f.warned_level), f.state == "active")
        return c

    assert mirrored().band == "watch"
    # A set-based write that no service made (a posting, a data fix) is copied too.
    Facility.objects.filter(pk=facility.pk).update(drawn_balance=Decimal("7123456.78"), state="suspended", band="margin_call",
                                                   warned_level=Decimal("0.9"))
    assert mirrored().drawn_f == 7123456.78 and not mirrored().active
    Facility.objects.filter(pk=facility.pk).update(state="active", band="watch")
    revalue_book()  # the prefilter finds it from the copy: 7,123,456.78 is still the watch band
    assert mirrored().band == reload(facility).band


def test_a_tick_writes_each_facility_once_band_valuation_warning_level_and_call_flag_together(book, alice):
    """A row written twice in one transaction has its foreign keys checked again at commit (a fifth of an
    end-of-day tick): the band, the stored valuation, the warning level and the open-call flag go in one UPDATE."""
    # Securities 10,000,000 at 30% → 7,000,000, 10 BTC at 60%. At BTC 200,000: lending value 7,800,000.
    into_call = make_facility(alice, drawn="7900000", securities=(("10000000", "0.30"),), btc="10")  # → 101.28%
    warned_only = make_facility(alice, drawn="6630000", securities=(("10000000", "0.30"),), btc="10")  # → 85.00%
    revalue_book()
    with CaptureQueriesContext(connection) as ctx:
        set_prices(btc=Decimal("200000"))
    facility_updates = [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith('UPDATE "LENDING_FACILITY"')
                        or q["sql"].lstrip().upper().startswith("UPDATE LENDING_FACILITY")]
    assert len(facility_updates) == 1, facility_updates
    called, warned = reload(into_call), reload(warned_only)
    assert (called.band, called.has_open_margin_call, called.warned_level) == ("margin_call", True, Decimal("0.9000"))
    assert called.lending_value == Decimal("7800000.00") and called.utilisation == Decimal("1.0128")
    assert MarginCall.objects.filter(facility=called, state="open").count() == 1
    assert (warned.band, warned.has_open_margin_call, warned.warned_level) == ("healthy", False, Decimal("0.8000"))
    assert warned.valued_at is None  # no band change: its stored valuation is not rewritten
