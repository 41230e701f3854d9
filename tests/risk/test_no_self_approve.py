"""Nobody is offered an "Approve" for their own proposal: the page leaves the button out (the services
refuse it as well); another credit manager sees it."""

from __future__ import annotations

import pytest

from lending.risk import services
from lending.risk.models import MarginCall
from lending.risk.revaluation import revalue_book

from .conftest import RISK_NUMBERS, make_facility

pytestmark = pytest.mark.django_db
MIXED = {"securities": (("10000000", "0.30"),), "btc": "2", "eth": "10"}


def _approve_buttons(client, user, path) -> int:
    client.force_login(user)
    body = client.get(path).content.decode()
    return body.count('value="approve"')


def test_the_proposer_of_a_risk_policy_sees_no_approve_button(client, book, credit_manager, credit_manager2):
    services.risk_policy_propose(actor=credit_manager, numbers=RISK_NUMBERS | {"volatility_alarm_level": "0.80"}, reason="Tighter alarm")
    assert _approve_buttons(client, credit_manager, "/risk/policy/") == 0
    assert "Awaiting another credit manager" in client.get("/risk/policy/").content.decode()
    assert _approve_buttons(client, credit_manager2, "/risk/policy/") == 1


def test_the_proposer_of_a_close_out_or_waiver_sees_no_approve_button(client, book, alice, officer, credit_manager, credit_manager2):
    make_facility(alice, drawn="8000000", officer=officer, **MIXED)
    revalue_book(notify=False)
    call = MarginCall.objects.get()
    services.margin_call_escalate(actor=officer, call_id=call.pk, reason="Client unreachable")
    services.margin_call_propose(actor=credit_manager, call_id=call.pk, resolution="waive", reason="Top-up in transit")
    path = f"/risk/margin-calls/{call.pk}/"
    assert _approve_buttons(client, credit_manager, path) == 0
    assert 'data-testid="awaiting-other-manager"' in client.get(path).content.decode()
    assert _approve_buttons(client, credit_manager2, path) == 1


def test_the_proposer_of_a_collateral_policy_sees_no_approve_button(client, policy, credit_manager, credit_manager2):
    from lending import services as lending_services
    from lending.demo import POLICY_V1

    lending_services.policy_propose(actor=credit_manager, numbers=POLICY_V1 | {"cure_days": 3}, reason="Longer cure")
    assert _approve_buttons(client, credit_manager, "/lending/staff/policy/") == 0
    assert _approve_buttons(client, credit_manager2, "/lending/staff/policy/") == 1
