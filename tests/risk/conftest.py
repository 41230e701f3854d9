"""Risk fixtures: lending's policy in force, reference prices, and a factory for facilities with positions.

Facilities are built directly (application row, facility, positions) so a test can describe a book of
any shape in a few lines; the credit-review path that normally creates them is lending's to test.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

# The same collateral policy as lending's tests, so both suites value collateral alike.
from tests.lending.conftest import BTC_PRICE as BTC  # noqa: E402
from tests.lending.conftest import ETH_PRICE as ETH  # noqa: E402
from tests.lending.conftest import approved_policy  # noqa: E402

# Tests move prices far in one step (a crash to HK$100,000): the risk policy in force lets quotes move
# up to 90% from the reference (the production default is 25%; tests of the band set their own).
RISK_NUMBERS = {"source_deviation_max": "0.02", "volatility_alarm_level": "0.90", "stress_btc_shock": "-0.50",
                "stress_eth_shock": "-0.60", "stress_securities_shock": "-0.30", "quote_band_max": "0.90",
                "override_justification_level": "0.10"}


@pytest.fixture
def policy(db, officer, credit_manager):
    from lending.risk import services

    risk = services.risk_policy_propose(actor=officer, numbers=RISK_NUMBERS, reason="Test risk policy")
    services.risk_policy_decide(actor=credit_manager, policy_id=risk.pk, approve=True)
    return approved_policy(officer=officer, credit_manager=credit_manager)


def set_prices(btc=BTC, eth=ETH):
    from tests.lending.conftest import set_prices as quote_test_feed

    return quote_test_feed(btc=btc, eth=eth)


@pytest.fixture
def prices(db):
    return set_prices()


@pytest.fixture
def book(policy, prices):
    """The policy in force and prices set: ready for facilities."""
    return policy


def make_facility(client, *, drawn="0", securities=(("10000000", "0.30"),), btc="0", eth="0", officer=None, policy=None, state="active"):
    """A facility with securities lines [(market value, haircut)], BTC/ETH quantities (haircuts 60%/65%) and a drawn balance."""
    from django.db import transaction
    from django.utils import timezone

    from lending import selectors as lending_selectors
    from lending.models import CollateralPosition, Facility, FacilityApplication
    from lending.risk import book as risk_book

    policy = policy or lending_selectors.policy_current()
    with transaction.atomic():
        app = FacilityApplication.objects.create(client=client, requested_limit=Decimal("50000000"), purpose="test", decided_by=officer)
        facility = Facility.objects.create(client=client, application=app, limit=Decimal("50000000"), drawn_balance=Decimal(drawn),
                                           policy=policy, letter_sha256="0" * 64, accepted_at=timezone.now())
        rows = [CollateralPosition(facility=facility, kind="securities", haircut_class="A", market_value=Decimal(mv), haircut=Decimal(h),
                                   description="sec") for mv, h in securities]
        if Decimal(btc):
            rows.append(CollateralPosition(facility=facility, kind="virtual_asset", asset="BTC", quantity=Decimal(btc), haircut=Decimal("0.60")))
        if Decimal(eth):
            rows.append(CollateralPosition(facility=facility, kind="virtual_asset", asset="ETH", quantity=Decimal(eth), haircut=Decimal("0.65")))
        CollateralPosition.objects.bulk_create(rows)
        risk_book.coefficients_refresh(now=timezone.now(), facility_ids=[facility.pk])
    if state == "suspended":
        Facility.objects.filter(pk=facility.pk).update(state="suspended")
    return Facility.objects.get(pk=facility.pk)


def reload(facility):
    from lending.models import Facility

    return Facility.objects.get(pk=facility.pk)


@pytest.fixture
def sources(db):
    """Three feeds; the fixtures' test feed is deactivated so the median is theirs alone."""
    from lending.risk import services
    from lending.risk.models import PriceSource
    from portal.audit import SYSTEM

    test_feed = PriceSource.objects.filter(code="test").first()
    if test_feed is not None:
        services.price_source_update(actor=SYSTEM, source_id=test_feed.pk, active=False, reason="tests of the three-source median")
    return [services.source_ensure(code=c, name=c.upper()) for c in ("alpha", "beta", "gamma")]
