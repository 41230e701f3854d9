"""An approved collateral policy reaches the whole open book: the active facilities through the tick, the suspended ones
(being closed out) through the engine's close-out valuation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.collateral.conftest import book_facility, set_prices

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(policy):
    set_prices({"BTC": Decimal("760000.00"), "ETH": Decimal("27000.00"), "00005": Decimal("80.00")})
    return policy


def test_an_approved_haircut_change_revalues_a_suspended_facility_too(market, alice, officer, credit_manager):
    """The ticks value active facilities only: a suspended facility (being closed out) kept its old lending value and
    the version that valued it after an approval re-haircut its positions (the list said one figure, its page another)."""
    from lending import services
    from lending.models import Facility
    from tests.lending.conftest import POLICY_NUMBERS

    facility = book_facility(alice, holdings={"00005": 5000}, drawn="100000")  # 400,000 at 30%: LV 280,000
    from lending.risk.revaluation import revalue_facility

    revalue_facility(facility_id=facility.pk)
    Facility.objects.filter(pk=facility.pk).update(state="suspended")
    assert Facility.objects.get(pk=facility.pk).lending_value == Decimal("280000.00")
    proposed = services.policy_propose(actor=officer, reason="HSBC 50%", numbers=POLICY_NUMBERS | {"marginable": {"entries": {"00005": "0.50"}}})
    services.policy_approve(actor=credit_manager, policy_id=proposed.pk)
    facility.refresh_from_db()
    assert facility.state == "suspended"
    assert facility.lending_value == Decimal("200000.00") and facility.valued_policy_version == proposed.version
    assert facility.utilisation == Decimal("0.5000")


def test_the_staff_facility_page_and_api_say_which_policy_version_valued_it(client, market, alice, credit_manager):
    from lending.risk.revaluation import revalue_facility

    facility = book_facility(alice, holdings={"00005": 5000}, drawn="100000")
    revalue_facility(facility_id=facility.pk)
    client.force_login(credit_manager)
    page = client.get(f"/lending/staff/facilities/{facility.pk}/").content.decode()
    assert f'data-testid="valued-policy-version">collateral policy v{market.version}<' in page
    assert client.get(f"/api/v1/lending/staff/facilities/{facility.pk}/").json()["valued_policy_version"] == market.version


def test_the_risk_boards_concentration_counts_va_after_its_cap_and_adds_up_to_the_book(market, alice, charlie):
    """The panel added BTC's lending value before each facility's VA cap, so its total (HK$52,774,476.87) was not the
    book's (HK$52,679,863.77) and every share was of the wrong total; and it flagged firm limits the policy does not apply
    below its minimum book."""
    from lending.collateral.selectors import concentration
    from lending.risk import book
    from lending.risk.revaluation import current_inputs, revalue_book

    book_facility(alice, holdings={"00005": 1000, "BTC": "1"}, drawn="10000")   # securities LV 56,000; BTC LV 304,000 capped
    book_facility(charlie, holdings={"00005": 5000}, drawn="10000")
    revalue_book()
    policy, prices = current_inputs()
    rows = book.fetch(f"SELECT COALESCE(SUM(v.lv), 0) AS lv FROM ({book.live_sql()}) v", book.Scenario.current(policy=policy, prices=prices).params())
    book_lv = Decimal(str(rows[0]["lv"])).quantize(Decimal("0.01"))
    c = concentration()
    assert c["total_lending_value"] == book_lv
    btc = next(g for g in c["by_instrument"] if g["name"] == "BTC")
    securities_lv = Decimal("80") * 6000 * Decimal("0.70")  # 6,000 HSBC at HK$80 with a 30% haircut
    assert btc["lv"] + securities_lv == book_lv  # BTC at its capped value: the rows add up to the book
    assert c["firm_limits_apply"] is False and not any(g["over"] for g in c["by_instrument"] + c["by_issuer"])
