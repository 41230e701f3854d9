"""Every parameter a lending or risk page or list takes is validated: a 400 with a clear message, never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", [
    "/lending/staff/queue/?min=NaN&max=1e999",
    "/lending/staff/queue/?min=inf",
    "/lending/staff/queue/?state=bogus",
    "/lending/staff/queue/?order=drop",
    "/lending/staff/queue/?recommendation=maybe",
    "/lending/staff/queue/?page=abc",
    "/lending/staff/queue/?page=99999999999999999999",
    "/lending/staff/queue/?search=" + "x" * 300,
    "/lending/staff/facilities/?state=bogus",
    "/lending/staff/facilities/?band=bogus",
    "/lending/staff/watchlist/?page=1e10",
    "/risk/margin-calls/?state=bogus",
    "/risk/margin-calls/?page=-1",
    "/risk/board/?page=abc",
    "/risk/stress/reports/?kind=bogus",
    "/risk/stress/?preset=bogus",
])
def test_staff_pages_answer_a_bad_parameter_with_400_naming_it(client, credit_manager, policy, url):
    client.force_login(credit_manager)
    response = client.get(url)
    assert response.status_code == 400, url
    name = url.split("?")[1].split("=")[0]
    assert name in response.content.decode()


@pytest.mark.parametrize("url", [
    "/api/v1/lending/staff/applications/?state=bogus",
    "/api/v1/lending/staff/applications/?min=NaN",
    "/api/v1/lending/staff/facilities/?band=bogus",
    "/api/v1/lending/staff/prices/?asset=DOGE",
    "/api/v1/risk/staff/margin-calls/?state=bogus",
    "/api/v1/risk/staff/board/?page=abc",
    "/api/v1/risk/staff/alarms/?all=yes",
    "/api/v1/risk/staff/stress/reports/?kind=x",
])
def test_list_apis_answer_a_bad_parameter_in_the_error_shape(api_client, credit_manager, policy, url):
    api_client.force_login(credit_manager)
    response = api_client.get(url)
    assert response.status_code == 400, url
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter" and error["fields"]


def test_valid_parameters_still_filter(client, credit_manager, policy):
    client.force_login(credit_manager)
    assert client.get("/lending/staff/queue/?state=awaiting_decision&min=0&max=5000000&order=-size&page=1").status_code == 200
    assert client.get("/lending/staff/facilities/?state=active&band=watch&search=alice").status_code == 200
    assert client.get("/risk/margin-calls/?state=open&q=MC-%C2%B2").status_code == 200  # a superscript digit is a search term, not an id


def test_bad_ids_posted_to_staff_forms_are_refused_with_a_message(client, credit_manager, officer, policy):
    client.force_login(credit_manager)
    for url, data in (("/lending/staff/policy/", {"action": "approve", "policy_id": "abc"}),
                      ("/lending/staff/watchlist/", {"action": "deactivate", "entry_id": "abc"}),
                      ("/lending/staff/watchlist/", {"action": "deactivate", "entry_id": "999999"}),
                      ("/risk/policy/", {"action": "approve", "policy_id": "abc"}),
                      ("/risk/prices/", {"action": "cancel_override", "override_id": "abc"}),
                      ("/risk/prices/", {"action": "override", "asset": "BTC", "price_hkd": "700000", "hours": "inf", "reason": "x"})):
        response = client.post(url, data, follow=True)
        assert response.status_code == 200, url
        messages = [str(m) for m in response.context["messages"]]
        assert messages and any(("record number" in m) or ("No such" in m) or ("at most" in m) or ("number" in m) for m in messages), (url, messages)
