"""The API: clients reach their own records only, staff by permission; outsiders refused everywhere."""

from decimal import Decimal

import pytest

from lending import selectors, services
from lending.models import AppState, Facility, FacilityApplication, FacilityTransaction

from .conftest import securities, va

API = "/api/v1/lending"


def _approved_facility(reviewed, officer, client_user):
    services.application_approve(actor=officer, application_id=reviewed.pk, limit="3000000")
    app = FacilityApplication.objects.get(pk=reviewed.pk)
    return services.application_accept(user=client_user, application_id=app.pk, letter_sha256=app.letter_sha256)


def test_client_applies_submits_and_sees_progress_through_the_api(api_client, eligible_client, django_capture_on_commit_callbacks):
    api_client.force_login(eligible_client)
    body = {"requested_limit": "2000000", "purpose": "Trade BTC", "lines": [securities(), va(quantity="0.5")]}
    created = api_client.post(f"{API}/applications/", body, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(f"{API}/applications/{pk}/submit/", {"confirm_terms": True}, format="json")
    assert response.status_code == 200
    progress = api_client.get(f"{API}/applications/{pk}/progress/").json()
    assert progress["state"] == AppState.AWAITING_DECISION and len(progress["steps"]) == 6  # never the screening step
    assert "screening" not in {s["code"] for s in progress["steps"]}
    assert all(s["status"] == "done" for s in progress["steps"])


def test_submission_refused_lists_requirements_with_links(api_client, eligible_client, facts):
    facts.set(eligible_client, unmet=["suitability"])
    api_client.force_login(eligible_client)
    pk = api_client.post(f"{API}/applications/", {"requested_limit": "1000000", "purpose": "x", "lines": [securities()]}, format="json").json()["id"]
    response = api_client.post(f"{API}/applications/{pk}/submit/", {"confirm_terms": True}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "not_eligible" and error["fields"]["requirements"][0]["fix_url"]


def test_preview_computes_lending_value(api_client, eligible_client):
    api_client.force_login(eligible_client)
    response = api_client.post(f"{API}/preview/", {"lines": [securities("1000000"), va(quantity="10")]}, format="json")
    assert response.status_code == 200
    data = response.json()
    assert data["va_capped"] is True and data["va_share"] == "0.4000"
    assert Decimal(data["lending_value"]) == Decimal("1166666.67")


def test_outsider_client_cannot_see_or_act_on_anothers_application(api_client, reviewed, outsider):
    api_client.force_login(outsider)
    for method, path in [("get", ""), ("get", "progress/"), ("post", "withdraw/"), ("post", "submit/"), ("post", "accept/"), ("patch", "")]:
        response = getattr(api_client, method)(f"{API}/applications/{reviewed.pk}/{path}", {}, format="json")
        assert response.status_code == 404, (method, path, response.status_code)
    assert api_client.get(f"{API}/applications/").json()["count"] == 0


def test_clients_cannot_use_staff_endpoints(api_client, reviewed, eligible_client):
    api_client.force_login(eligible_client)
    assert api_client.get(f"{API}/staff/applications/").status_code == 403
    assert api_client.post(f"{API}/staff/applications/{reviewed.pk}/approve/", {"limit": "1"}, format="json").status_code == 403
    assert api_client.post(f"{API}/staff/prices/", {"asset": "BTC", "price_hkd": "1", "source": "me"}, format="json").status_code == 403


def test_anonymous_refused(api_client, reviewed):
    for path in ["applications/", f"applications/{reviewed.pk}/", f"applications/{reviewed.pk}/progress/", "staff/applications/", "facilities/", "prices/current/"]:
        assert api_client.get(f"{API}/{path}").status_code in (401, 403), path


def test_staff_without_permission_refused(api_client, reviewed, compliance_user):
    api_client.force_login(compliance_user)
    assert api_client.post(f"{API}/staff/applications/{reviewed.pk}/approve/", {"limit": "1000"}, format="json").status_code == 403
    assert api_client.post(f"{API}/staff/facilities/1/drawdowns/", {"amount": "1"}, format="json").status_code == 403
    assert api_client.post(f"{API}/staff/policies/", {}, format="json").status_code == 403


def test_officer_decides_through_the_api(api_client, reviewed, officer):
    api_client.force_login(officer)
    queue = api_client.get(f"{API}/staff/applications/").json()
    assert [row["id"] for row in queue["results"]] == [reviewed.pk]
    detail = api_client.get(f"{API}/staff/applications/{reviewed.pk}/").json()
    assert len(detail["steps"]) == 7
    response = api_client.post(f"{API}/staff/applications/{reviewed.pk}/approve/", {"limit": "3000000"}, format="json")
    assert response.status_code == 200 and response.json()["state"] == AppState.APPROVED
    again = api_client.post(f"{API}/staff/applications/{reviewed.pk}/decline/", {"reason_codes": ["other"]}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "decision_conflict"


def test_drawdown_with_idempotency_key_is_recorded_once(api_client, reviewed, officer, eligible_client):
    facility = _approved_facility(reviewed, officer, eligible_client)
    api_client.force_login(officer)
    url = f"{API}/staff/facilities/{facility.pk}/drawdowns/"
    first = api_client.post(url, {"amount": "500000", "reference": "D1"}, format="json", HTTP_IDEMPOTENCY_KEY="dd-1")
    second = api_client.post(url, {"amount": "500000", "reference": "D1"}, format="json", HTTP_IDEMPOTENCY_KEY="dd-1")
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert FacilityTransaction.objects.count() == 1
    assert Facility.objects.get(pk=facility.pk).drawn_balance == Decimal("500000.00")
    too_much = api_client.post(url, {"amount": "9000000"}, format="json")
    assert too_much.status_code == 400 and too_much.json()["error"]["code"] == "above_available"


def test_client_sees_own_facility_only(api_client, reviewed, officer, eligible_client, outsider):
    facility = _approved_facility(reviewed, officer, eligible_client)
    api_client.force_login(eligible_client)
    data = api_client.get(f"{API}/facilities/{facility.pk}/").json()
    assert data["state"] == "active" and Decimal(data["available"]) == Decimal("3000000.00") and len(data["positions"]) == 2
    api_client.force_login(outsider)
    assert api_client.get(f"{API}/facilities/{facility.pk}/").status_code == 404


def test_api_policy_with_va_haircut_under_floor_refused(api_client, officer, policy):
    from .conftest import POLICY_NUMBERS

    api_client.force_login(officer)
    response = api_client.post(f"{API}/staff/policies/", POLICY_NUMBERS | {"eth_haircut": "0.40", "reason": "x"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "va_haircut_below_floor"


def test_price_load_via_api_records_quotes_from_a_named_source_into_the_governed_median(api_client, officer, policy, prices):
    from django.utils import timezone

    from lending.risk import services as risk_services
    from portal.audit import SYSTEM

    risk_services.price_source_create(actor=SYSTEM, code="file-a", name="Back-office file", kind="file")
    api_client.force_login(officer)
    content = f'[{{"asset": "BTC", "price_hkd": "770000", "source": "file-a", "as_of": "{timezone.now().isoformat()}"}}]'
    response = api_client.post(f"{API}/staff/prices/load/", {"content": content}, format="json")
    assert response.status_code == 201 and response.json()["loaded"] == 1
    # One source among two: the reference is the median (760,000 and 770,000), not the file's price.
    assert selectors.prices_current()["BTC"].price_hkd == Decimal("765000.00")


def test_price_load_naming_an_unknown_source_or_an_old_date_loads_nothing(api_client, officer, policy, prices):
    from lending.risk.models import PriceQuote

    api_client.force_login(officer)
    before = PriceQuote.objects.count()
    content = '[{"asset": "BTC", "price_hkd": "765000", "source": "feed-a", "as_of": "2026-01-01T00:00:00+08:00"}]'
    response = api_client.post(f"{API}/staff/prices/load/", {"content": content}, format="json")
    assert response.status_code == 400 and "feed-a" in response.json()["error"]["message"]
    assert PriceQuote.objects.count() == before


def test_schema_documents_the_lending_api(api_client, officer):
    api_client.force_login(officer)
    response = api_client.get("/api/schema/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "/api/v1/lending/staff/facilities/{id}/drawdowns/" in text and "/api/v1/lending/applications/{id}/submit/" in text


@pytest.mark.parametrize("state", ["awaiting_decision"])
def test_queue_filters_by_state(api_client, reviewed, officer, state):
    api_client.force_login(officer)
    assert api_client.get(f"{API}/staff/applications/?state=declined").json()["count"] == 0
    assert api_client.get(f"{API}/staff/applications/?state={state}").json()["count"] == 1
