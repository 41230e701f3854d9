"""Stress tests, end-of-day snapshots and the risk board: set-based, constant queries."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lending.risk import selectors, services
from lending.risk.models import StressReport, ValuationSnapshot
from lending.risk.revaluation import revalue_book
from portal.audit import SYSTEM

from .conftest import make_facility

pytestmark = pytest.mark.django_db
MIXED = {"securities": (("10000000", "0.30"),), "btc": "2", "eth": "10"}


def test_policy_stress_scenario_hand_computed(book, alice, charlie):
    make_facility(alice, drawn="6000000", **MIXED)  # 0.779 now
    make_facility(charlie, drawn="1000000", **MIXED)
    result = selectors.stress_test(btc=Decimal("-0.5"), eth=Decimal("-0.6"), securities=Decimal("-0.3"))
    # securities 7,000,000 × 0.7 = 4,900,000; BTC 2 × 380,000 × 0.4 = 304,000; ETH 10 × 10,800 × 0.35 = 37,800 → 5,241,800
    summary = result["summary"]
    assert summary["facilities"] == 2 and summary["margin_call"] == 1 and summary["close_out"] == 0 and summary["newly_in_call"] == 1
    assert summary["shortfall"] == Decimal("758200.00")
    assert result["facilities"][0]["email"] == alice.email and result["facilities"][0]["lv"] == Decimal("5241800.00")
    assert result["by_client"][0]["email"] == alice.email
    by_asset = {a["asset"]: a for a in result["by_asset"]}
    assert by_asset["BTC"]["market_value"] == Decimal("1520000.00")  # 2 × 2 × 380,000
    assert by_asset["securities"]["market_value"] == Decimal("14000000.00")


def test_stress_shock_out_of_range_is_refused(book):
    from portal.errors import PortalError

    with pytest.raises(PortalError):
        selectors.stress_shocks_clean(btc="-1.5", eth="0", securities="0")


def test_monthly_stress_report_is_stored_once_per_month(book, alice):
    make_facility(alice, drawn="6000000", **MIXED)
    first = services.stress_monthly_report()
    assert first is not None and first.kind == StressReport.Kind.MONTHLY
    assert first.result["summary"]["margin_call"] == 1
    assert services.stress_monthly_report() is None
    assert StressReport.objects.count() == 1


def test_end_of_day_snapshot_per_facility_and_collateral_type(book, alice):
    facility = make_facility(alice, drawn="6000000", **MIXED)
    assert services.snapshots_take() == 4
    assert services.snapshots_take() == 0  # once per day
    rows = {r.collateral_type: r for r in ValuationSnapshot.objects.filter(facility=facility)}
    assert rows["securities"].market_value == Decimal("10000000.00") and rows["securities"].lending_value == Decimal("7000000.00")
    assert rows["BTC"].quantity == Decimal("2") and rows["BTC"].market_value == Decimal("1520000.00") and rows["BTC"].lending_value == Decimal("608000.00")
    assert rows["ETH"].lending_value == Decimal("94500.00")
    assert rows["total"].lending_value == Decimal("7702500.00") and rows["total"].drawn_balance == Decimal("6000000.00")
    assert rows["total"].band == "healthy"


def test_board_aggregates_the_book(book, alice, charlie):
    make_facility(alice, drawn="7000000", **MIXED)
    make_facility(alice, drawn="8000000", **MIXED)
    make_facility(charlie, drawn="1000000", **MIXED)
    revalue_book()
    b = selectors.board()
    assert b["facilities"] == 3
    assert b["bands"] == {"healthy": 1, "watch": 1, "margin_call": 1, "close_out": 0}
    assert b["nearest"][0]["util"] == Decimal("1.0386")
    assert b["by_client"][0]["email"] == alice.email
    assert b["va_share_market"] == Decimal("5370000") / Decimal("35370000")
    assert sum(h["count"] for h in b["histogram"]) == 3
    assert b["call_ages"][0]["count"] == 1


def _book(n, alice, charlie):
    for i in range(n):
        make_facility(alice if i % 2 else charlie, drawn=["3000000", "7000000", "8000000"][i % 3], **MIXED)
    revalue_book()
    services.stress_report_store(actor=SYSTEM, btc_shock="-0.5", eth_shock="-0.6", securities_shock="-0.3")


PAGE_QUERIES = {
    # before the first book summary (looked up: one query): the book valued live + collateral concentration (the
    # policy and prices read once for the page, portal.context.read_once, though both panels use them; open calls
    # counted by state and by age in one grouped query); the concentration's total as the engine values the book (VA after its cap)
    "/risk/board/": 21,
    "/risk/margin-calls/": 9,
    "/risk/stress/?preset=policy": 13,  # with the risk policy whose monthly scenario is the first preset
    "/risk/stress/reports/": 8,
    "/risk/prices/": 18,  # with the listed securities a desk quote or an override may price
}


@pytest.mark.parametrize("n", [5, 50])
@pytest.mark.parametrize("path", list(PAGE_QUERIES))
def test_page_query_count_is_constant_in_the_number_of_facilities(client, book, alice, charlie, credit_manager, n, path, django_assert_num_queries):
    _book(n, alice, charlie)
    client.force_login(credit_manager)
    client.get("/risk/board/")  # warm the session
    with django_assert_num_queries(PAGE_QUERIES[path]):
        assert client.get(path).status_code == 200


API_QUERIES = {
    "/api/v1/risk/staff/board/": 17,  # the board selector: open calls by state and by age in one query
    "/api/v1/risk/staff/margin-calls/?state=open_all": 8,
    "/api/v1/risk/staff/stress/reports/": 8,
    "/api/v1/risk/staff/alarms/": 7,
}


@pytest.mark.parametrize("n", [5, 50])
@pytest.mark.parametrize("path", list(API_QUERIES))
def test_api_query_count_is_constant_in_the_number_of_facilities(api_client, book, alice, charlie, credit_manager, n, path, django_assert_num_queries):
    _book(n, alice, charlie)
    api_client.force_login(credit_manager)
    with django_assert_num_queries(API_QUERIES[path]):
        assert api_client.get(path).status_code == 200


def test_the_board_reads_the_engines_book_summary_instead_of_valuing_the_book(client, book, alice, charlie, credit_manager, django_assert_num_queries):
    make_facility(alice, drawn="7000000", **MIXED)
    make_facility(alice, drawn="8000000", **MIXED)
    make_facility(charlie, drawn="1000000", **MIXED)
    revalue_book()
    live = selectors.board()
    assert services.book_summary_take() is not None
    stored = selectors.board()
    for key in ("facilities", "bands", "histogram", "totals", "va_share_market", "book_utilisation", "by_client", "by_asset"):
        assert stored[key] == live[key], key
    assert stored["nearest"] == live["nearest"] and stored["nearest"][0]["util"] == Decimal("1.0386")
    assert stored["as_of"] is not None and "by_instrument" in stored["concentration"]
    client.force_login(credit_manager)
    client.get("/risk/board/")
    with CaptureQueriesContext(connection) as few:
        body = client.get("/risk/board/").content.decode()
    assert "Book figures as of" in body and 'data-testid="collateral-concentration"' in body
    for _i in range(6):
        make_facility(charlie, drawn="1000000", **MIXED)
    revalue_book()
    services.book_summary_take()
    with django_assert_num_queries(len(few.captured_queries)):
        client.get("/risk/board/")
    # No whole-book statement on the page: the summary is one row.
    assert not any("lending_collateralposition" in q["sql"] or "risk_facilitycoefficients" in q["sql"] for q in few.captured_queries)


def test_a_summary_under_another_policy_version_is_not_used(book, alice):
    make_facility(alice, drawn="7000000", **MIXED)
    revalue_book()
    summary = services.book_summary_take()
    summary.policy_version = summary.policy_version + 1
    summary.save()
    assert "as_of" not in selectors.board()
