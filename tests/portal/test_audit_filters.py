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


def test_a_record_is_linked_only_for_a_reader_who_may_open_its_page(client, compliance_user, credit_manager, alice):
    """Compliance reads every row, but a margin call's page is for those who manage calls: its reference stays
    text for them (it linked to a 403); a reader who also manages calls follows it."""
    from django.db import transaction

    from portal.audit import audit_log
    from portal.permissions import Perm

    with transaction.atomic():
        audit_log(actor=credit_manager, action="risk.margin_call.noted", object_type="risk.margincall", object_id="7")
    client.force_login(compliance_user)
    rows = {e.object_type: e.link for e in client.get("/workbench/audit/", {"action": "risk.margin_call.noted"}).context["page"]}
    assert rows == {"risk.margincall": ""}
    page = client.get("/workbench/audit/", {"action": "user.created", "object_type": "portal.user", "object_id": str(alice.pk)}).context["page"]
    assert [e.link for e in page] == [f"/onboarding/staff/clients/{alice.pk}/"]
    assert client.get(page[0].link).status_code != 403
    from django.contrib.auth.models import Permission

    credit_manager.user_permissions.add(Permission.objects.get(codename=Perm.AUDIT_VIEW.codename))  # a reader of both
    client.force_login(credit_manager)
    rows = {e.object_type: e.link for e in client.get("/workbench/audit/", {"action": "risk.margin_call.noted"}).context["page"]}
    assert rows == {"risk.margincall": "/risk/margin-calls/7/"}
