"""Submitting the application form without confirming the terms: the form comes back, nothing is saved."""

from __future__ import annotations

from lending.models import FacilityApplication

FORM = {
    "requested_limit": "1000000", "purpose": "Trade", "submit": "1",
    "line_instrument": ["00005", "BTC"], "line_kind": ["securities", "virtual_asset"], "line_quantity": ["50000", "3"],
}


def test_submit_without_ticking_the_terms_reshows_the_form_with_terms_and_figures_and_saves_no_draft(client, eligible_client):
    client.force_login(eligible_client)
    response = client.post("/lending/apply/", FORM)
    assert response.status_code == 200
    assert not FacilityApplication.objects.exists()
    page = response.content.decode()
    assert "Confirm that you have read the facility terms" in page
    assert 'id="confirm-terms-error"' in page and 'aria-invalid="true"' in page
    # The terms, the figures and what the client typed are all still there.
    assert 'data-testid="confirm-terms"' in page and 'data-testid="lending-value"' in page
    assert 'value="1000000"' in page and ">Trade</textarea>" in page
    assert 'id="qty-00005" name="line_quantity" type="number" min="0"' in page and 'value="50000"' in page


def test_saving_a_draft_needs_no_terms(client, eligible_client):
    client.force_login(eligible_client)
    response = client.post("/lending/apply/", {**FORM, "submit": "0"})
    assert response.status_code == 302
    assert FacilityApplication.objects.get().state == "draft"


def test_outsider_without_eligibility_gets_no_draft_either(client, charlie):
    client.force_login(charlie)
    client.post("/lending/apply/", FORM)
    assert not FacilityApplication.objects.exists()
