"""Regressions found using the portal in a browser as a client, an officer, compliance and an admin."""

from __future__ import annotations

import pytest
from django.utils import translation

from onboarding import services
from onboarding.models import OnboardingPolicy, Questionnaire
from portal.products import Product
from tests.onboarding.conftest import (
    ALL_TICKED,
    acknowledge,
    answers_with,
    complete_assessment,
    draft_attestation,
    make_profile,
    submitted_attestation,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english_again_afterwards():
    """A request in Chinese leaves Chinese active in this thread: later tests expect English."""
    yield
    translation.activate("en")


# --- client pages --------------------------------------------------------------------------


def test_result_answered_in_english_is_explained_in_chinese_when_read_in_chinese(client, alice):
    make_profile(alice)  # preferred language English: the stored reasons are English
    complete_assessment(alice)
    client.force_login(alice)
    client.cookies["django_language"] = "zh-hant"
    body = client.get("/onboarding/suitability/").content.decode()
    assert "How stable is your income?" not in body and "Total score" not in body
    assert "您的收入有多穩定？" in body


def test_knowledge_not_shown_reads_as_not_demonstrated_in_chinese(client, alice):
    make_profile(alice)
    complete_assessment(alice, answers_with(va_training=False, va_transactions_3y=0, va_years=0, va_assets=None, va_frequency=None))
    client.force_login(alice)
    client.cookies["django_language"] = "zh-hant"
    body = client.get("/onboarding/suitability/").content.decode()
    assert "未能證明" in body and "未能顯示" not in body  # "Not shown" means not demonstrated, not "cannot display"


def test_attestation_record_column_is_the_creation_date_in_chinese(client, alice):
    draft_attestation(alice)
    client.force_login(alice)
    client.cookies["django_language"] = "zh-hant"
    body = client.get("/onboarding/professional-investor/").content.decode()
    assert "<th>建立日期</th>" in body and "建立者" not in body  # not "created by"


def test_invalid_profile_says_at_the_top_that_nothing_was_saved(client, alice):
    client.force_login(alice)
    response = client.post("/onboarding/profile/", {"client_type": "individual", "legal_name": "X", "annual_income": "-5", "preferred_language": "en"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "Your profile was not saved. Please correct the highlighted fields." in body
    assert "The amount cannot be negative." in body


def test_follow_up_questions_say_when_they_are_needed(client, alice):
    make_profile(alice)
    client.force_login(alice)
    client.post("/onboarding/suitability/")
    for step, answers in enumerate([{"income_stability": "stable", "emergency_reserve": "six_months", "va_share": "lt10"},
                                    {"objective": "growth", "horizon": "1_3"}, {"loss_reaction": "hold", "max_loss": "5_15"}], start=1):
        assert client.post(f"/onboarding/suitability/step/{step}/", answers).status_code == 302
    step4 = client.get("/onboarding/suitability/step/4/").content.decode()
    assert "(or traded)" not in step4
    assert "Needed if you made any such transactions in the past three years." in step4 and 'data-show-if-gt="0"' in step4
    client.post("/onboarding/suitability/step/4/", {"shares_years": 0, "shares_transactions_3y": 0, "margin_years": 0, "margin_transactions_3y": 0,
                                                    "derivative_years": 0, "derivative_transactions_3y": 0, "va_years": 0, "va_transactions_3y": 0})
    step5 = client.get("/onboarding/suitability/step/5/").content.decode()
    assert "Needed if you answered yes above." in step5 and 'data-show-if-equals="yes"' in step5
    assert '<ol class="steps"' in step5 and 'aria-current="step"' in step5


# --- staff pages ---------------------------------------------------------------------------


def test_assessment_review_shows_answers_as_the_client_saw_them(client, alice, compliance_user):
    make_profile(alice)
    assessment = complete_assessment(alice, answers_with(horizon="lt1", loss_reaction="buy_more"))
    client.force_login(compliance_user)
    body = client.get(f"/onboarding/staff/assessments/{assessment.pk}/").content.decode()
    assert "Stable and expected to continue" in body and "<td>stable</td>" not in body
    assert "<td>Yes</td>" in body and "<td>True</td>" not in body
    assert "{&#x27;" not in body and "{'" not in body  # no Python dict reprs
    assert "HKU SPACE Certificate in Virtual Assets" in body
    assert "HK$30,000,000.00" in body  # net worth when answered


def test_decided_attestation_shows_the_checklist_in_words(client, alice, officer):
    attestation = submitted_attestation(alice)
    services.attestation_verify(attestation_id=attestation.pk, actor=officer, checklist=ALL_TICKED, reason="Statement checked")
    client.force_login(officer)
    body = client.get(f"/onboarding/staff/attestations/{attestation.pk}/").content.decode()
    assert "identity_matches" not in body
    assert "☑ The name on every document matches the client" in body
    assert "Open in a new tab" in body


def test_queue_and_review_show_a_client_without_a_name_by_email_once(client, alice, officer):
    alice.full_name = ""
    alice.save(update_fields=["full_name"])
    attestation = submitted_attestation(alice)
    client.force_login(officer)
    queue = client.get("/onboarding/staff/").content.decode()
    assert queue.count(alice.email) == 1
    review = client.get(f"/onboarding/staff/attestations/{attestation.pk}/").content.decode()
    assert f"{alice.email}</a> ({alice.email})" not in review


def test_workbench_queue_panel_is_a_list_that_fits_its_card(client, alice, officer):
    acknowledge(alice, Product.PROFESSIONAL_INVESTOR)
    submitted_attestation(alice)
    client.force_login(officer)
    body = client.get("/workbench/").content.decode()
    panel = body.split('data-testid="onboarding-queue-panel"', 1)[1].split("</ul>", 1)[0]
    assert "Professional-investor attestation" in panel and "<table" not in panel


# --- admin ---------------------------------------------------------------------------------


def test_published_questionnaire_is_view_only_in_the_admin(client, admin_user):
    from portal.models import AuditEvent

    client.force_login(admin_user)
    questionnaire = Questionnaire.objects.exclude(published_at=None).get(version=1)
    url = f"/admin/onboarding/questionnaire/{questionnaire.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    before = AuditEvent.objects.count()
    assert client.post(url, {"title": "changed"}).status_code == 403
    assert AuditEvent.objects.count() == before  # no "saved" audit row for a save that changed nothing


def test_saved_policy_version_is_view_only_in_the_admin(client, admin_user):
    client.force_login(admin_user)
    policy = OnboardingPolicy.objects.get(version=1)
    page = client.get(f"/admin/onboarding/onboardingpolicy/{policy.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(f"/admin/onboarding/onboardingpolicy/{policy.pk}/change/", {"note": "x"}).status_code == 403


def test_publishing_a_questionnaire_in_the_admin_says_what_happened(client, admin_user):
    client.force_login(admin_user)
    v1 = Questionnaire.objects.get(version=1)
    response = client.post("/admin/onboarding/questionnaire/", {"action": "publish", "_selected_action": [v1.pk]}, follow=True)
    assert "already published" in response.content.decode()


def test_workbench_leaves_out_the_onboarding_queue_for_staff_who_cannot_act_on_it(client, alice, admin_user, officer):
    acknowledge(alice, Product.PROFESSIONAL_INVESTOR)
    submitted_attestation(alice)
    client.force_login(admin_user)
    body = client.get("/workbench/").content.decode()
    assert 'id="panel-onboarding-queue"' not in body  # it used to say "Nothing is waiting." with an attestation waiting
    client.force_login(officer)
    assert 'id="panel-onboarding-queue"' in client.get("/workbench/").content.decode()
