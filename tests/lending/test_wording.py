"""Refusals say what happened, in staff words."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lending import services
from portal.errors import ConflictError, ForbiddenError
from tests.helpers import make_user


def test_an_officer_losing_a_decision_race_reads_staff_words_not_the_clients_label(reviewed, officer, officer2):
    services.application_approve(actor=officer, application_id=reviewed.pk, limit="3000000")
    with pytest.raises(ConflictError) as exc:
        services.application_decline(actor=officer2, application_id=reviewed.pk, reason_codes=["other"])
    message = exc.value.message
    assert "Another decision was recorded first" in message and "waiting for the client to accept the facility letter" in message
    assert officer.full_name in message or officer.email in message
    assert "awaiting your acceptance" not in message


@pytest.fixture
def awaiting_second(reviewed):
    first = make_user("credit_manager", email="first@example.com", full_name="First Manager", authority_limit=Decimal("1000000"))
    services.application_approve(actor=first, application_id=reviewed.pk, limit="3000000")  # above its own authority
    return reviewed, first


def test_the_first_approver_is_told_a_different_credit_manager_must_give_the_second(awaiting_second):
    app, first = awaiting_second
    with pytest.raises(ForbiddenError) as exc:
        services.application_second_approve(actor=first, application_id=app.pk)
    assert exc.value.message == "You gave the first approval: a different credit manager must give the second."


def test_an_officer_trying_a_second_approval_is_told_a_credit_manager_is_needed(api_client, awaiting_second, officer):
    app, _first = awaiting_second
    with pytest.raises(ForbiddenError) as exc:
        services.application_second_approve(actor=officer, application_id=app.pk)
    assert "Only a credit manager" in exc.value.message
    api_client.force_login(officer)
    response = api_client.post(f"/api/v1/lending/staff/applications/{app.pk}/second-approve/", {}, format="json")
    assert response.status_code == 403 and "Only a credit manager" in response.json()["error"]["message"]
