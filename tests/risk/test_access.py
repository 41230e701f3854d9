"""Outsiders are refused on every page and endpoint; clients reach only their own facility; the API works end to end."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from lending.risk.models import CallState, MarginCall
from lending.risk.revaluation import revalue_book

from .conftest import make_facility

pytestmark = pytest.mark.django_db
MIXED = {"securities": (("10000000", "0.30"),), "btc": "2", "eth": "10"}

STAFF_PAGES = ["/risk/board/", "/risk/margin-calls/", "/risk/margin-calls/{call}/", "/risk/stress/", "/risk/stress/reports/",
               "/risk/prices/", "/risk/policy/"]
STAFF_GETS = ["/api/v1/risk/staff/board/", "/api/v1/risk/staff/facilities/{facility}/", "/api/v1/risk/staff/margin-calls/",
              "/api/v1/risk/staff/margin-calls/{call}/", "/api/v1/risk/staff/prices/", "/api/v1/risk/staff/alarms/",
              "/api/v1/risk/staff/stress/presets/", "/api/v1/risk/staff/stress/reports/"]
STAFF_POSTS = ["/api/v1/risk/staff/facilities/{facility}/collateral/", "/api/v1/risk/staff/margin-calls/{call}/escalate/",
               "/api/v1/risk/staff/margin-calls/{call}/mark-met/", "/api/v1/risk/staff/margin-calls/{call}/propose/",
               "/api/v1/risk/staff/margin-calls/{call}/approve/", "/api/v1/risk/staff/margin-calls/{call}/reject/",
               "/api/v1/risk/staff/prices/quotes/", "/api/v1/risk/staff/prices/overrides/", "/api/v1/risk/staff/prices/overrides/1/cancel/",
               "/api/v1/risk/staff/stress/"]


@pytest.fixture
def setup(book, alice, officer):
    facility = make_facility(alice, drawn="8000000", officer=officer, **MIXED)
    revalue_book()
    return {"facility": facility.pk, "call": MarginCall.objects.get().pk}


def fmt(path, ids):
    return path.format(**ids)


def test_anonymous_is_sent_to_sign_in_or_refused(client, api_client, setup):
    for path in [*STAFF_PAGES, f"/risk/facility/{setup['facility']}/"]:
        response = client.get(fmt(path, setup))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path
    for path in [*STAFF_GETS, "/api/v1/risk/margin-calls/", f"/api/v1/risk/facilities/{setup['facility']}/"]:
        assert api_client.get(fmt(path, setup)).status_code in (401, 403), path
    for path in STAFF_POSTS:
        assert api_client.post(fmt(path, setup), {}, format="json").status_code in (401, 403), path


def test_clients_cannot_reach_staff_pages_or_endpoints(client, api_client, setup, alice):
    client.force_login(alice)
    api_client.force_login(alice)
    for path in STAFF_PAGES:
        assert client.get(fmt(path, setup)).status_code == 403, path
    for path in STAFF_GETS:
        assert api_client.get(fmt(path, setup)).status_code == 403, path
    for path in STAFF_POSTS:
        assert api_client.post(fmt(path, setup), {}, format="json").status_code == 403, path


def test_another_client_cannot_see_the_facility_risk_or_calls(client, api_client, setup, charlie):
    client.force_login(charlie)
    api_client.force_login(charlie)
    assert client.get(f"/risk/facility/{setup['facility']}/").status_code == 404
    assert api_client.get(f"/api/v1/risk/facilities/{setup['facility']}/").status_code == 404
    assert api_client.get("/api/v1/risk/margin-calls/").json()["count"] == 0


def test_owner_sees_the_gauge_distance_to_call_and_open_call(client, api_client, setup, alice):
    client.force_login(alice)
    response = client.get(f"/risk/facility/{setup['facility']}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="gauge"' in body and "MC-" in body and "297,500.00" in body
    api_client.force_login(alice)
    data = api_client.get(f"/api/v1/risk/facilities/{setup['facility']}/").json()
    assert data["lending_value"] == "7702500.00" and data["band"] == "margin_call" and data["open_call"]["shortfall"] == "297500.00"
    assert api_client.get("/api/v1/risk/margin-calls/").json()["count"] == 1


def test_staff_without_the_permission_are_refused(client, api_client, setup, compliance_user, officer):
    # Compliance may look at the board but not run stress tests, manage calls or prices.
    client.force_login(compliance_user)
    assert client.get("/risk/board/").status_code == 200
    for path in ["/risk/margin-calls/", "/risk/stress/", "/risk/prices/", "/risk/policy/"]:
        assert client.get(path).status_code == 403, path
    api_client.force_login(officer)
    # An officer cannot approve a close-out nor set an override.
    assert api_client.post(f"/api/v1/risk/staff/margin-calls/{setup['call']}/approve/", {"note": "x"}, format="json").status_code == 403
    assert api_client.post("/api/v1/risk/staff/prices/overrides/", {"asset": "BTC", "price_hkd": "1", "expires_at": timezone.now().isoformat(), "reason": "x"},
                           format="json").status_code == 403


def test_officer_escalates_and_two_credit_managers_close_out_through_the_api(api_client, setup, officer, credit_manager):
    from tests.helpers import make_user

    call = setup["call"]
    api_client.force_login(officer)
    assert api_client.post(f"/api/v1/risk/staff/margin-calls/{call}/escalate/", {"note": "No answer"}, format="json").status_code == 200
    response = api_client.post(f"/api/v1/risk/staff/margin-calls/{call}/propose/", {"resolution": "close_out", "reason": "Deadline passed"}, format="json")
    assert response.status_code == 200 and response.json()["proposed_resolution"] == "close_out"
    api_client.force_login(credit_manager)
    response = api_client.post(f"/api/v1/risk/staff/margin-calls/{call}/approve/", {"note": "Close out"}, format="json")
    assert response.status_code == 200 and response.json()["state"] == CallState.CLOSED_OUT
    assert api_client.post(f"/api/v1/risk/staff/margin-calls/{call}/approve/", {"note": "again"}, format="json").status_code == 409
    make_user  # noqa: B018 - imported for symmetry with the service tests


def test_top_up_through_the_api_meets_the_call_and_is_idempotent(api_client, setup, officer, alice):
    from tests.lending.conftest import give_holdings

    give_holdings(alice)  # 100 BTC in custody, free to pledge
    api_client.force_login(officer)
    url = f"/api/v1/risk/staff/facilities/{setup['facility']}/collateral/"
    body = {"kind": "virtual_asset", "asset": "BTC", "quantity": "1", "custody_reference": "CUST-9"}
    first = api_client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 201 and first.json()["open_call"] is None
    again = api_client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    from lending.models import CollateralPosition

    assert CollateralPosition.objects.filter(facility_id=setup["facility"], asset="BTC").count() == 2
    assert MarginCall.objects.get().state == CallState.MET


def test_bad_top_up_is_refused_and_nothing_changes(api_client, setup, officer):
    from lending.models import CollateralPosition

    api_client.force_login(officer)
    before = CollateralPosition.objects.count()
    response = api_client.post(f"/api/v1/risk/staff/facilities/{setup['facility']}/collateral/",
                               {"kind": "virtual_asset", "asset": "DOGE", "quantity": "1", "custody_reference": "x"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["fields"]["asset"]
    assert CollateralPosition.objects.count() == before


def test_stress_api_runs_and_stores(api_client, setup, officer):
    api_client.force_login(officer)
    response = api_client.post("/api/v1/risk/staff/stress/", {"btc": "-0.5", "eth": "-0.6", "securities": "-0.3", "save": True}, format="json")
    assert response.status_code == 200 and response.json()["report_id"]
    assert response.json()["summary"]["close_out"] == 1  # 8,000,000 / 5,241,800 = 1.53
    assert api_client.get(f"/api/v1/risk/staff/stress/reports/{response.json()['report_id']}/").status_code == 200


def test_an_override_through_the_api_needs_a_second_credit_manager(api_client, setup, credit_manager, credit_manager2):
    from lending.models import CurrentPrice

    api_client.force_login(credit_manager)
    response = api_client.post("/api/v1/risk/staff/prices/overrides/", {
        "asset": "BTC", "price_hkd": "700000", "expires_at": (timezone.now() + timedelta(hours=2)).isoformat(), "reason": "Feed outage"}, format="json")
    assert response.status_code == 201 and not response.json()["in_force"] and response.json()["status"] == "proposed"
    assert CurrentPrice.objects.get(asset="BTC").price_hkd == Decimal("760000.00")
    override = response.json()["id"]
    refused = api_client.post(f"/api/v1/risk/staff/prices/overrides/{override}/approve/", {}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "four_eyes"
    api_client.force_login(credit_manager2)
    approved = api_client.post(f"/api/v1/risk/staff/prices/overrides/{override}/approve/", {"note": "Seen the OTC prints"}, format="json")
    assert approved.status_code == 200 and approved.json()["in_force"]
    assert CurrentPrice.objects.get(asset="BTC").price_hkd == Decimal("700000.00")


def test_schema_documents_the_risk_api(api_client, setup):
    schema = api_client.get("/api/schema/?format=json").json()
    assert "/api/v1/risk/staff/board/" in schema["paths"] and "/api/v1/risk/staff/stress/" in schema["paths"]


def test_staff_pages_render_for_a_credit_manager(client, setup, credit_manager):
    client.force_login(credit_manager)
    for path in STAFF_PAGES:
        assert client.get(fmt(path, setup)).status_code == 200, path
    response = client.post("/risk/stress/", {"btc": "-50", "eth": "-60", "securities": "-30"})
    assert response.status_code == 200 and b"stress-summary" in response.content


def test_officer_acts_on_a_call_through_the_page(client, setup, officer):
    client.force_login(officer)
    response = client.post(f"/risk/margin-calls/{setup['call']}/", {"action": "escalate", "note": "No answer"})
    assert response.status_code == 302
    assert MarginCall.objects.get().state == CallState.ESCALATED
