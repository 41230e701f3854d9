"""Regressions found using the disclosure pages and the admin publishing flow in a browser."""

from __future__ import annotations

import pytest
from django.utils import translation

from disclosures import services
from tests.disclosures.conftest import EN, ZH, acknowledge

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english_again_afterwards():
    """A request in Chinese leaves Chinese active in this thread: later tests expect English."""
    yield
    translation.activate("en")


def test_receipt_names_a_client_without_a_full_name_once(client, alice, v1):
    alice.full_name = ""
    alice.save(update_fields=["full_name"])
    ack = acknowledge(alice, v1)
    client.force_login(alice)
    body = client.get(f"/disclosures/receipts/{ack.pk}/").content.decode()
    assert f"{alice.email} ({alice.email})" not in body


def test_receipt_in_chinese_labels_the_ip_address_as_its_source(client, alice, v1):
    ack = acknowledge(alice, v1)
    client.force_login(alice)
    client.cookies["django_language"] = "zh-hant"
    body = client.get(f"/disclosures/receipts/{ack.pk}/").content.decode()
    assert "<dt>來源</dt>" in body and "<dt>由</dt>" not in body  # Django's catalogue says 由 ("by") for a bare "From"


def test_publish_preview_diff_scrolls_inside_the_page(client, admin_user, document, v1):
    draft = services.version_create_draft(actor=admin_user, document_id=document.pk, body_en=EN + "\nNew paragraph.", body_zh=ZH + "\n新段落。")
    client.force_login(admin_user)
    body = client.get(f"/admin/disclosures/documentversion/{draft.pk}/publish/").content.decode()
    assert 'class="diff-scroll" data-testid="diff"' in body and ".diff-scroll { max-width: 100%; overflow-x: auto; }" in body


def test_disclosure_pages_address_the_client_as_the_rest_of_the_portal_does(client, alice, v1):
    """Onboarding and lending say 您; the disclosure pages said 你 beside them on the same dashboard."""
    client.force_login(alice)
    client.cookies["django_language"] = "zh-hant"
    index = client.get("/disclosures/").content.decode()
    assert "您" in index and "你必須" not in index
