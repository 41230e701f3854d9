"""QA fixes: one clear confirmation error; a safe ``next`` brings the client back where they came from."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from disclosures.models import Acknowledgement, Serving
from portal.products import Product

pytestmark = pytest.mark.django_db


def _post(client, v1, *, next_url=None, **ticks):
    serving = Serving.objects.filter(client__email="alice@example.com", version=v1).latest("id")
    data = {"version_id": v1.pk, "language": "en", "content_hash": v1.hash_en, "serving_token": serving.token, **ticks}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/disclosures/documents/test-risk/acknowledge/", data)


def _errors(response):
    return [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]


def test_no_ticks_gives_one_message(client, alice, v1):
    client.force_login(alice)
    client.get("/disclosures/documents/test-risk/")
    response = _post(client, v1)
    assert _errors(response) == ["Please confirm both statements before acknowledging."]
    assert not Acknowledgement.objects.exists()


def test_one_missing_tick_names_the_statement_once(client, alice, v1):
    client.force_login(alice)
    client.get("/disclosures/documents/test-risk/")
    response = _post(client, v1, confirmed_read_and_understood="on")
    assert _errors(response) == ["Confirm that you were invited to ask questions and to seek independent advice."]
    assert not Acknowledgement.objects.exists()


def test_the_api_still_names_each_missing_confirmation(api_client, alice, v1):
    from disclosures import services

    serving = services.version_serve(user=alice, version=v1, language="en")
    api_client.force_authenticate(alice)
    response = api_client.post(
        "/api/v1/disclosures/acknowledgements/",
        {"version_id": v1.pk, "language": "en", "content_hash": v1.hash_en, "serving_token": serving.token,
         "confirmed_read_and_understood": False, "confirmed_invited_to_ask_and_seek_advice": False},
        format="json",
    )
    error = response.json()["error"]
    assert error["code"] == "confirmation_required"
    assert set(error["fields"]) == {"confirmed_read_and_understood", "confirmed_invited_to_ask_and_seek_advice"}


def test_acknowledging_from_the_pi_page_returns_there_through_the_receipt(client, alice, v1):
    client.force_login(alice)
    page = client.get("/disclosures/documents/test-risk/?next=/onboarding/professional-investor/").content.decode()
    assert 'name="next" value="/onboarding/professional-investor/"' in page
    assert 'href="/onboarding/professional-investor/"' in page  # the back link
    response = _post(client, v1, next_url="/onboarding/professional-investor/",
                     confirmed_read_and_understood="on", confirmed_invited_to_ask_and_seek_advice="on")
    ack = Acknowledgement.objects.get(client=alice)
    assert response["Location"] == f"/disclosures/receipts/{ack.pk}/?next=%2Fonboarding%2Fprofessional-investor%2F"
    receipt = client.get(response["Location"]).content.decode()
    assert 'data-testid="continue"' in receipt and 'href="/onboarding/professional-investor/"' in receipt


@pytest.mark.parametrize("evil", ["https://evil.example.com/", "//evil.example.com/", "javascript:alert(1)", "/\\evil.example.com"])
def test_an_offsite_next_is_ignored(client, alice, v1, evil):
    client.force_login(alice)
    page = client.get("/disclosures/documents/test-risk/", {"next": evil}).content.decode()
    form = page.split('data-testid="acknowledge-form"', 1)[1].split("</form>", 1)[0]
    assert 'name="next"' not in form
    assert 'data-testid="back"' not in page and 'href="/disclosures/"' in page
    response = _post(client, v1, next_url=evil, confirmed_read_and_understood="on", confirmed_invited_to_ask_and_seek_advice="on")
    ack = Acknowledgement.objects.get(client=alice)
    assert response["Location"] == f"/disclosures/receipts/{ack.pk}/"
    receipt = client.get(f"/disclosures/receipts/{ack.pk}/", {"next": evil}).content.decode()
    assert 'class="button" href="/disclosures/" data-testid="continue"' in receipt


def test_receipt_without_next_continues_to_the_disclosures_list(client, alice, v1):
    from tests.disclosures.conftest import acknowledge

    ack = acknowledge(alice, v1)
    client.force_login(alice)
    receipt = client.get(f"/disclosures/receipts/{ack.pk}/").content.decode()
    assert 'class="button" href="/disclosures/" data-testid="continue"' in receipt


def test_a_refused_acknowledgement_keeps_next_on_the_way_back(client, alice, v1):
    client.force_login(alice)
    client.get("/disclosures/documents/test-risk/?next=/onboarding/")
    response = _post(client, v1, next_url="/onboarding/")
    assert response["Location"] == "/disclosures/documents/test-risk/?lang=en&next=%2Fonboarding%2F"


def test_the_pi_page_links_outstanding_documents_with_next(client, alice, admin_user):
    from disclosures import services as dsvc

    document = dsvc.document_create(actor=admin_user, code="pi-risk", title_en="PI", title_zh="專業投資者", products=[Product.PROFESSIONAL_INVESTOR])
    draft = dsvc.version_create_draft(actor=admin_user, document_id=document.pk, body_en="x", body_zh="x", change_summary="", material=True)
    dsvc.version_publish(actor=admin_user, version_id=draft.pk)
    client.force_login(alice)
    body = client.get("/onboarding/professional-investor/").content.decode()
    assert 'href="/disclosures/documents/pi-risk/?next=%2Fonboarding%2Fprofessional-investor%2F"' in body
