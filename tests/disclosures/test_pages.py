from __future__ import annotations

import pytest

from disclosures import services, text
from disclosures.models import Acknowledgement, DocumentVersion, Serving, VersionStatus
from tests.disclosures.conftest import EN, ZH, acknowledge

pytestmark = pytest.mark.django_db


def test_reading_serves_the_text_and_the_form_acknowledges_it(client, alice, v1):
    client.force_login(alice)
    page = client.get("/disclosures/documents/test-risk/?lang=zh-hant")
    assert page.status_code == 200
    assert "你可能損失" in page.content.decode() and v1.hash_zh in page.content.decode()
    serving = Serving.objects.get(client=alice, version=v1, language="zh-hant")
    response = client.post(
        "/disclosures/documents/test-risk/acknowledge/",
        {"version_id": v1.pk, "language": "zh-hant", "content_hash": v1.hash_zh, "serving_token": serving.token,
         "confirmed_read_and_understood": "on", "confirmed_invited_to_ask_and_seek_advice": "on"},
        HTTP_USER_AGENT="page-agent",
    )
    ack = Acknowledgement.objects.get(client=alice)
    assert response.status_code == 302 and response["Location"] == f"/disclosures/receipts/{ack.pk}/"
    assert (ack.language, ack.user_agent, ack.channel) == ("zh-hant", "page-agent", "web")
    receipt = client.get(response["Location"]).content.decode()
    assert "你可能損失" in receipt and ack.content_hash in receipt


def test_unticked_confirmation_shows_an_error_and_records_nothing(client, alice, v1):
    client.force_login(alice)
    client.get("/disclosures/documents/test-risk/")
    serving = Serving.objects.get(client=alice)
    response = client.post(
        "/disclosures/documents/test-risk/acknowledge/",
        {"version_id": v1.pk, "language": "en", "content_hash": v1.hash_en, "serving_token": serving.token},
        follow=True,
    )
    assert "Please confirm both statements" in response.content.decode()
    assert not Acknowledgement.objects.exists()


def test_index_shows_outstanding_per_product_with_constant_queries(client, alice, v1, django_assert_num_queries):
    client.force_login(alice)
    client.get("/disclosures/")
    with django_assert_num_queries(5):  # session, user, roles, unread count, documents
        response = client.get("/disclosures/")
    assert 'data-testid="doc-test-risk"' in response.content.decode()


def test_dashboard_panel_counts_outstanding_documents(client, alice, v1):
    client.force_login(alice)
    body = client.get("/dashboard/").content.decode()
    assert "Risk disclosures:" in body and "outstanding" in body


def test_receipts_list_has_constant_queries(client, alice, charlie, v1, django_assert_num_queries):
    acknowledge(alice, v1)
    client.force_login(alice)
    with django_assert_num_queries(6):  # session, user, roles, count, page, unread count
        response = client.get("/disclosures/receipts/")
    assert response.status_code == 200


def test_an_outsider_cannot_open_another_clients_receipt(client, alice, charlie, v1):
    ack = acknowledge(alice, v1)
    client.force_login(charlie)
    assert client.get(f"/disclosures/receipts/{ack.pk}/").status_code == 404


@pytest.mark.parametrize("path", ["/disclosures/", "/disclosures/documents/test-risk/", "/disclosures/receipts/"])
def test_client_pages_refuse_anonymous_and_staff(client, officer, v1, path):
    assert client.get(path).status_code == 302
    client.force_login(officer)
    assert client.get(path).status_code == 403


def test_compliance_pages(client, compliance_user, alice, v1, django_assert_num_queries):
    ack = acknowledge(alice, v1)
    client.force_login(compliance_user)
    assert client.get("/disclosures/compliance/").status_code == 200
    assert alice.email in client.get("/disclosures/compliance/?q=alice").content.decode()
    report = client.get(f"/disclosures/compliance/versions/{v1.pk}/").content.decode()
    assert alice.email in report
    history = client.get(f"/disclosures/compliance/clients/{alice.pk}/").content.decode()
    assert v1.hash_en[:17] in history
    receipt = client.get(f"/disclosures/compliance/acknowledgements/{ack.pk}/").content.decode()
    assert "matches the stored text" in receipt
    csv_response = client.get(f"/disclosures/compliance/versions/{v1.pk}/acknowledgements.csv")
    rows = b"".join(csv_response.streaming_content).decode("utf-8-sig").splitlines()
    assert rows[0].startswith("acknowledgement_id,client_id,client_email")
    assert alice.email in rows[1] and v1.hash_en in rows[1] and ",yes," in rows[1]


def test_compliance_version_report_has_constant_queries(client, compliance_user, alice, charlie, v1, django_assert_num_queries):
    from tests.helpers import make_user

    make_user("client", email="dave@example.com")  # stays outstanding, so both lists are non-empty
    acknowledge(alice, v1)
    client.force_login(compliance_user)
    client.get(f"/disclosures/compliance/versions/{v1.pk}/")
    with django_assert_num_queries(13):
        client.get(f"/disclosures/compliance/versions/{v1.pk}/")
    acknowledge(charlie, v1)
    with django_assert_num_queries(13):
        client.get(f"/disclosures/compliance/versions/{v1.pk}/")


@pytest.mark.parametrize(
    "path",
    ["/disclosures/compliance/", "/disclosures/compliance/versions/{v}/", "/disclosures/compliance/versions/{v}/acknowledgements.csv", "/disclosures/compliance/clients/{c}/"],
)
def test_compliance_pages_refuse_clients_and_officers(client, alice, officer, v1, path):
    url = path.format(v=v1.pk, c=alice.pk)
    client.force_login(alice)
    assert client.get(url).status_code == 403
    client.force_login(officer)
    assert client.get(url).status_code == 403


# --- Admin --------------------------------------------------------------------------------------


def test_admin_cannot_change_a_published_version(client, admin_user, v1):
    client.force_login(admin_user)
    url = f"/admin/disclosures/documentversion/{v1.pk}/change/"
    assert client.get(url).status_code == 200  # shown read-only
    response = client.post(url, {"body_en": "tampered", "body_zh": "篡改", "change_summary": "", "effective_date": "2026-01-01"})
    assert response.status_code == 403
    assert DocumentVersion.objects.get(pk=v1.pk).body_en == text.canonicalize(EN)


def test_admin_publishes_after_a_preview_with_a_diff(client, admin_user, document, v1):
    draft = services.version_create_draft(actor=admin_user, document_id=document.pk, body_en=EN + "\nNew paragraph.", body_zh=ZH + "\n新段落。")
    client.force_login(admin_user)
    url = f"/admin/disclosures/documentversion/{draft.pk}/publish/"
    preview = client.get(url)
    body = preview.content.decode()
    assert preview.status_code == 200 and "New paragraph." in body and 'class="diff"' in body and "新段落" in body
    assert DocumentVersion.objects.get(pk=draft.pk).status == VersionStatus.DRAFT  # previewing changes nothing
    assert client.post(url, {"fingerprint": preview.context["form"].initial["fingerprint"]}).status_code == 200  # unconfirmed
    assert DocumentVersion.objects.get(pk=draft.pk).status == VersionStatus.DRAFT
    response = client.post(url, {"fingerprint": preview.context["form"].initial["fingerprint"], "confirm": "on"})
    assert response.status_code == 302
    assert DocumentVersion.objects.get(pk=draft.pk).status == VersionStatus.PUBLISHED
    assert DocumentVersion.objects.get(pk=v1.pk).status == VersionStatus.SUPERSEDED


def test_admin_adds_a_draft_through_the_service(client, admin_user, document, v1):
    client.force_login(admin_user)
    response = client.post(
        "/admin/disclosures/documentversion/add/",
        {"document": document.pk, "body_en": "E", "body_zh": "中", "change_summary": "s", "material": "on", "effective_date": "2026-03-01"},
    )
    draft = DocumentVersion.objects.get(document=document, number=2)
    assert response.status_code == 302 and response["Location"].endswith(f"/{draft.pk}/publish/")
    assert draft.status == VersionStatus.DRAFT and draft.hash_zh == text.content_hash("中")


def test_compliance_sees_versions_in_the_admin_but_cannot_publish(client, compliance_user, admin_user, document, v1):
    draft = services.version_create_draft(actor=admin_user, document_id=document.pk, body_en="E", body_zh="中")
    client.force_login(compliance_user)
    assert client.get("/admin/disclosures/documentversion/").status_code == 200
    assert client.get(f"/admin/disclosures/documentversion/{draft.pk}/publish/").status_code == 403
