"""The credit review, submission and drawdowns against the REAL onboarding and disclosures services.

The other lending tests describe a client's standing with the ``facts`` stand-in; these walk the
client through the onboarding and disclosures services (``lending.demo.client_make_eligible``) and
change that standing the way staff really would (a material disclosure re-published).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.lending.conftest import draft

pytestmark = pytest.mark.django_db


@pytest.fixture
def real_client(alice, officer, policy, prices):
    """alice, made eligible through the onboarding and disclosures services (no stand-ins)."""
    from lending.demo import client_make_eligible
    from onboarding.selectors import product_eligibility
    from portal.products import Product

    client_make_eligible(user=alice, staff=officer)
    assert product_eligibility(user=alice, product=Product.VA_MARGIN).eligible
    return alice


def _va_document():
    from disclosures.models import Document

    return Document.objects.filter(requirements__product="va_margin").order_by("code").first()


def _republish_material(admin_user, document):
    """Compliance publishes a material new version: every earlier acknowledgement is now stale."""
    from disclosures import services as dsvc

    version = dsvc.version_create_draft(
        actor=admin_user, document_id=document.pk, change_summary="Close-out timing changed",
        body_en="## Risk\n\nPositions may be closed out **without notice**.\n", body_zh="## 風險\n\n持倉可能在**不作通知**下被平倉。\n",
        material=True,
    )
    return dsvc.version_publish(actor=admin_user, version_id=version.pk)


def _steps(app):
    from lending.models import ReviewStep

    return {s.code: s for s in ReviewStep.objects.filter(application=app, run=app.review_run)}


def _submit(user, capture, app=None):
    from lending import services
    from lending.models import FacilityApplication

    app = app or draft(user)
    with capture(execute=True):
        services.application_submit(user=user, application_id=app.pk, confirm_terms=True)
    return FacilityApplication.objects.get(pk=app.pk)


def test_eligibility_suitability_and_disclosure_steps_pass_for_a_client_eligible_through_the_real_services(real_client, django_capture_on_commit_callbacks):
    from lending.models import AppState, Recommendation, StepCode, StepOutcome, StepStatus

    app = _submit(real_client, django_capture_on_commit_callbacks)

    assert app.state == AppState.AWAITING_DECISION
    steps = _steps(app)
    assert all(s.status == StepStatus.DONE and s.attempts == 1 for s in steps.values())
    eligibility = steps[StepCode.ELIGIBILITY]
    assert eligibility.outcome == StepOutcome.PASS
    assert {r["code"] for r in eligibility.inputs["requirements"]} >= {"margin_account", "profile_complete", "suitability", "risk_profile", "va_knowledge", "disclosures"}
    assert all(r["met"] for r in eligibility.inputs["requirements"])
    assert steps[StepCode.SUITABILITY].outcome == StepOutcome.PASS
    assert steps[StepCode.SUITABILITY].inputs["risk_profile"] == 4  # growth: from the real questionnaire answers
    assert steps[StepCode.DISCLOSURES].outcome == StepOutcome.PASS
    assert app.recommendation == Recommendation.APPROVE and app.policy_id is not None


def test_the_review_loads_the_clients_onboarding_and_disclosure_standing_once(real_client):
    """One read each of the profile, assessment, attestations and disclosure status per review,
    however many steps use them; the whole review stays within a fixed number of statements."""
    from unittest import mock

    from lending import services

    app = draft(real_client)
    with mock.patch("lending.tasks.credit_review.delay_on_commit"):
        services.application_submit(user=real_client, application_id=app.pk, confirm_terms=True)
    with CaptureQueriesContext(connection) as ctx:
        assert services.review_run(application_id=app.pk, run=1) is True
    sqls = [q["sql"] for q in ctx.captured_queries]
    for table in ("onboarding_clientprofile", "onboarding_suitabilityassessment", "onboarding_piattestation", "disclosures_documentversion"):
        assert sum(f'FROM "{table}"' in sql for sql in sqls) == 1, table
    step_writes = [sql for sql in sqls if sql.startswith('UPDATE "lending_reviewstep"')]
    assert len(step_writes) == 8  # first claim, six "finish this step + claim the next", last finish
    # 36, plus the audit row of the move into review (chain lock, last hash, insert; the lock is PostgreSQL's only).
    # + the concentration step's client and firm totals (two statements, whatever the book's size).
    assert len(sqls) <= 41, "\n".join(sqls)


def test_submission_is_refused_with_reasons_and_links_while_the_margin_account_is_unconfirmed(alice, policy, prices):
    from disclosures import selectors as dsel
    from disclosures import services as dsvc
    from lending import services
    from lending.demo import ANSWERS, PROFILE
    from lending.models import AppState, FacilityApplication, ReviewStep
    from onboarding import services as osvc
    from portal.errors import PortalError
    from portal.products import Product

    # Everything an eligible client does, except that staff have not confirmed the margin account.
    osvc.profile_update(user=alice, data=PROFILE | {"legal_name": "ALICE WONG", "id_document_number": "Z1234567", "margin_account_number": "M-700001"})
    assessment = osvc.assessment_start(client=alice)
    for step, answers in enumerate(ANSWERS):
        osvc.assessment_save_step(assessment_id=assessment.pk, actor=alice, step=step, data=answers)
    osvc.assessment_complete(assessment_id=assessment.pk, actor=alice)
    for status in dsel.outstanding_documents(user=alice, product=Product.VA_MARGIN):
        version = dsel.current_version_by_code(code=status.code)
        serving = dsvc.version_serve(user=alice, version=version, language="en")
        dsvc.acknowledgement_record(user=alice, version_id=version.pk, language="en", content_hash=serving.content_hash, serving_token=serving.token,
                                    confirmed_read_and_understood=True, confirmed_invited_to_ask_and_seek_advice=True)
    app = draft(alice)

    with pytest.raises(PortalError) as refused:
        services.application_submit(user=alice, application_id=app.pk, confirm_terms=True)

    assert refused.value.code == "not_eligible"
    blockers = refused.value.fields["requirements"]
    assert [b["code"] for b in blockers] == ["margin_account"]
    # (waiting for staff: onboarding decides whether there is anything for the client to click)
    assert "M-700001" in blockers[0]["reason"] and blockers[0]["fix_url"] in ("", "/onboarding/profile/")
    assert FacilityApplication.objects.get(pk=app.pk).state == AppState.DRAFT
    assert not ReviewStep.objects.filter(application=app).exists()


def test_submission_is_refused_with_a_link_to_read_a_disclosure_republished_with_a_material_change(real_client, admin_user, api_client):
    from lending.models import AppState, FacilityApplication

    document = _va_document()
    _republish_material(admin_user, document)
    app = draft(real_client)
    api_client.force_login(real_client)

    response = api_client.post(f"/api/v1/lending/applications/{app.pk}/submit/", {"confirm_terms": True}, format="json")

    assert response.status_code in (400, 409, 422), response.content
    error = response.json()["error"]
    assert error["code"] == "not_eligible"
    blockers = {b["code"]: b for b in error["fields"]["requirements"]}
    assert set(blockers) == {"disclosures"}
    assert blockers["disclosures"]["fix_url"] == reverse("disclosures:read", args=[document.code])
    assert "v2" in blockers["disclosures"]["reason"]
    assert FacilityApplication.objects.get(pk=app.pk).state == AppState.DRAFT


def test_a_material_republish_between_submission_and_review_fails_the_disclosure_and_eligibility_steps(real_client, admin_user, django_capture_on_commit_callbacks):
    from lending import services
    from lending.models import AppState, FacilityApplication, Recommendation, StepCode, StepOutcome

    app = draft(real_client)
    with django_capture_on_commit_callbacks(execute=False) as queued:  # the review is queued, not yet run
        services.application_submit(user=real_client, application_id=app.pk, confirm_terms=True)
    _republish_material(admin_user, _va_document())
    for callback in queued:
        callback()

    app = FacilityApplication.objects.get(pk=app.pk)
    steps = _steps(app)
    assert app.state == AppState.AWAITING_DECISION and app.recommendation == Recommendation.DECLINE
    assert steps[StepCode.DISCLOSURES].outcome == StepOutcome.FAIL
    assert "material update" in steps[StepCode.DISCLOSURES].reasons[0]
    assert steps[StepCode.ELIGIBILITY].outcome == StepOutcome.FAIL
    assert any(r["code"] == "disclosures" and not r["met"] for r in steps[StepCode.ELIGIBILITY].inputs["requirements"])


def test_a_drawdown_is_refused_while_a_required_disclosure_is_stale_and_allowed_once_reacknowledged(real_client, officer, admin_user, django_capture_on_commit_callbacks):
    from lending import services
    from lending.demo import client_make_eligible
    from lending.models import Facility, FacilityTransaction
    from portal.errors import ConflictError

    app = _submit(real_client, django_capture_on_commit_callbacks)
    app = services.application_approve(actor=officer, application_id=app.pk, limit="2000000")
    facility = services.application_accept(user=real_client, application_id=app.pk, letter_sha256=app.letter_sha256)
    _republish_material(admin_user, _va_document())

    with pytest.raises(ConflictError) as refused:
        services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="100000", reference="D1")

    assert refused.value.code == "disclosure_outstanding"
    assert Facility.objects.get(pk=facility.pk).drawn_balance == 0
    assert not FacilityTransaction.objects.filter(facility=facility).exists()

    client_make_eligible(user=real_client, staff=officer)  # acknowledges the new version through the disclosures services
    services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="100000", reference="D1")
    assert Facility.objects.get(pk=facility.pk).drawn_balance == 100000


def _dashboard_queries(client, user):
    client.force_login(user)
    client.get("/dashboard/")  # warm (session, caches)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/dashboard/")
    assert response.status_code == 200
    return response.content.decode(), len(ctx.captured_queries)


def test_the_dashboard_offers_apply_only_to_an_eligible_client_and_otherwise_says_what_is_missing_with_links(client, alice, officer, policy, prices, django_assert_num_queries):
    from lending.demo import client_make_eligible

    html, before = _dashboard_queries(client, alice)
    assert 'data-testid="apply-blockers"' in html and 'href="/lending/apply/"' not in html
    assert 'data-requirement="margin_account"' in html and 'href="/onboarding/profile/"' in html
    assert 'data-requirement="suitability"' in html

    client_make_eligible(user=alice, staff=officer)
    html, after = _dashboard_queries(client, alice)
    assert 'data-testid="apply-blockers"' not in html and 'href="/lending/apply/"' in html
    # The same number of statements whatever the client's standing (pinned: the lending panel's eligibility
    # check costs the onboarding facts, the checklist policy, the disclosure status and the collateral policy).
    assert before == after == 14  # eligibility computed once per request, shared by the panels; + the MFA prompt


def test_the_lending_home_page_offers_apply_only_to_an_eligible_client(client, alice, officer, policy, prices):
    from lending.demo import client_make_eligible

    client.force_login(alice)
    html = client.get("/lending/").content.decode()
    assert 'data-testid="apply-blockers"' in html and 'data-testid="apply"' not in html
    client_make_eligible(user=alice, staff=officer)
    html = client.get("/lending/").content.decode()
    assert 'data-testid="apply-blockers"' not in html and 'data-testid="apply"' in html


def test_a_refused_submission_reads_in_chinese_for_a_chinese_speaking_client(alice, policy, prices):
    from django.utils import translation

    from lending import services
    from portal.errors import PortalError

    app = draft(alice)
    with translation.override("zh-hant"), pytest.raises(PortalError) as refused:
        services.application_submit(user=alice, application_id=app.pk, confirm_terms=True)
    assert refused.value.message.startswith("您暫時未能提交：")
    with translation.override("zh-hant"), pytest.raises(PortalError) as refused:
        services.application_submit(user=alice, application_id=app.pk, confirm_terms=False)
    assert refused.value.message == "請確認您已閱讀融資條款。"


def test_a_drawdown_is_refused_once_the_suitability_assessment_has_lapsed(real_client, officer, django_capture_on_commit_callbacks):
    """Onboarding's eligibility, not only open calls and disclosures: a year later the suitability assessment
    has expired and the facility stops advancing."""
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from lending import services
    from lending.models import Facility
    from portal.errors import ConflictError

    app = _submit(real_client, django_capture_on_commit_callbacks)
    app = services.application_approve(actor=officer, application_id=app.pk, limit="2000000")
    facility = services.application_accept(user=real_client, application_id=app.pk, letter_sha256=app.letter_sha256)
    with time_machine.travel(timezone.now() + timedelta(days=400), tick=False), pytest.raises(ConflictError) as refused:
        services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="100000", reference="D1")
    assert refused.value.code == "client_not_eligible"
    assert Facility.objects.get(pk=facility.pk).drawn_balance == 0
