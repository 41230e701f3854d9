"""The risk policy page in words and percentages: labelled numbers, % typed and shown, the change against the version in force."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lending.risk.models import RiskPolicy

pytestmark = pytest.mark.django_db
FORM = {"action": "propose", "source_deviation_max": "3", "volatility_alarm_level": "90", "stress_btc_shock": "-50",
        "stress_eth_shock": "-60", "stress_securities_shock": "-30", "quote_band_max": "90", "override_justification_level": "10",
        "reason": "Wider source band"}


def test_a_risk_policy_is_proposed_in_percentages_and_shows_what_it_changes(client, book, officer, credit_manager):
    client.force_login(officer)
    page = client.get("/risk/policy/").content.decode()
    assert "Largest deviation of a price source from the median (%)" in page and "source_deviation_max</label>" not in page
    assert 'name="source_deviation_max" value="2"' in page  # 0.0200 in force, shown as 2%
    client.post("/risk/policy/", FORM)
    proposed = RiskPolicy.objects.get(status="proposed")
    assert proposed.source_deviation_max == Decimal("0.0300") and proposed.stress_btc_shock == Decimal("-0.5000")
    client.force_login(credit_manager)
    page = client.get("/risk/policy/").content.decode()
    assert '<td>Largest deviation of a price source from the median</td><td class="num">2%</td><td class="num">3%</td>' in page
    assert "1 change against the version in force" in page


def test_a_risk_policy_can_be_approved_to_take_effect_later(book, officer, credit_manager):
    from datetime import timedelta

    from django.utils import timezone

    from lending import services as lending_services
    from lending.risk import selectors, services

    numbers = {k: v for k, v in FORM.items() if k not in ("action", "reason")}
    numbers = {k: str(Decimal(v) / 100) for k, v in numbers.items()}
    in_force = selectors.risk_policy_current()
    later = timezone.localdate() + timedelta(days=3)
    proposed = services.risk_policy_propose(actor=officer, numbers=numbers, reason="Next month", effective_from=later)
    services.risk_policy_decide(actor=credit_manager, policy_id=proposed.pk, approve=True)
    assert selectors.risk_policy_current().pk == in_force.pk
    assert lending_services.policies_take_effect(today=later) == 1
    assert selectors.risk_policy_current().pk == proposed.pk
