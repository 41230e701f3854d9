"""The revaluation engine with per-instrument prices: a tick's work follows the instruments that moved."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lending.collateral.models import BookPrice, Instrument
from lending.models import CollateralPosition, Facility
from lending.risk.models import FacilityCoefficients, MarginCall, RevaluationRun
from lending.risk.revaluation import revalue_book
from tests.collateral.conftest import book_facility, set_prices

pytestmark = pytest.mark.django_db

BASE = {"BTC": Decimal("760000.00"), "ETH": Decimal("27000.00"), "00700": Decimal("400.00"), "00005": Decimal("80.00"),
        "02800": Decimal("25.00")}


@pytest.fixture
def market(policy):
    set_prices(BASE)
    return policy


def _tick(quotes=None):
    """A price tick: quotes through the price authority, whose reference refresh revalues the book in the
    same transaction (or, without quotes, a revaluation at unchanged prices). The run and the statements."""
    with CaptureQueriesContext(connection) as ctx:
        if quotes:
            set_prices(quotes)
        else:
            revalue_book(trigger="price")
    return RevaluationRun.objects.order_by("-id").first(), len(ctx.captured_queries)


def test_a_security_move_revalues_only_the_facilities_holding_it(market, alice, charlie):
    tencent = book_facility(alice, holdings={"00700": 1000}, drawn="250000")   # LV 400,000 × 0.7 = 280,000: util 0.8929
    hsbc = book_facility(charlie, holdings={"00005": 5000}, drawn="250000")     # LV 400,000 × 0.7 = 280,000
    revalue_book(trigger="beat")
    before = {c.facility_id: c.updated_at for c in FacilityCoefficients.objects.all()}
    run, _ = _tick({"00700": Decimal("340.00")})                                 # −15%: 238,000 → util 1.0504
    coef = {c.facility_id: c for c in FacilityCoefficients.objects.all()}
    assert coef[tencent.pk].securities_mv == Decimal("340000") and coef[tencent.pk].securities_lv == Decimal("238000")
    assert coef[hsbc.pk].updated_at == before[hsbc.pk]                            # never touched
    assert BookPrice.objects.get(instrument__code="00700").price == Decimal("340.0000")
    assert run.band_changes == 1 and run.calls_opened == 1
    call = MarginCall.objects.get()
    assert call.facility_id == tencent.pk and call.shortfall == Decimal("12000.00")  # 250,000 − 238,000 × 1.00
    again, _ = _tick()
    assert again.band_changes == 0 and MarginCall.objects.count() == 1            # opened exactly once
    assert Facility.objects.get(pk=tencent.pk).valued_policy_version == market.version


def test_exact_sums_after_many_moves_equal_a_rebuild_from_positions(market, alice):
    from django.utils import timezone

    from lending.risk import book

    f = book_facility(alice, holdings={"00700": 300, "00005": 1200, "02800": 4000, "BTC": "0.3"}, drawn="100000")
    revalue_book(trigger="beat")
    for p700, p5 in [("401.20", "80.05"), ("399.80", "79.95"), ("415.40", "81.35"), ("377.00", "78.10")]:
        set_prices({"00700": Decimal(p700), "00005": Decimal(p5)})
    incremental = FacilityCoefficients.objects.get(facility=f)
    book.coefficients_refresh(now=timezone.now(), facility_ids=[f.pk])
    rebuilt = FacilityCoefficients.objects.get(facility=f)
    assert (incremental.securities_mv, incremental.securities_lv) == (rebuilt.securities_mv, rebuilt.securities_lv)
    assert rebuilt.securities_mv == Decimal("377.00") * 300 + Decimal("78.10") * 1200 + Decimal("25.00") * 4000


def test_statements_per_tick_do_not_grow_with_the_book_or_the_holders(market, alice):
    for _ in range(3):
        book_facility(alice, holdings={"00700": 100, "00005": 100})
    revalue_book(trigger="beat")
    _, small = _tick({"00700": Decimal("390.00"), "00005": Decimal("79.50")})
    for _ in range(25):
        book_facility(alice, holdings={"00700": 100, "00005": 100, "02800": 500})
    revalue_book(trigger="beat")
    _, large = _tick({"00700": Decimal("380.00"), "00005": Decimal("79.00")})
    assert small == large


def test_a_suspended_security_is_valued_by_policy(market, alice, credit_manager, officer):
    from lending import services
    from lending.collateral import services as collateral
    from tests.lending.conftest import POLICY_NUMBERS

    f = book_facility(alice, holdings={"00700": 1000})
    collateral.instrument_update(actor=officer, code="00700", changes={"suspended": True})
    proposed = services.policy_propose(actor=officer, numbers=POLICY_NUMBERS | {"marginable": {"suspended_haircut": "0.80"}}, reason="Suspended at 80%")
    services.policy_approve(actor=credit_manager, policy_id=proposed.pk)
    assert CollateralPosition.objects.get(facility=f).haircut == Decimal("0.8000")
    assert FacilityCoefficients.objects.get(facility=f).securities_lv == Decimal("80000")  # 400,000 × 20%


def test_an_approved_haircut_change_moves_the_live_book_and_the_preview_counted_it(market, alice, charlie, officer, credit_manager):
    from lending import services
    from lending.collateral.selectors import policy_preview
    from tests.lending.conftest import POLICY_NUMBERS

    risky = book_facility(alice, holdings={"00700": 1000}, drawn="250000")      # util 0.8929 healthy at 30%
    safe = book_facility(charlie, holdings={"00005": 5000}, drawn="100000")
    revalue_book(trigger="beat")
    proposed = services.policy_propose(actor=officer, reason="Tencent concentration",
                                       numbers=POLICY_NUMBERS | {"marginable": {"entries": {"00700": "0.45"}}})
    preview = policy_preview(policy=proposed)
    assert preview == {"facilities": 1, "moves": [{"from": "healthy", "to": "margin_call", "count": 1}]}  # 250,000 / 220,000 = 1.1364
    services.policy_approve(actor=credit_manager, policy_id=proposed.pk)
    risky.refresh_from_db()
    assert CollateralPosition.objects.get(facility=risky).haircut == Decimal("0.4500")
    assert risky.lending_value == Decimal("220000.00") and risky.band == "margin_call" and risky.valued_policy_version == proposed.version
    assert MarginCall.objects.filter(facility=risky).count() == 1
    safe.refresh_from_db()
    assert safe.band == "healthy"
    assert RevaluationRun.objects.filter(trigger="policy").exists()


def test_va_entries_below_sixty_percent_are_refused(market, officer):
    from lending import services
    from portal.errors import PortalError
    from tests.lending.conftest import POLICY_NUMBERS

    with pytest.raises(PortalError) as exc:
        services.policy_propose(actor=officer, reason="x", numbers=POLICY_NUMBERS | {"marginable": {"entries": {"BTC": "0.55"}}})
    assert exc.value.code == "va_haircut_below_floor"


def test_database_refuses_a_va_marginable_entry_below_sixty_percent(market, officer):
    from django.db import IntegrityError, transaction

    from lending import services
    from lending.collateral.models import MarginableEntry
    from tests.lending.conftest import POLICY_NUMBERS

    proposed = services.policy_propose(actor=officer, reason="x", numbers=POLICY_NUMBERS | {"marginable": {"entries": {"BTC": "0.70"}}})
    entry = MarginableEntry.objects.get(marginable_list__policy=proposed)
    with pytest.raises(IntegrityError), transaction.atomic():
        MarginableEntry.objects.filter(pk=entry.pk).update(haircut=Decimal("0.59"))
    assert Instrument.objects.get(code="BTC").pk == entry.instrument_id


def test_concentration_by_instrument_issuer_and_sector_with_the_firm_limit(market, alice, charlie, client, credit_manager):
    from lending.collateral.selectors import concentration

    book_facility(alice, holdings={"00700": 1000, "00005": 1000})   # LV 280,000 + 56,000
    book_facility(charlie, holdings={"00700": 500, "BTC": "0.1"})    # LV 140,000 + 30,400 (VA)
    from lending.collateral.models import MarginableList

    # The firm-wide limits apply from the policy's minimum book (HK$100m by default); this small book is made to count.
    MarginableList.objects.filter(policy=market).update(firm_concentration_min_book=Decimal("0"))
    c = concentration()
    assert c["total_lending_value"] == Decimal("506400.00")
    top = c["by_instrument"][0]
    assert top["name"] == "00700" and top["lv"] == Decimal("420000.00") and top["facilities"] == 2
    assert top["share"] == Decimal("0.8294") and top["over"] is True  # above the 25% firm limit
    assert c["by_issuer"][0]["name"] == "Tencent Holdings Ltd"
    assert {g["name"] for g in c["by_sector"]} == {"Information Technology", "Financials", "Virtual Assets"}
    client.force_login(credit_manager)
    body = client.get("/risk/board/").content.decode()
    assert 'data-testid="collateral-concentration"' in body and "00700 Tencent Holdings" in body and "over limit" in body


def test_a_securitys_price_is_overridden_by_maker_checker_and_the_preview_values_its_holders(market, alice, charlie, credit_manager,
                                                                                             credit_manager2):
    """A suspended or broken security needs a manual price like BTC does: proposed with a preview of what it does to the
    facilities holding it (computed by the engine and rolled back), in force only once a second credit manager approves."""
    from datetime import timedelta

    from django.utils import timezone

    from lending.models import CurrentPrice
    from lending.risk import services

    tencent = book_facility(alice, holdings={"00700": 1000}, drawn="250000")  # LV 280,000: util 0.8929
    book_facility(charlie, holdings={"00005": 5000}, drawn="250000")
    revalue_book(trigger="beat")
    proposed = services.override_propose(actor=credit_manager, asset="700", price_hkd="340", expires_at=timezone.now() + timedelta(hours=4),
                                         reason="Trading halted", justification="Halted pending an announcement; last trade 340 on the exchange.")
    assert proposed.asset == "00700" and proposed.governed_price == Decimal("400.00") and proposed.deviation == Decimal("0.1500")
    # Of its one holder: LV 238,000 → util 1.0504, in margin call, shortfall 250,000 − 238,000.
    assert proposed.preview | {"shock": None} == {"shock": None, "from_price": "400.00", "holders": True, "facilities": 1, "margin_call": 1,
                                                  "close_out": 0, "newly_in_call": 1, "watch": 0, "shortfall": "12000.00"}
    # The preview kept nothing: the sums, the book price and the calls are as they were.
    assert FacilityCoefficients.objects.get(facility=tencent).securities_lv == Decimal("280000")
    assert BookPrice.objects.get(instrument__code="00700").price == Decimal("400.0000") and not MarginCall.objects.exists()
    assert CurrentPrice.objects.get(asset="00700").price_hkd == Decimal("400.00")
    services.override_decide(actor=credit_manager2, override_id=proposed.pk, approve=True)
    assert CurrentPrice.objects.get(asset="00700").price_hkd == Decimal("340.00")
    call = MarginCall.objects.get()
    assert call.facility_id == tencent.pk and call.shortfall == Decimal("12000.00")


def test_an_override_of_an_unknown_security_is_refused_and_nothing_is_stored(market, credit_manager):
    from datetime import timedelta

    from django.utils import timezone

    from lending.risk import services
    from lending.risk.models import PriceOverride
    from portal.errors import PortalError

    with pytest.raises(PortalError, match="Unknown asset"):
        services.override_propose(actor=credit_manager, asset="99999", price_hkd="10", expires_at=timezone.now() + timedelta(hours=4),
                                  reason="x", justification="x" * 30)
    assert not PriceOverride.objects.exists()


def test_the_prices_page_offers_every_listed_security_and_shows_a_securitys_override_by_its_holders(client, market, alice, credit_manager,
                                                                                                     credit_manager2):
    from lending.risk.models import PriceOverride

    book_facility(alice, holdings={"00700": 1000}, drawn="250000")
    revalue_book(trigger="beat")
    client.force_login(credit_manager)
    page = client.get("/risk/prices/").content.decode()
    assert page.count('<option value="00700">') == 2  # the desk quote and the override forms
    client.post("/risk/prices/", {"action": "override", "asset": "00700", "price_hkd": "340", "hours": "4", "reason": "Trading halted",
                                  "justification": "Halted pending an announcement; last trade 340."})
    assert PriceOverride.objects.get().asset == "00700"
    client.force_login(credit_manager2)
    page = client.get("/risk/prices/").content.decode()
    assert "Of the 1 facilities holding it, 1 would be in margin call, 0 at close-out; their shortfall HK$12,000.00" in page


def test_an_override_expiry_that_is_not_a_date_time_is_refused_not_replaced_by_four_hours(client, market, credit_manager):
    """A typed expiry the page cannot read is an error the credit manager sees; nothing is proposed in its place."""
    from datetime import timedelta

    from django.utils import timezone

    from lending.risk.models import PriceOverride

    client.force_login(credit_manager)
    for typed in ("tomorrow", "2026-13-01T10:00", "2026-12-03 25:00"):
        response = client.post("/risk/prices/", {"action": "override", "asset": "00700", "price_hkd": "340", "expires_at": typed,
                                                 "reason": "Trading halted", "justification": "Halted pending an announcement; last trade 340."},
                               follow=True)
        assert "Expires at must be a date and time such as 2026-03-02T16:10." in response.content.decode()
    assert not PriceOverride.objects.exists()
    client.post("/risk/prices/", {"action": "override", "asset": "00700", "price_hkd": "340", "expires_at": "",
                                  "reason": "Trading halted", "justification": "Halted pending an announcement; last trade 340."})
    assert PriceOverride.objects.get().expires_at > timezone.now() + timedelta(hours=3, minutes=59)  # blank: the hours field (4 by default)


def test_a_move_that_can_change_no_band_sends_no_valuation_statements(market, alice, charlie):
    """PostgreSQL's float prefilter finds no candidate: the exact valuation, the warning and the call statements
    would select from nothing and are not sent; a move that does reach a level is still recorded in full."""
    from tests.helpers import need_postgres

    need_postgres()
    calm = book_facility(alice, holdings={"00700": 1000}, drawn="50000")        # util 0.1786: far from every level
    near = book_facility(charlie, holdings={"00005": 5000}, drawn="250000")     # util 0.8929
    revalue_book(trigger="beat")
    with CaptureQueriesContext(connection) as ctx:
        set_prices({"00700": Decimal("404.00")})                                  # +1%: util 0.1768
    sent = " ".join(q["sql"] for q in ctx.captured_queries)
    assert "INSERT INTO risk_bandchange" not in sent and "INSERT INTO risk_warningcrossing" not in sent
    assert "UPDATE risk_margincall" not in sent
    assert RevaluationRun.objects.order_by("-id").first().band_changes == 0
    assert FacilityCoefficients.objects.get(facility=calm).securities_mv == Decimal("404000")
    run, _ = _tick({"00005": Decimal("68.00")})                                   # −15%: 238,000 → util 1.0504
    assert run.band_changes == 1 and MarginCall.objects.get().facility_id == near.pk
