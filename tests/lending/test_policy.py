from decimal import Decimal

import pytest

from lending import selectors, services
from lending.models import CollateralPolicy, PolicyStatus
from lending.valuation import LineInput, value_collateral
from portal.errors import ForbiddenError, PortalError
from portal.models import AuditEvent

from .conftest import POLICY_NUMBERS


def test_va_haircut_under_60_percent_is_refused_citing_the_rule(officer, policy):
    with pytest.raises(PortalError) as exc:
        services.policy_propose(actor=officer, numbers=POLICY_NUMBERS | {"btc_haircut": "0.55"}, reason="cheaper")
    assert exc.value.code == "va_haircut_below_floor"
    assert "60%" in exc.value.message and "26EC5" in exc.value.message
    assert CollateralPolicy.objects.count() == 1


def test_eth_haircut_under_60_percent_is_refused(officer, policy):
    with pytest.raises(PortalError):
        services.policy_propose(actor=officer, numbers=POLICY_NUMBERS | {"eth_haircut": "0.5999"}, reason="x")


def test_monitoring_levels_must_rise(officer, policy):
    with pytest.raises(PortalError):
        services.policy_propose(actor=officer, numbers=POLICY_NUMBERS | {"watch_level": "1.10"}, reason="x")


def test_policy_change_needs_a_different_credit_manager(officer, credit_manager, policy):
    proposed = services.policy_propose(actor=credit_manager, numbers=POLICY_NUMBERS | {"btc_haircut": "0.70"}, reason="Volatility")
    with pytest.raises(ForbiddenError):
        services.policy_approve(actor=credit_manager, policy_id=proposed.pk)
    with pytest.raises(ForbiddenError):
        services.policy_approve(actor=officer, policy_id=proposed.pk)  # an officer cannot approve at all
    assert selectors.policy_current().version == 1


def test_approving_supersedes_the_version_in_force_and_keeps_before_after(officer, credit_manager, policy):
    proposed = services.policy_propose(actor=officer, numbers=POLICY_NUMBERS | {"btc_haircut": "0.70"}, reason="Volatility")
    services.policy_approve(actor=credit_manager, policy_id=proposed.pk)
    assert selectors.policy_current().version == 2
    assert CollateralPolicy.objects.get(version=1).status == PolicyStatus.SUPERSEDED
    event = AuditEvent.objects.filter(action="lending.policy.proposed", object_id=str(proposed.pk)).get()
    assert event.before["btc_haircut"] == "0.6000" and event.after["btc_haircut"] == "0.7000"


def test_va_share_cap_limits_the_va_lending_value(policy):
    # securities 1,000,000 class A → 700,000; 10 BTC at 760,000 → 3,040,000 after the 60% haircut.
    lines = [LineInput("securities", haircut_class="A", market_value=Decimal("1000000")), LineInput("virtual_asset", asset="BTC", quantity=Decimal("10"))]
    valuation = value_collateral(lines=lines, policy=policy, prices={"BTC": Decimal("760000")})
    assert valuation.va_lending_value_uncapped == Decimal("3040000")
    # VA may provide at most 40%: 700,000 × 0.4 / 0.6.
    assert valuation.va_capped
    assert valuation.va_share == Decimal("0.4000")
    assert valuation.lending_value.quantize(Decimal("0.01")) == Decimal("1166666.67")


def test_lending_value_is_market_value_times_one_minus_haircut(policy):
    lines = [LineInput("securities", haircut_class="B", market_value=Decimal("2000000")), LineInput("virtual_asset", asset="ETH", quantity=Decimal("10"))]
    valuation = value_collateral(lines=lines, policy=policy, prices={"ETH": Decimal("27000")})
    assert valuation.lending_value == Decimal("1000000") + Decimal("270000") * Decimal("0.35")


def test_price_file_with_a_bad_row_loads_nothing(officer, policy, prices):
    from django.utils import timezone

    from lending.risk import services as risk_services
    from lending.risk.models import PriceQuote
    from portal.audit import SYSTEM

    risk_services.price_source_create(actor=SYSTEM, code="desk", name="Dealing desk", kind="desk")
    now = timezone.now().isoformat()
    rows = risk_services.quotes_parse(content=f"source,asset,price_hkd,as_of\ndesk,BTC,760000,{now}\ndesk,DOGE,1,{now}\n")
    before = PriceQuote.objects.count()
    with pytest.raises(PortalError) as exc:
        risk_services.quotes_record(actor=officer, rows=rows, strict=True)
    assert "Row 2" in exc.value.message
    assert PriceQuote.objects.count() == before
