"""The client's one onboarding checklist: progress, order, next step, folding away when complete."""

from __future__ import annotations

from tests.onboarding.conftest import complete_assessment, make_profile, onboard_fully, submitted_attestation


def test_new_client_sees_one_checklist_with_progress_and_the_first_step_next(client, alice):
    client.force_login(alice)
    body = client.get("/dashboard/").content.decode()
    panel = body.split('id="panel-onboarding-checklist"', 1)[1].split("</section>", 1)[0]
    assert panel.count('data-requirement="profile_complete"') == 1  # once, not once per product
    assert "0 of 6 done" in panel
    assert 'data-testid="next-step"' in panel and 'href="/onboarding/profile/"' in panel
    assert "Continue onboarding" not in body
    assert "<details" not in panel


def test_checklist_order_profile_first_disclosures_last(client, alice):
    make_profile(alice)
    client.force_login(alice)
    panel = client.get("/onboarding/").content.decode()
    order = [panel.index(f'data-requirement="{code}"') for code in ("profile_complete", "margin_account", "suitability", "risk_profile", "va_knowledge")]
    assert order == sorted(order)
    assert "1 of 6 done" in panel  # the profile; the margin account waits for an officer


def test_fully_onboarded_client_sees_the_checklist_folded_below_the_account(client, alice, officer):
    onboard_fully(alice, officer)
    client.force_login(alice)
    body = client.get("/dashboard/").content.decode()
    assert '<details class="fold" data-testid="onboarding-complete">' in body
    assert "6 of 6 done" in body and "Continue onboarding" not in body
    # Folded panels come after every other panel.
    assert body.index('id="panel-onboarding-checklist"') > body.index('id="panel-lending"')


def test_pi_submission_keeps_the_documents_listed_and_states_the_turnaround(client, alice):
    make_profile(alice)
    attestation = submitted_attestation(alice)
    client.force_login(alice)
    body = client.get("/onboarding/professional-investor/").content.decode()
    assert 'data-testid="submitted-evidence"' in body
    assert body.count("/onboarding/evidence/") >= attestation.evidence.count() >= 1
    assert "We aim to verify it within 2 Hong Kong business days, by" in body


def test_suitability_result_says_what_it_allows_and_how_retaking_works(client, alice):
    make_profile(alice)
    complete_assessment(alice)
    client.force_login(alice)
    body = client.get("/onboarding/suitability/").content.decode()
    assert 'data-testid="result-meaning"' in body and "needs a risk profile of at least 4 (Growth)" in body
    assert 'id="retake-explained"' in body and "stays in force" in body


def test_client_without_an_authenticator_is_prompted_to_enrol_and_the_prompt_goes_once_enrolled(client, alice):
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    client.force_login(alice)
    body = client.get("/dashboard/").content.decode()
    assert 'data-testid="mfa-prompt"' in body and 'href="/accounts/2fa/totp/activate/"' in body
    TOTP.activate(alice, generate_totp_secret())
    client.force_login(alice)
    assert 'data-testid="mfa-prompt"' not in client.get("/dashboard/").content.decode()


def test_questionnaire_questions_in_chinese_end_in_one_question_mark(client, alice):
    alice.preferred_language = "zh-hant"
    alice.save(update_fields=["preferred_language"])
    client.force_login(alice)
    client.post("/onboarding/suitability/")
    body = client.get("/onboarding/suitability/step/1/").content.decode()
    assert "您的收入有多穩定？" in body
    assert "？：" not in body and "?:" not in body
