"""The whole journey in a browser: apply, watch the review, two approvals, accept, active facility."""

from __future__ import annotations

import pytest

from tests.helpers import browser_sign_in, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_client_applies_officer_and_credit_manager_approve_client_accepts(page, facts, policy, prices, officer, credit_manager):
    from lending.models import AppState, FacilityApplication
    from tests.lending.conftest import CLASS_INSTRUMENT, give_holdings

    client_user = make_user("client", email="grace@example.com", full_name="Grace Client")
    give_holdings(client_user)  # what the back office reports: shares of each class, BTC and ETH in custody
    browser_sign_in(page, client_user)
    page.goto("/lending/apply/")
    page.fill("#id_requested_limit", "6000000")
    page.fill("#id_purpose", "Trade bitcoin against my portfolio")
    for code in [*CLASS_INSTRUMENT.values(), "BTC", "ETH"]:
        page.fill(f"[data-testid=qty-{code}]", "0")
    page.fill(f"[data-testid=qty-{CLASS_INSTRUMENT['A']}]", "120000")  # HK$12,000,000 at HK$100 a share
    page.fill("[data-testid=qty-BTC]", "1")
    # 12,000,000 × 0.7 + 760,000 × 0.4 — computed in the page as the client types.
    page.wait_for_function("document.querySelector('[data-testid=lending-value]').textContent.replace(/,/g, '') === '8704000.00'")
    page.check("[data-testid=confirm-terms]")
    page.click("[data-testid=submit-application]")
    # Eager review on commit: the page polls the progress endpoint and shows the finished review.
    page.wait_for_selector("#review-progress")
    page.wait_for_function("document.querySelector('[data-testid=app-state]').textContent.includes('Awaiting decision')")
    app = FacilityApplication.objects.get()
    assert app.state == AppState.AWAITING_DECISION

    officer_page = page.context.browser.new_context(base_url=page.url.split("/lending")[0]).new_page()
    browser_sign_in(officer_page, officer)
    officer_page.goto(f"/lending/staff/applications/{app.pk}/")
    officer_page.fill("#id_limit", "6000000")  # above the officer's HK$5,000,000 authority
    officer_page.click("[data-testid=approve]")
    officer_page.wait_for_selector("text=Awaiting second approval")

    manager_page = page.context.browser.new_context(base_url=page.url.split("/lending")[0]).new_page()
    browser_sign_in(manager_page, credit_manager)
    manager_page.goto(f"/lending/staff/applications/{app.pk}/")
    manager_page.click("[data-testid=second-approve]")
    manager_page.wait_for_selector("text=Decision recorded")

    page.goto(f"/lending/applications/{app.pk}/")
    page.wait_for_selector("[data-testid=letter]")
    page.check("[data-testid=acknowledge-letter]")
    page.click("[data-testid=accept-letter]")
    page.wait_for_selector("[data-testid=facility-state]")
    assert "Active" in page.text_content("[data-testid=facility-state]")
    assert "6,000,000" in page.text_content("[data-testid=facility-limit]")
