"""An admin publishes a material update in the admin; a client reads it in Chinese, acknowledges, opens the receipt."""

from __future__ import annotations

import pytest

from disclosures import services
from disclosures.models import Acknowledgement, DocumentVersion, VersionStatus
from portal.products import Product
from tests.disclosures.conftest import EN, ZH, acknowledge
from tests.helpers import browser_sign_in, make_user


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_admin_publishes_material_update_and_client_reacknowledges_in_chinese(page, browser, live_server):
    admin = make_user("admin", email="adrian@example.com")
    client_user = make_user("client", email="wong@example.com", full_name="Wong Tai Man")
    document = services.document_create(actor=admin, code="browser-risk", title_en="Browser risk", title_zh="瀏覽器風險", products=[Product.VA_MARGIN])
    draft = services.version_create_draft(actor=admin, document_id=document.pk, body_en=EN, body_zh=ZH)
    v1 = services.version_publish(actor=admin, version_id=draft.pk)
    acknowledge(client_user, v1)

    # The admin writes version 2 in the Django admin, previews the diff and publishes it.
    browser_sign_in(page, admin)
    page.goto("/admin/disclosures/documentversion/add/")
    page.select_option("select[name=document]", str(document.pk))
    page.fill("textarea[name=body_en]", EN + "\nCollateral is revalued every five minutes.")
    page.fill("textarea[name=body_zh]", ZH + "\n抵押品每五分鐘重新估值一次。")
    page.fill("textarea[name=change_summary]", "Adds revaluation frequency.")
    page.check("input[name=material]")
    page.click("input[name=_save]")
    page.wait_for_selector("[data-testid=diff]")
    assert "抵押品每五分鐘重新估值一次" in page.inner_text("[data-testid=preview-zh]")
    page.check("[data-testid=publish-confirm]")
    page.click("[data-testid=publish-submit]")
    page.wait_for_selector(".messagelist .success")
    v2 = DocumentVersion.objects.get(document=document, number=2)
    assert v2.status == VersionStatus.PUBLISHED and v2.material

    # The client sees it outstanding, reads it in Chinese, acknowledges and opens the receipt.
    context = browser.new_context(base_url=live_server.url, locale="en-GB")
    client_page = context.new_page()
    browser_sign_in(client_page, client_user)
    client_page.goto("/disclosures/")
    row = client_page.locator("[data-testid=product-va_margin] [data-testid=doc-browser-risk]")
    assert "acknowledge again" in row.inner_text()
    row.get_by_role("link").click()
    client_page.click("[data-testid=doc-lang-zh-hant]")
    client_page.wait_for_selector("[data-testid=document-title]:has-text('瀏覽器風險')")
    assert "抵押品每五分鐘重新估值一次" in client_page.inner_text("[data-testid=document-body]")
    client_page.check("[data-testid=confirm-read]")
    client_page.check("[data-testid=confirm-advice]")
    client_page.click("[data-testid=acknowledge]")
    client_page.wait_for_selector("[data-testid=receipt]")
    assert "抵押品每五分鐘重新估值一次" in client_page.inner_text("[data-testid=receipt-body]")
    assert client_page.inner_text("[data-testid=receipt-hash]") == v2.hash_zh
    ack = Acknowledgement.objects.get(client=client_user, version=v2)
    assert ack.language == "zh-hant" and ack.user_agent
    context.close()
