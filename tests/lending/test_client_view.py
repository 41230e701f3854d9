"""Clients see what they may: vetted decline reasons, never the internal note, never the name screening;
a screening match blocks approval until compliance clears or confirms it."""

from __future__ import annotations

import pytest

from lending import services
from lending.models import AppState, FacilityApplication, ScreeningStatus
from portal.errors import ConflictError, ForbiddenError, PortalError
from portal.models import AuditEvent

from .conftest import submitted

API = "/api/v1/lending"


@pytest.fixture
def hit(eligible_client, officer, django_capture_on_commit_callbacks):
    """alice's application reviewed with a 100% watch-list match on her name."""
    services.watchlist_add(actor=officer, name="Alice Wong", category="sanctions", note="Listed 2025")
    return submitted(eligible_client, django_capture_on_commit_callbacks)


def test_a_declined_client_reads_vetted_reasons_and_never_the_internal_note_or_codes(client, api_client, hit, alice, officer):
    services.application_decline(actor=officer, application_id=hit.pk, reason_codes=["screening", "insufficient_collateral"],
                                 note="Sanctions list match: OFAC SDN")
    client.force_login(alice)
    page = client.get(f"/lending/applications/{hit.pk}/").content.decode()
    assert "The collateral offered does not support the facility requested." in page
    assert "We are unable to offer you this facility at present." in page
    for secret in ("Sanctions", "OFAC", "screening", "insufficient_collateral", "Name screening", "watch list"):
        assert secret not in page, secret
    api_client.force_login(alice)
    data = api_client.get(f"{API}/applications/{hit.pk}/").json()
    assert data["decline_reasons"] == [{"code": "general", "text": "We are unable to offer you this facility at present."},
                                       {"code": "collateral", "text": "The collateral offered does not support the facility requested."}]
    assert "decision_note" not in data and "recommendation" not in data and "screening_status" not in data
    assert "Sanctions" not in str(data)


def test_the_client_never_sees_the_screening_step_on_the_page_or_in_the_progress_api(client, api_client, hit, alice, officer):
    client.force_login(alice)
    page = client.get(f"/lending/applications/{hit.pk}/").content.decode()
    assert 'data-step="screening"' not in page and "Name screening" not in page
    api_client.force_login(alice)
    progress = api_client.get(f"{API}/applications/{hit.pk}/progress/").json()
    assert [s["code"] for s in progress["steps"]] == ["eligibility", "suitability", "disclosures", "valuation", "scorecard", "exposure"]
    api_client.force_login(officer)  # staff see every step
    assert "screening" in [s["code"] for s in api_client.get(f"{API}/applications/{hit.pk}/progress/").json()["steps"]]


def test_a_screening_match_blocks_approval_until_compliance_clears_it(hit, big_officer, compliance_user, officer):
    assert hit.screening_status == ScreeningStatus.PENDING
    with pytest.raises(ConflictError) as exc:
        services.application_approve(actor=big_officer, application_id=hit.pk, limit="3000000")
    assert exc.value.code == "screening_pending" and "compliance" in exc.value.message
    with pytest.raises(ForbiddenError):  # an officer cannot clear it
        services.application_screening_decide(actor=officer, application_id=hit.pk, confirmed=False, note="Different date of birth")
    with pytest.raises(PortalError):  # the check is recorded
        services.application_screening_decide(actor=compliance_user, application_id=hit.pk, confirmed=False, note=" ")
    services.application_screening_decide(actor=compliance_user, application_id=hit.pk, confirmed=False,
                                          note="Listed person born 1961 in Macau; client born 1980 in Hong Kong (HKID checked).")
    row = AuditEvent.objects.get(action="lending.application.screening_cleared", object_id=str(hit.pk))
    assert row.actor == compliance_user and row.after["screening_status"] == "cleared"
    services.application_approve(actor=big_officer, application_id=hit.pk, limit="3000000")
    # No longer blocked; approving against the review's referral still takes a credit manager's second approval.
    assert FacilityApplication.objects.get(pk=hit.pk).state == AppState.AWAITING_SECOND_APPROVAL


def test_a_confirmed_match_can_only_be_declined(hit, big_officer, compliance_user):
    services.application_screening_decide(actor=compliance_user, application_id=hit.pk, confirmed=True, note="Same HKID as the listing.")
    with pytest.raises(ConflictError) as exc:
        services.application_approve(actor=big_officer, application_id=hit.pk, limit="3000000")
    assert exc.value.code == "screening_confirmed"
    services.application_decline(actor=big_officer, application_id=hit.pk, reason_codes=["screening"])
    assert FacilityApplication.objects.get(pk=hit.pk).state == AppState.DECLINED


def test_compliance_decides_on_the_screening_page_and_api_and_others_are_refused(client, api_client, hit, compliance_user, officer, alice):
    client.force_login(officer)
    assert client.get("/lending/staff/screening/").status_code == 403
    client.force_login(alice)
    assert client.get("/lending/staff/screening/").status_code == 403
    client.logout()
    assert client.get("/lending/staff/screening/").status_code == 302
    client.force_login(compliance_user)
    page = client.get("/lending/staff/screening/").content.decode()
    assert hit.reference in page and "Alice Wong ≈ Alice Wong" in page
    assert client.get("/lending/staff/screening/?status=bogus").status_code == 400
    api_client.force_login(officer)
    assert api_client.get(f"{API}/staff/screening/").status_code == 403
    api_client.force_login(compliance_user)
    listed = api_client.get(f"{API}/staff/screening/").json()
    assert listed["results"][0]["id"] == hit.pk and listed["results"][0]["hits"][0]["score"] == 100.0
    response = api_client.post(f"{API}/staff/applications/{hit.pk}/screening/", {"outcome": "cleared", "note": "Different person (HKID)"}, format="json")
    assert response.status_code == 200 and response.json()["screening_status"] == "cleared"
    again = api_client.post(f"{API}/staff/applications/{hit.pk}/screening/", {"outcome": "confirmed", "note": "x"}, format="json")
    assert again.status_code == 409


def test_the_officer_sees_the_screening_state_and_the_internal_note_label(client, hit, officer):
    client.force_login(officer)
    page = client.get(f"/lending/staff/applications/{hit.pk}/").content.decode()
    assert "Possible match: awaiting compliance" in page and "Internal note (never shown to the client)" in page


def test_client_facing_decline_reasons_and_new_refusals_are_translated_to_traditional_chinese():
    from django.utils import translation

    from lending.inputs import InvalidParameter, choice_param
    from lending.models import client_decline_reasons

    with translation.override("zh-hant"):
        assert client_decline_reasons(["screening"])[0]["text"] == "本公司目前未能向您提供此融資。"
        with pytest.raises(InvalidParameter) as exc:
            choice_param({"state": "x"}, "state", choices=["a"])
        assert "不是有效的" in exc.value.message
