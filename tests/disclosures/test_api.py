from __future__ import annotations

import pytest

from disclosures.models import Acknowledgement
from portal.products import Product
from tests.disclosures.conftest import acknowledge

pytestmark = pytest.mark.django_db

API = "/api/v1/disclosures"


def _fetch(api_client, version, language="en"):
    response = api_client.get(f"{API}/versions/{version.pk}/?language={language}")
    assert response.status_code == 200, response.content
    return response.json()


def _ack_body(doc, **overrides):
    return {
        "version_id": doc["id"],
        "language": doc["language"],
        "content_hash": doc["content_hash"],
        "serving_token": doc["serving_token"],
        "confirmed_read_and_understood": True,
        "confirmed_invited_to_ask_and_seek_advice": True,
        **overrides,
    }


def test_required_and_outstanding_lists_for_a_product(api_client, alice, v1, django_assert_num_queries):
    api_client.force_authenticate(alice)
    with django_assert_num_queries(2):  # the user's roles, then one query for the documents
        required = api_client.get(f"{API}/required/?product={Product.VA_MARGIN}").json()
    assert "test-risk" in {d["code"] for d in required}
    acknowledge(alice, v1)
    outstanding = api_client.get(f"{API}/outstanding/?product={Product.VA_MARGIN}").json()
    assert "test-risk" not in {d["code"] for d in outstanding}
    bad = api_client.get(f"{API}/required/?product=nonsense")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"


def test_fetch_returns_the_text_its_hash_and_a_serving_token(api_client, alice, v1):
    api_client.force_authenticate(alice)
    doc = _fetch(api_client, v1, "zh-hant")
    assert doc["content_hash"] == v1.hash_zh and doc["serving_token"] and "風險" in doc["body_html"]
    by_code = api_client.get(f"{API}/documents/test-risk/").json()
    assert by_code["id"] == v1.pk and by_code["language"] == "en"


def test_acknowledge_then_again_returns_the_same_row(api_client, alice, v1):
    api_client.force_authenticate(alice)
    doc = _fetch(api_client, v1)
    first = api_client.post(f"{API}/acknowledgements/", _ack_body(doc), HTTP_USER_AGENT="pytest-agent")
    assert first.status_code == 201, first.content
    second = api_client.post(f"{API}/acknowledgements/", _ack_body(doc))
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]
    ack = Acknowledgement.objects.get(client=alice)
    assert (ack.channel, ack.user_agent, ack.ip_address) == ("api", "pytest-agent", "127.0.0.1")


def test_acknowledge_with_wrong_hash_is_a_clear_conflict(api_client, alice, v1):
    api_client.force_authenticate(alice)
    doc = _fetch(api_client, v1)
    response = api_client.post(f"{API}/acknowledgements/", _ack_body(doc, content_hash="0" * 64))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "hash_mismatch"
    assert not Acknowledgement.objects.exists()


def test_acknowledge_without_fetching_is_refused(api_client, alice, v1):
    api_client.force_authenticate(alice)
    body = {"version_id": v1.pk, "language": "en", "content_hash": v1.hash_en, "serving_token": "made-up",
            "confirmed_read_and_understood": True, "confirmed_invited_to_ask_and_seek_advice": True}
    response = api_client.post(f"{API}/acknowledgements/", body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "not_served"


def test_idempotency_key_replays_the_first_response(api_client, alice, v1):
    api_client.force_authenticate(alice)
    doc = _fetch(api_client, v1)
    first = api_client.post(f"{API}/acknowledgements/", _ack_body(doc), HTTP_IDEMPOTENCY_KEY="k1")
    again = api_client.post(f"{API}/acknowledgements/", _ack_body(doc), HTTP_IDEMPOTENCY_KEY="k1")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_own_acknowledgements_list_and_detail(api_client, alice, charlie, v1, django_assert_num_queries):
    ack = acknowledge(alice, v1)
    acknowledge(charlie, v1)
    api_client.force_authenticate(alice)
    with django_assert_num_queries(2):  # count and page (alice's roles are cached on the instance)
        listing = api_client.get(f"{API}/acknowledgements/").json()
    assert [row["id"] for row in listing["results"]] == [ack.pk]
    assert api_client.get(f"{API}/acknowledgements/{ack.pk}/").json()["content_hash"] == v1.hash_en


def test_an_outsider_cannot_read_another_clients_acknowledgement(api_client, alice, charlie, v1):
    ack = acknowledge(alice, v1)
    api_client.force_authenticate(charlie)
    assert api_client.get(f"{API}/acknowledgements/{ack.pk}/").status_code == 404
    assert api_client.get(f"{API}/acknowledgements/").json()["results"] == []


def test_drafts_are_invisible_to_clients(api_client, alice, admin_user, document, v1):
    from disclosures import services

    draft = services.version_create_draft(actor=admin_user, document_id=document.pk, body_en="secret", body_zh="秘密")
    api_client.force_authenticate(alice)
    assert api_client.get(f"{API}/versions/{draft.pk}/").status_code == 404


@pytest.mark.parametrize("path", ["required/?product=va_margin", "outstanding/?product=va_margin", "acknowledgements/", "documents/test-risk/"])
def test_client_endpoints_refuse_anonymous_and_staff(api_client, officer, v1, path):
    assert api_client.get(f"{API}/{path}").status_code in (401, 403)
    api_client.force_login(officer)
    assert api_client.get(f"{API}/{path}").status_code == 403


def test_compliance_reads_reports(client, compliance_user, alice, v1, django_assert_num_queries):
    ack = acknowledge(alice, v1)
    client.force_login(compliance_user)
    versions = client.get(f"{API}/reports/versions/").json()["results"]
    row = next(v for v in versions if v["id"] == v1.pk)
    assert row["acknowledgements"] == 1
    acks = client.get(f"{API}/reports/versions/{v1.pk}/acknowledgements/").json()["results"]
    assert acks[0]["id"] == ack.pk and acks[0]["client_email"] == alice.email
    outstanding = client.get(f"{API}/reports/versions/{v1.pk}/outstanding/").json()["results"]
    assert alice.email not in {r["email"] for r in outstanding}
    history = client.get(f"{API}/reports/clients/{alice.pk}/acknowledgements/").json()["results"]
    assert [h["id"] for h in history] == [ack.pk]


@pytest.mark.parametrize("path", ["reports/versions/", "reports/versions/{v}/acknowledgements/", "reports/clients/{c}/acknowledgements/"])
def test_report_endpoints_refuse_clients_and_officers(client, alice, officer, v1, path):
    url = f"{API}/" + path.format(v=v1.pk, c=alice.pk)
    assert client.get(url).status_code in (401, 403)
    client.force_login(alice)
    assert client.get(url).status_code == 403
    client.force_login(officer)
    assert client.get(url).status_code == 403
