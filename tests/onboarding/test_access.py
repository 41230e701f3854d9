"""Who reaches what: pages, API and the evidence file view; query counts pinned on the queue and dashboard."""

from __future__ import annotations

import pytest
from django.utils import timezone

from onboarding import services
from onboarding.models import ClientProfile, PIAttestation, PIEvidence, PIState
from portal.products import Product
from tests.helpers import make_user
from tests.onboarding.conftest import (
    ALL_TICKED,
    ANSWERS,
    PROFILE,
    acknowledge,
    answers_with,
    complete_assessment,
    draft_attestation,
    make_profile,
    pdf_upload,
    png_bytes,
    submitted_attestation,
)

pytestmark = pytest.mark.django_db

CLIENT_PAGES = ["/onboarding/", "/onboarding/profile/", "/onboarding/professional-investor/", "/onboarding/suitability/",
                "/onboarding/training/va/", "/onboarding/perpetuals/"]


@pytest.fixture
def evidence(alice):
    return draft_attestation(alice).evidence.get()


def mfa_login(client, user):
    client.force_login(user)


# --- pages -------------------------------------------------------------------------


@pytest.mark.parametrize("url", CLIENT_PAGES)
def test_client_pages_open_for_the_client_and_send_anonymous_to_sign_in(client, alice, url):
    assert client.get(url).status_code == 302
    client.force_login(alice)
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", CLIENT_PAGES)
def test_client_pages_refuse_staff(client, officer, url):
    client.force_login(officer)
    assert client.get(url).status_code == 403


def test_profile_page_shows_the_full_number_to_its_owner_only_and_masked_elsewhere(client, alice, officer):
    make_profile(alice)
    client.force_login(alice)
    assert "A1234567" in client.get("/onboarding/profile/").content.decode()
    assert ClientProfile.objects.get(user=alice).masked_id_number == "A•••••67"
    api = client.get("/api/v1/onboarding/profile/").json()
    assert api["id_document_number_masked"] == "A•••••67" and "id_document_number" not in api


def test_profile_page_saves_through_the_service_and_refuses_bad_input(client, alice):
    client.force_login(alice)
    data = {**PROFILE, "other_names": "黃愛麗", "annual_income": "-5"}
    response = client.post("/onboarding/profile/", data)
    assert response.status_code == 200
    assert ClientProfile.objects.get(user=alice).annual_income is None
    response = client.post("/onboarding/profile/", {**data, "annual_income": "2400000"})
    assert response.status_code == 302
    assert ClientProfile.objects.get(user=alice).other_names == ["黃愛麗"]


def test_staff_queue_and_review_pages_need_the_permission(client, alice, officer, admin_user, charlie):
    make_profile(alice)
    attestation = submitted_attestation(alice)
    for url in ["/onboarding/staff/", f"/onboarding/staff/attestations/{attestation.pk}/", f"/onboarding/staff/clients/{alice.pk}/"]:
        client.force_login(charlie)
        assert client.get(url).status_code == 403
        client.force_login(officer)
        assert client.get(url).status_code == 200
    client.force_login(admin_user)
    assert client.get(f"/onboarding/staff/attestations/{attestation.pk}/").status_code == 403
    client.logout()
    assert client.get("/onboarding/staff/").status_code == 302


def test_officer_verifies_on_the_review_page_with_evidence_inline(client, alice, officer):
    attestation = submitted_attestation(alice)
    client.force_login(officer)
    page = client.get(f"/onboarding/staff/attestations/{attestation.pk}/").content.decode()
    evidence = attestation.evidence.get()
    assert f'/onboarding/evidence/{evidence.pk}/' in page and "<object" in page
    assert "HK$8,000,000.00" in page
    response = client.post(f"/onboarding/staff/attestations/{attestation.pk}/", {"decision": "verify", **{f"check_{k}": "on" for k in ALL_TICKED}})
    assert response.status_code == 302
    assert PIAttestation.objects.get(pk=attestation.pk).state == PIState.VERIFIED


def test_review_page_refuses_verification_with_a_missing_tick(client, alice, officer):
    attestation = submitted_attestation(alice)
    client.force_login(officer)
    response = client.post(f"/onboarding/staff/attestations/{attestation.pk}/", {"decision": "verify", "check_identity_matches": "on"})
    assert response.status_code == 200
    assert "Tick every checklist item" in response.content.decode()
    assert PIAttestation.objects.get(pk=attestation.pk).state == PIState.SUBMITTED


def test_queue_is_oldest_first_with_a_fixed_number_of_queries(client, officer, django_assert_num_queries):
    clients = [make_user("client", email=f"c{i}@example.com") for i in range(4)]
    for c in clients:
        submitted_attestation(c)
    make_profile(clients[0])
    client.force_login(officer)
    client.get("/onboarding/staff/")  # warm the session and permission caches
    # session, user, groups, MFA, perms, unread count; 4 queue queries and the total
    with django_assert_num_queries(11):
        response = client.get("/onboarding/staff/")
    rows = [i.client_email for i in response.context["items"] if i.kind == "attestation"]
    assert rows == [c.email for c in clients]
    for i in range(3):
        submitted_attestation(make_user("client", email=f"more{i}@example.com"))
    with django_assert_num_queries(11):
        client.get("/onboarding/staff/")


def test_the_onboarding_queue_is_paginated_oldest_first_at_a_fixed_cost(client, officer, django_assert_num_queries, monkeypatch):
    from onboarding import views

    monkeypatch.setattr(views, "QUEUE_PAGE", 3)
    clients = [make_user("client", email=f"p{i}@example.com") for i in range(7)]
    for c in clients:
        submitted_attestation(c)
    client.force_login(officer)
    client.get("/onboarding/staff/")
    with django_assert_num_queries(11):
        first = client.get("/onboarding/staff/")
    assert [i.client_email for i in first.context["items"]] == [c.email for c in clients[:3]]
    assert first.context["has_next"] and first.context["total"] == 7
    assert "7 items waiting" in first.content.decode()
    with django_assert_num_queries(11):
        last = client.get("/onboarding/staff/?page=3")
    assert [i.client_email for i in last.context["items"]] == [clients[6].email] and not last.context["has_next"]
    assert client.get("/onboarding/staff/?page=x").context["page"] == 1


def test_dashboard_checklist_panel_has_a_fixed_number_of_queries(client, rf, alice, officer, django_assert_num_queries):
    from onboarding import panels

    request = rf.get("/dashboard/")
    request.user = alice
    # profile, latest assessment, attestations, policy; disclosures: one query for every product
    with django_assert_num_queries(5):
        panels.client_checklist(request)
    make_profile(alice)
    complete_assessment(alice)
    submitted_attestation(alice)
    request = rf.get("/dashboard/")  # a new request: eligibility is kept only for the request that computed it
    request.user = alice
    with django_assert_num_queries(5):
        template, context = panels.client_checklist(request)
    checklist = context["checklist"]
    assert [r.code for r in checklist.steps] == ["profile_complete", "margin_account", "suitability", "risk_profile", "va_knowledge", "disclosures"]
    assert [r.code for r in checklist.optional] == ["professional_investor", "derivative_knowledge", "disclosures"]
    client.force_login(alice)
    client.get("/dashboard/")
    # + one query for the risk engine's client panel (open margin calls, a single sliced query)
    # + the lending panel's applications and facilities (its eligibility is the checklist's, computed once)
    # + one for the MFA prompt (has the client an authenticator?)
    with django_assert_num_queries(14) as captured:
        response = client.get("/dashboard/")
    assert 'data-requirement="suitability" data-met="yes"' in response.content.decode()
    assert len(captured.captured_queries) == 14


def test_workbench_queue_panel_has_a_fixed_number_of_queries(rf, officer, django_assert_num_queries):
    from onboarding import panels

    request = rf.get("/workbench/")
    request.user = officer
    officer.has_perm("portal.review_onboarding")  # load the permission cache once
    # the oldest attestations, margin accounts, perpetuals requests (an officer does not review suitability), and the total
    with django_assert_num_queries(4):
        panels.staff_queue(request)
    for i in range(3):
        submitted_attestation(make_user("client", email=f"p{i}@example.com"))
    with django_assert_num_queries(4):
        _template, context = panels.staff_queue(request)
    assert context["total"] == 3


def test_workbench_shows_the_onboarding_queue_panel(client, alice, officer):
    submitted_attestation(alice)
    client.force_login(officer)
    body = client.get("/workbench/").content.decode()
    assert "Onboarding queue" in body and "Alice Wong" in body


# --- the evidence file view ------------------------------------------------------------


def test_owner_and_reviewing_staff_can_open_evidence(client, alice, officer, compliance_user, evidence):
    for user in (alice, officer, compliance_user):
        client.force_login(user)
        response = client.get(f"/onboarding/evidence/{evidence.pk}/")
        assert response.status_code == 200
        assert response["Content-Type"] == "application/pdf"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert b"".join(response.streaming_content).startswith(b"%PDF")


def test_nobody_else_reaches_evidence(client, charlie, admin_user, evidence):
    url = f"/onboarding/evidence/{evidence.pk}/"
    assert client.get(url).status_code == 302
    client.force_login(charlie)
    assert client.get(url).status_code == 404
    client.force_login(admin_user)  # staff without the onboarding permission
    assert client.get(url).status_code == 404
    assert client.get("/onboarding/evidence/999999/").status_code == 404


def test_staff_cannot_open_evidence_on_their_own_client_record(client, officer):
    from portal.permissions import Role
    from portal.services import user_add_role

    user_add_role(user=officer, role=Role.CLIENT)
    own = draft_attestation(officer).evidence.get()
    other_officer = make_user("account_officer", email="o2@example.com")
    client.force_login(other_officer)
    assert client.get(f"/onboarding/evidence/{own.pk}/").status_code == 200
    # The officer as a client sees their own upload; the staff check only stops acting as staff on it.
    client.force_login(officer)
    assert client.get(f"/onboarding/evidence/{own.pk}/").status_code == 200


def test_evidence_is_not_under_any_public_url(client, alice, evidence, settings):
    client.force_login(alice)
    assert client.get(f"/media/{evidence.file.name}").status_code == 404
    assert client.get(f"/{evidence.file.name}").status_code == 404


# --- API ---------------------------------------------------------------------------------


def test_api_client_flow_profile_attestation_upload_submit(api_client, alice):
    acknowledge(alice, Product.PROFESSIONAL_INVESTOR)
    api_client.force_authenticate(alice)
    r = api_client.patch("/api/v1/onboarding/profile/", PROFILE, format="json")
    assert r.status_code == 200 and r.json()["is_complete"]
    r = api_client.post("/api/v1/onboarding/attestations/", {"category": "individual", "basis": "portfolio", "declared_amount": "8000000.00",
                                                           "relevant_date": timezone.localdate().isoformat(), "understood_pi_treatment": True}, format="json")
    assert r.status_code == 201, r.json()
    pk = r.json()["id"]
    r = api_client.get(f"/api/v1/onboarding/attestations/{pk}/")
    assert [p["code"] for p in r.json()["problems"]] == ["evidence_missing"]
    r = api_client.post(f"/api/v1/onboarding/attestations/{pk}/evidence/", {"kind": "statement", "issued_on": timezone.localdate().isoformat(),
                                                                          "file": pdf_upload("x.png", png_bytes())}, format="multipart")
    assert r.status_code == 201 and r.json()["content_type"] == "image/png"
    r = api_client.post(f"/api/v1/onboarding/attestations/{pk}/submit/", HTTP_IDEMPOTENCY_KEY="k1")
    assert r.status_code == 200 and r.json()["state"] == "submitted"
    again = api_client.post(f"/api/v1/onboarding/attestations/{pk}/submit/", HTTP_IDEMPOTENCY_KEY="k1")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"


def test_api_spoofed_upload_gets_a_clear_error(api_client, alice):
    attestation = services.attestation_create(client=alice, data={})
    api_client.force_authenticate(alice)
    r = api_client.post(f"/api/v1/onboarding/attestations/{attestation.pk}/evidence/",
                        {"kind": "statement", "issued_on": timezone.localdate().isoformat(), "file": pdf_upload("a.pdf", b"not a pdf at all")}, format="multipart")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_evidence"
    assert not PIEvidence.objects.exists()


def test_api_below_threshold_submit_says_what_is_missing(api_client, alice):
    acknowledge(alice, Product.PROFESSIONAL_INVESTOR)
    attestation = draft_attestation(alice, amount="7999999.99")
    api_client.force_authenticate(alice)
    r = api_client.post(f"/api/v1/onboarding/attestations/{attestation.pk}/submit/")
    assert r.status_code == 400
    assert r.json()["error"]["fields"]["problems"] == ["The declared portfolio of HK$7,999,999.99 is below the minimum of HK$8,000,000.00 for the category “Individual”."]


def test_api_outsider_reaches_nobodys_attestation_or_assessment(api_client, alice, charlie):
    attestation = draft_attestation(alice)
    make_profile(alice)
    assessment = complete_assessment(alice)
    api_client.force_authenticate(charlie)
    for url in [f"/api/v1/onboarding/attestations/{attestation.pk}/", f"/api/v1/onboarding/assessments/{assessment.pk}/"]:
        assert api_client.get(url).status_code == 404
    assert api_client.post(f"/api/v1/onboarding/attestations/{attestation.pk}/submit/").status_code == 404
    assert api_client.post(f"/api/v1/onboarding/attestations/{attestation.pk}/evidence/", {}, format="multipart").status_code == 404
    assert api_client.patch(f"/api/v1/onboarding/attestations/{attestation.pk}/", {"declared_amount": "1"}, format="json").status_code == 404
    assert api_client.get("/api/v1/onboarding/attestations/").json() == []
    assert api_client.get("/api/v1/onboarding/assessments/").json() == []
    api_client.force_authenticate(None)
    assert api_client.get("/api/v1/onboarding/attestations/").status_code in (401, 403)


def test_api_questionnaire_steps_and_complete(api_client, alice):
    make_profile(alice)
    api_client.force_authenticate(alice)
    assert api_client.get("/api/v1/onboarding/questionnaire/").json()["version"] == 1
    pk = api_client.post("/api/v1/onboarding/assessments/").json()["id"]
    bad = api_client.post(f"/api/v1/onboarding/assessments/{pk}/steps/", {"step": 0, "answers": {"income_stability": "lots"}}, format="json")
    assert bad.status_code == 400 and "income_stability" in bad.json()["error"]["fields"]
    for index, answers in enumerate(ANSWERS):
        r = api_client.post(f"/api/v1/onboarding/assessments/{pk}/steps/", {"step": index, "answers": answers}, format="json")
        assert r.status_code == 200, r.json()
    r = api_client.post(f"/api/v1/onboarding/assessments/{pk}/complete/")
    assert r.status_code == 200
    body = r.json()
    assert body["risk_profile"] == 4 and body["va_knowledge_basis"] == "training" and body["risk_reasons"]
    again = api_client.post(f"/api/v1/onboarding/assessments/{pk}/complete/")
    assert again.status_code == 409


def test_api_training_and_eligibility(api_client, alice):
    api_client.force_authenticate(alice)
    module = api_client.get("/api/v1/onboarding/training/va/").json()
    assert module["pass_mark_pct"] == 80 and len(module["quiz"]) == 5
    from onboarding.training import MODULES

    r = api_client.post("/api/v1/onboarding/training/va/", {"answers": {q.code: q.correct for q in MODULES["va"].quiz}}, format="json")
    assert r.status_code == 201 and r.json()["passed"]
    eligibility = api_client.get("/api/v1/onboarding/eligibility/").json()
    assert [e["product"] for e in eligibility] == ["va_margin", "perpetuals"]
    assert eligibility[0]["requirements"][0]["code"] == "margin_account"


def test_api_staff_decisions_need_permission_and_never_the_client(api_client, client, alice, officer, admin_user):
    attestation = submitted_attestation(alice)
    url = f"/api/v1/onboarding/staff/attestations/{attestation.pk}/decision/"
    payload = {"decision": "verify", "checklist": ALL_TICKED}
    api_client.force_authenticate(alice)
    assert api_client.post(url, payload, format="json").status_code == 403
    client.force_login(admin_user)
    assert client.post(url, payload, content_type="application/json").status_code == 403
    assert PIAttestation.objects.get(pk=attestation.pk).state == PIState.SUBMITTED
    client.force_login(officer)
    assert client.get("/api/v1/onboarding/staff/queue/").json()[0]["kind"] == "attestation"
    r = client.post(url, payload, content_type="application/json")
    assert r.status_code == 200 and r.json()["state"] == "verified"
    r = client.post(url, payload, content_type="application/json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"


def test_api_staff_profile_shows_the_full_number_and_confirms_margin_account(client, alice, officer, charlie):
    make_profile(alice)
    client.force_login(charlie)
    assert client.get(f"/api/v1/onboarding/staff/clients/{alice.pk}/profile/").status_code == 403
    client.force_login(officer)
    assert client.get(f"/api/v1/onboarding/staff/clients/{alice.pk}/profile/").json()["id_document_number"] == "A1234567"
    r = client.post(f"/api/v1/onboarding/staff/clients/{alice.pk}/confirm-margin-account/")
    assert r.status_code == 200 and r.json()["margin_account_confirmed"] is True


def test_api_compliance_reviews_flagged_assessment(client, alice, compliance_user, officer):
    make_profile(alice)
    assessment = complete_assessment(alice, answers_with(horizon="lt1", loss_reaction="buy_more"))
    url = f"/api/v1/onboarding/staff/assessments/{assessment.pk}/"
    client.force_login(officer)
    assert client.post(url, {"outcome": "confirm", "note": "x"}, content_type="application/json").status_code == 403
    client.force_login(compliance_user)
    r = client.post(url, {"outcome": "confirm", "note": "Spoke to client"}, content_type="application/json")
    assert r.status_code == 200 and r.json()["review_status"] == "cleared"


def test_schema_documents_the_onboarding_api(client):
    schema = client.get("/api/schema/").content.decode()
    for path in ["/api/v1/onboarding/attestations/{id}/submit/", "/api/v1/onboarding/staff/attestations/{id}/decision/",
                 "/api/v1/onboarding/assessments/{id}/steps/", "/api/v1/onboarding/eligibility/"]:
        assert path in schema


# --- page flows -----------------------------------------------------------------------------


def test_pi_page_flow_save_upload_submit_withdraw(client, alice, officer):
    acknowledge(alice, Product.PROFESSIONAL_INVESTOR)
    client.force_login(alice)
    today = timezone.localdate().isoformat()
    r = client.post("/onboarding/professional-investor/", {"action": "save", "category": "individual", "basis": "portfolio",
                                                          "declared_amount": "8000000", "relevant_date": today, "understood_pi_treatment": "on"})
    assert r.status_code == 302
    page = client.get("/onboarding/professional-investor/").content.decode()
    assert "Upload at least one document" in page
    r = client.post("/onboarding/professional-investor/", {"action": "upload", "kind": "statement", "issued_on": today,
                                                          "file": pdf_upload("fake.pdf", b"plain text, not a PDF")})
    assert r.status_code == 200 and "Only PDF, PNG or JPEG files are accepted" in r.content.decode()
    client.post("/onboarding/professional-investor/", {"action": "upload", "kind": "statement", "issued_on": today, "file": pdf_upload()})
    client.post("/onboarding/professional-investor/", {"action": "submit"})
    attestation = PIAttestation.objects.get(client=alice)
    assert attestation.state == PIState.SUBMITTED
    services.attestation_verify(attestation_id=attestation.pk, actor=officer, checklist=ALL_TICKED)
    client.post("/onboarding/professional-investor/", {"action": "withdraw"})
    assert PIAttestation.objects.get(pk=attestation.pk).state == PIState.WITHDRAWN


def test_pi_page_submit_shows_every_problem(client, alice):
    client.force_login(alice)
    client.post("/onboarding/professional-investor/", {"action": "save", "category": "individual", "basis": "portfolio", "declared_amount": "7999999.99"})
    response = client.post("/onboarding/professional-investor/", {"action": "submit"}, follow=True)
    body = response.content.decode()
    assert "below the minimum of HK$8,000,000.00" in body and "Enter the relevant date" in body
    assert PIAttestation.objects.get(client=alice).state == PIState.DRAFT


def test_questionnaire_pages_keep_progress_and_show_the_result(client, alice):
    make_profile(alice)
    client.force_login(alice)
    r = client.post("/onboarding/suitability/")
    assert r["Location"] == "/onboarding/suitability/step/1/"
    assert client.get("/onboarding/suitability/step/3/")["Location"] == "/onboarding/suitability/step/1/"
    bad = client.post("/onboarding/suitability/step/1/", {"income_stability": "stable"})
    assert bad.status_code == 200 and "Please answer this question." in bad.content.decode()
    for index, answers in enumerate(ANSWERS, start=1):
        data = {k: ("yes" if v is True else "no" if v is False else v) for k, v in answers.items()}
        r = client.post(f"/onboarding/suitability/step/{index}/", data)
        assert r.status_code == 302, r.content.decode()[:2000]
    page = client.get("/onboarding/suitability/").content.decode()
    assert "4 — Growth" in page and "HKU SPACE" not in page


def test_questionnaire_page_in_traditional_chinese(client, alice):
    make_profile(alice)
    client.force_login(alice)
    client.cookies["django_language"] = "zh-hant"
    client.post("/onboarding/suitability/")
    body = client.get("/onboarding/suitability/step/1/").content.decode()
    assert "您的收入有多穩定？" in body and "第 1 步，共 5 步" in body


def test_training_page_records_a_pass(client, alice):
    from onboarding.training import MODULES

    client.force_login(alice)
    assert client.get("/onboarding/training/nope/").status_code == 404
    r = client.post("/onboarding/training/derivatives/", {q.code: str(q.correct) for q in MODULES["derivatives"].quiz})
    assert r.status_code == 302
    assert alice.training_attempts.get().passed


def test_staff_pages_for_margin_account_assessment_review_and_perpetuals(client, alice, officer, compliance_user):
    from onboarding.models import PerpetualsAccessRequest, SuitabilityAssessment
    from tests.onboarding.conftest import onboard_fully

    make_profile(alice)
    client.force_login(officer)
    client.post(f"/onboarding/staff/clients/{alice.pk}/")
    assert ClientProfile.objects.get(user=alice).margin_account_confirmed
    assessment = complete_assessment(alice, answers_with(horizon="lt1", loss_reaction="buy_more"))
    assert client.get(f"/onboarding/staff/assessments/{assessment.pk}/").status_code == 403
    client.force_login(compliance_user)
    assert "You would buy more" in client.get(f"/onboarding/staff/assessments/{assessment.pk}/").content.decode()
    client.post(f"/onboarding/staff/assessments/{assessment.pk}/", {"outcome": "reassess", "note": "Inconsistent"})
    assert SuitabilityAssessment.objects.get(pk=assessment.pk).state == "expired"
    onboard_fully(make_user("client", email="dora@example.com"), officer)
    dora = ClientProfile.objects.get(user__email="dora@example.com").user
    request = services.perpetuals_request(client=dora)
    client.force_login(compliance_user)
    assert client.get(f"/onboarding/staff/perpetuals/{request.pk}/").status_code == 403
    client.force_login(officer)
    client.post(f"/onboarding/staff/perpetuals/{request.pk}/", {"decision": "grant", "reason": "ok"})
    assert PerpetualsAccessRequest.objects.get(pk=request.pk).state == "granted"


def test_perpetuals_page_request(client, alice, officer):
    from tests.onboarding.conftest import onboard_fully

    client.force_login(alice)
    client.post("/onboarding/perpetuals/")
    assert not alice.perpetuals_requests.exists()
    onboard_fully(alice, officer)
    assert 'data-testid="request-perpetuals"' in client.get("/onboarding/perpetuals/").content.decode()
    client.post("/onboarding/perpetuals/")
    assert alice.perpetuals_requests.get().state == "requested"


def test_profile_changes_are_audited_with_the_identity_number_masked(alice):
    from portal.models import AuditEvent

    make_profile(alice)
    make_profile(alice, id_document_number="B7654321")
    event = AuditEvent.objects.filter(action="onboarding.profile.updated").order_by("-id").first()
    assert event.before["id_document_number_masked"] == "A•••••67" and event.after["id_document_number_masked"] == "B•••••21"
    assert "A1234567" not in str(event.before) and "B7654321" not in str(event.after)


def test_admin_adds_a_policy_version_validated_against_the_statutory_floors(client, admin_user, alice):
    from onboarding.models import OnboardingPolicy
    from onboarding.policy import DEFAULTS

    client.force_login(admin_user)
    form = {k: str(v) for k, v in DEFAULTS.items()} | {"note": "Raise the portfolio threshold"}
    r = client.post("/admin/onboarding/onboardingpolicy/add/", form | {"pi_portfolio_threshold": "7999999.99"})
    assert r.status_code == 200 and "Cannot be below the statutory HK$8,000,000." in r.content.decode()
    assert OnboardingPolicy.objects.count() == 1
    r = client.post("/admin/onboarding/onboardingpolicy/add/", form | {"pi_portfolio_threshold": "9000000.00"})
    assert r.status_code == 302
    assert OnboardingPolicy.objects.order_by("-version").first().version == 2
    attestation = draft_attestation(alice, amount="8500000")
    assert [p["code"] for p in services.attestation_problems(attestation=attestation)] == ["below_threshold"]
    assert client.get("/admin/onboarding/questionnaire/1/change/").status_code == 200


def test_the_dashboard_computes_eligibility_once_per_request(rf, alice):
    from unittest import mock

    from disclosures.apps import _client_panel as disclosures_panel
    from lending import panels as lending_panels
    from onboarding import panels, selectors

    request = rf.get("/dashboard/")
    request.user = alice
    with mock.patch.object(selectors, "client_facts", wraps=selectors.client_facts) as facts, \
         mock.patch.object(selectors, "product_eligibility", wraps=selectors.product_eligibility) as eligibility:
        panels.client_checklist(request)
        lending_panels.client_panel(request)
        disclosures_panel(request)
    assert facts.call_count == 1
    assert sorted(str(c.kwargs["product"]) for c in eligibility.call_args_list) == ["perpetuals", "va_margin"]
