"""A new client onboards in the browser; an officer verifies the attestation; the client's checklist updates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Error as PlaywrightError

from portal.products import Product
from tests.helpers import browser_sign_in, make_user
from tests.onboarding.conftest import ANSWERS, PDF, acknowledge


def _tick(control, attempts: int = 3) -> None:
    """Check a radio or checkbox by clicking it, again if a late layout shift made the click miss."""
    for _ in range(attempts):
        try:
            control.check()
            return
        except PlaywrightError as exc:
            if "did not change its state" not in str(exc):
                raise
    control.check()


def _answer_step(page, answers: dict) -> None:
    for code, value in answers.items():
        if isinstance(value, bool):
            page.check(f'input[name="{code}"][value="{"yes" if value else "no"}"]')
        elif isinstance(value, int):
            page.fill(f'input[name="{code}"]', str(value))
        elif page.locator(f'input[type=radio][name="{code}"]').count():
            page.check(f'input[name="{code}"][value="{value}"]')
        else:
            page.fill(f'input[name="{code}"]', value)
    page.click("[data-testid=next-step]")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_client_onboards_in_the_browser_and_officer_verifies(page, browser, live_server):
    alice = make_user("client", email="alice@example.com", full_name="Alice Wong")
    officer = make_user("account_officer", email="bob@example.com", full_name="Bob Officer")
    acknowledge(alice, Product.PROFESSIONAL_INVESTOR)
    today = timezone.localdate()

    browser_sign_in(page, alice)
    # 1. Profile
    page.goto("/onboarding/profile/")
    page.fill("#id_legal_name", "WONG, Alice")
    page.select_option("#id_id_document_type", "hkid")
    page.fill("#id_id_document_number", "A1234567")
    page.fill("#id_date_of_birth", "1985-04-02")
    page.fill("#id_nationality", "Hong Kong")
    page.fill("#id_residential_address", "Flat 12A, 1 Harbour Road, Wan Chai")
    page.fill("#id_phone", "+852 9123 4567")
    page.select_option("#id_employment_status", "employed")
    page.fill("#id_employer", "Harbour Trading Ltd")
    page.fill("#id_occupation", "Finance director")
    page.fill("#id_annual_income", "2400000")
    page.fill("#id_net_worth", "30000000")
    page.fill("#id_liquid_assets", "12000000")
    page.fill("#id_source_of_wealth", "Salary and investments")
    page.fill("#id_margin_account_number", "M-100234")
    page.click("[data-testid=save-profile]")
    page.wait_for_selector("text=Your profile was saved.")

    # 2. Professional-investor attestation with an upload
    page.goto("/onboarding/professional-investor/")
    assert page.locator("#pi-explained").inner_text().count("HK$8,000,000") >= 2
    page.select_option("#id_category", "individual")
    page.select_option("#id_basis", "portfolio")
    page.fill("#id_declared_amount", "8000000")
    page.fill("#id_relevant_date", today.isoformat())
    page.check("#id_understood_pi_treatment")
    page.click("[data-testid=save-attestation]")
    page.wait_for_selector("[data-testid=upload-evidence]")
    page.select_option("#id_kind", "custodian_statement")
    page.fill("#id_issued_on", (today - timedelta(days=7)).isoformat())
    page.set_input_files("#id_file", files=[{"name": "custodian.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    page.click("[data-testid=upload-evidence]")
    page.wait_for_selector("text=The document was uploaded.")
    page.click("[data-testid=submit-attestation]")
    page.wait_for_selector("[data-testid=pi-state]")

    # 3. Questionnaire, step by step
    page.goto("/onboarding/suitability/")
    page.click("[data-testid=start-assessment]")
    for answers in ANSWERS:
        _answer_step(page, answers)
    page.wait_for_selector("[data-testid=risk-profile]")
    assert "Growth" in page.inner_text("[data-testid=risk-profile]")

    page.goto("/dashboard/")
    assert page.get_attribute("#panel-onboarding-checklist li[data-requirement=professional_investor]", "data-met") == "no"
    assert page.get_attribute("#panel-onboarding-checklist li[data-requirement=suitability]", "data-met") == "yes"

    # 4. The officer verifies on the review page, evidence inline
    staff_context = browser.new_context(base_url=live_server.url, locale="en-GB")
    staff_page = staff_context.new_page()
    staff_page.set_default_timeout(15_000)
    browser_sign_in(staff_page, officer)
    staff_page.goto("/onboarding/staff/")
    staff_page.click("[data-testid=onboarding-queue] a:has-text('Professional-investor attestation')")
    # The click returns once navigation starts; wait for the whole form, and for the inline PDF,
    # whose viewer starts in its own process and can move the page under a click while it loads.
    staff_page.wait_for_load_state("networkidle")
    staff_page.wait_for_selector("[data-testid=decide]")
    assert staff_page.locator(".evidence object").count() == 1
    _tick(staff_page.locator("input[name=decision][value=verify]"))
    for box in staff_page.locator("input[type=checkbox][name^=check_]").all():
        _tick(box)
    staff_page.fill("#id_reason", "Custodian statement checked against the declared portfolio.")
    staff_page.click("[data-testid=decide]")
    staff_page.wait_for_selector("text=Decision recorded.")
    staff_context.close()

    # 5. The client's checklist updates
    page.goto("/dashboard/")
    assert page.get_attribute("#panel-onboarding-checklist li[data-requirement=professional_investor]", "data-met") == "yes"
    assert page.get_attribute("#panel-onboarding-checklist li[data-requirement=derivative_knowledge]", "data-met") == "yes"
