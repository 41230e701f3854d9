"""The audit trail page filters what compliance asked for, and never more."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_audit_trail_with_a_mistyped_date_shows_the_error_and_no_rows(client, compliance_user):
    client.force_login(compliance_user)
    response = client.get("/workbench/audit/", {"since": "31/02/2026"})
    assert response.status_code == 200
    assert response.context["form"].errors["since"]
    assert list(response.context["page"]) == []


def test_audit_trail_filters_by_action_prefix(client, compliance_user, alice):
    client.force_login(compliance_user)
    response = client.get("/workbench/audit/", {"action": "user.created", "actor": ""})
    actions = {e.action for e in response.context["page"]}
    assert actions == {"user.created"}


def test_api_permission_message_follows_the_language(api_client, alice):
    api_client.force_authenticate(alice)
    response = api_client.get("/api/v1/audit/", HTTP_ACCEPT_LANGUAGE="zh-hant")
    assert response.status_code == 403
    assert response.json()["error"]["message"] != "You do not have permission to do this."


def test_a_reversed_date_range_is_refused_on_the_page_and_the_api(client, compliance_user, alice):
    """A To before the From matches nothing: it is the user's slip, said as such, not an empty trail."""
    client.force_login(compliance_user)
    response = client.get("/workbench/audit/", {"since": "2026-03-10", "until": "2026-03-01"})
    assert response.status_code == 200
    assert response.context["form"].errors["until"] == ["The end date is before the start date."]
    assert list(response.context["page"]) == []
    api = client.get("/api/v1/audit/", {"since": "2026-03-10", "until": "2026-03-01"})
    assert api.status_code == 400
    assert api.json()["error"]["fields"]["until"] == ["The end date is before the start date."]
    assert client.get("/api/v1/audit/", {"since": "2026-03-01", "until": "2026-03-01"}).status_code == 200
