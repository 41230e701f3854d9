"""Quantities and amounts are bounded at the edge by what the columns and the business allow; a review that
fails for good ends with a visible outcome instead of staying in review."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lending import services
from lending.models import AppState, CollateralLine, FacilityApplication, ReviewStep

from .conftest import draft, securities, va

API = "/api/v1/lending"
HUGE = "9999999999999999.99999999"


@pytest.mark.parametrize(("line", "field"), [
    (va(quantity=HUGE), "quantity"),
    (va(quantity="21000000.00000001"), "quantity"),  # more bitcoin than will ever exist
    (va(quantity="0.000000001"), "quantity"),  # below a satoshi
    (securities(value="99999999999999999999"), "quantity"),  # holdings are chosen by quantity; no typed market value
])
def test_an_application_with_an_impossible_quantity_or_value_is_refused_with_a_clear_error(api_client, eligible_client, line, field):
    api_client.force_login(eligible_client)
    before = FacilityApplication.objects.count()
    response = api_client.post(f"{API}/applications/", {"requested_limit": "2000000", "purpose": "x", "lines": [securities(), line]}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error["message"].lower() or any(field.split()[0] in k.lower() for k in error["fields"]), error
    assert FacilityApplication.objects.count() == before


def test_a_requested_limit_beyond_the_column_is_refused(api_client, eligible_client):
    api_client.force_login(eligible_client)
    response = api_client.post(f"{API}/applications/", {"requested_limit": "99999999999999999999", "purpose": "x", "lines": [securities()]}, format="json")
    assert response.status_code == 400


def test_the_total_collateral_value_must_fit_what_a_facility_records(eligible_client):
    from portal.errors import PortalError

    from .conftest import give_holdings

    give_holdings(eligible_client, shares=10**15)
    lines = [securities(value="90000000000000000"), securities(value="90000000000000000", cls="B")]
    with pytest.raises(PortalError) as exc:
        services.application_create(user=eligible_client, requested_limit="1000000", purpose="x", lines=lines)
    assert "beyond what a facility can record" in exc.value.message


def test_a_staff_top_up_with_an_impossible_quantity_is_a_400_not_a_500(api_client, officer, eligible_client, django_capture_on_commit_callbacks):
    from .conftest import submitted

    app = submitted(eligible_client, django_capture_on_commit_callbacks)
    app = services.application_approve(actor=officer, application_id=app.pk, limit="2000000")
    facility = services.application_accept(user=eligible_client, application_id=app.pk, letter_sha256=app.letter_sha256)
    api_client.force_login(officer)
    url = f"/api/v1/risk/staff/facilities/{facility.pk}/collateral/"
    response = api_client.post(url, {"kind": "virtual_asset", "asset": "BTC", "quantity": HUGE, "custody_reference": "C-9"}, format="json")
    assert response.status_code == 400 and "quantity" in response.json()["error"]["fields"]
    response = api_client.post(url, {"kind": "securities", "haircut_class": "A", "market_value": "9999999999999999.99"}, format="json")
    assert response.status_code == 400


def test_a_drawdown_amount_beyond_the_column_is_refused(api_client, officer, eligible_client, django_capture_on_commit_callbacks):
    from .conftest import submitted

    app = submitted(eligible_client, django_capture_on_commit_callbacks)
    app = services.application_approve(actor=officer, application_id=app.pk, limit="2000000")
    facility = services.application_accept(user=eligible_client, application_id=app.pk, letter_sha256=app.letter_sha256)
    from portal.errors import PortalError

    with pytest.raises(PortalError):
        services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="1e30")


def test_a_review_that_fails_for_good_goes_to_the_officer_with_a_referral(eligible_client, monkeypatch, django_capture_on_commit_callbacks):
    from lending import tasks

    app = draft(eligible_client)
    monkeypatch.setattr(tasks.services, "review_run", lambda **kw: (_ for _ in ()).throw(ValueError("worker bug")))
    with django_capture_on_commit_callbacks(execute=True):
        services.application_submit(user=eligible_client, application_id=app.pk, confirm_terms=True)
    app = FacilityApplication.objects.get(pk=app.pk)
    assert app.state == AppState.AWAITING_DECISION and app.recommendation == "refer"
    steps = ReviewStep.objects.filter(application=app, run=app.review_run)
    assert steps.count() == 7 and all(s.status == "done" and s.outcome == "refer" for s in steps)
    assert "worker bug" in steps.first().last_error
    from portal.models import AuditEvent

    assert AuditEvent.objects.filter(action="lending.application.review_failed", object_id=str(app.pk)).exists()


def test_an_application_entered_before_the_bounds_ends_its_review_instead_of_staying_in_review(eligible_client, django_capture_on_commit_callbacks):
    app = draft(eligible_client)
    CollateralLine.objects.filter(application=app, kind="virtual_asset").update(quantity=Decimal(HUGE))  # as stored before the bound
    with django_capture_on_commit_callbacks(execute=True):
        services.application_submit(user=eligible_client, application_id=app.pk, confirm_terms=True)
    app = FacilityApplication.objects.get(pk=app.pk)
    # PostgreSQL reads the figure back and the review declines it as unrecordable; SQLite cannot even read it
    # back, and the review is given up with a referral. Either way the officer sees it, and why.
    assert app.state == AppState.AWAITING_DECISION and app.recommendation in ("decline", "refer")
    assert any(("beyond what a facility can record" in r) or ("could not be completed" in r) for r in app.recommendation_reasons)
