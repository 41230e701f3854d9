"""A security's last price stays usable for the collateral policy's number of days (the exchange shuts at
weekends and holidays); BTC and ETH keep the policy's freshness limit in minutes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from lending.risk import services
from portal.audit import SYSTEM
from portal.errors import PortalError
from tests.lending.conftest import POLICY_NUMBERS

pytestmark = pytest.mark.django_db


def quote(code, *, days_old):
    services.source_ensure(code="test", name="Test feed")
    return services.quotes_record(actor=SYSTEM, strict=True, rows=[
        {"source_code": "test", "asset": code, "price_hkd": "100", "as_of": timezone.now() - timedelta(days=days_old)}])


def test_a_security_quote_up_to_the_policy_days_old_is_accepted(policy, prices):
    quote("00700", days_old=3.9)  # the default: 4 days
    with pytest.raises(PortalError) as exc:
        quote("00700", days_old=4.1)
    assert exc.value.code == "quote_stale"


def test_the_days_are_a_number_of_the_policy_in_force(policy, prices, officer, credit_manager):
    from lending import services as lending_services

    proposed = lending_services.policy_propose(actor=officer, reason="Two days", numbers=POLICY_NUMBERS | {
        "marginable": POLICY_NUMBERS["marginable"] | {"securities_price_max_age_days": "2"}})
    lending_services.policy_approve(actor=credit_manager, policy_id=proposed.pk)
    quote("00700", days_old=1.9)
    with pytest.raises(PortalError) as exc:
        quote("00700", days_old=2.1)
    assert exc.value.code == "quote_stale"
    with pytest.raises(PortalError):  # BTC still in minutes
        services.quotes_record(actor=SYSTEM, strict=True, rows=[
            {"source_code": "test", "asset": "BTC", "price_hkd": "760000", "as_of": timezone.now() - timedelta(minutes=16)}])


def test_the_days_are_bounded_in_a_proposal(policy, officer):
    from lending import services as lending_services

    with pytest.raises(PortalError) as exc:
        lending_services.policy_propose(actor=officer, reason="Too long", numbers=POLICY_NUMBERS | {"marginable": {"securities_price_max_age_days": "30"}})
    assert "securities_price_max_age_days" in exc.value.fields
