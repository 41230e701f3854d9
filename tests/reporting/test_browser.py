"""Issue 13 "Done when", in a browser: a compliance officer produces last month's SMF pack as PDF and XLSX,
answers a client's data-access request, and logs and closes a complaint the client made from the portal."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.helpers import browser_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _new_page(page):
    context = page.context.browser.new_context(base_url=page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2], locale="en-GB")
    context.set_default_timeout(20_000)
    return context.new_page()


def test_compliance_produces_the_pack_answers_a_data_request_and_closes_a_complaint(page, alice, compliance_user):
    from django.utils import timezone
    from openpyxl import load_workbook

    from lending.reporting import smf
    from lending.reporting.archive import archive_verify
    from lending.reporting.models import Complaint, RecordRequest

    # The client complains from the portal.
    browser_sign_in(page, alice)
    page.goto("/reporting/my-complaints/")
    page.fill("#id_subject", "Fee I do not recognise")
    page.fill("#id_details", "My statement shows a HK$500 fee.")
    page.click("text=Send complaint")
    page.wait_for_selector("text=We will acknowledge it by")
    complaint = Complaint.objects.get(client=alice)

    officer = _new_page(page)
    browser_sign_in(officer, compliance_user)
    # 1. Last month's SMF pack, as PDF and XLSX.
    last_month = smf.last_month_end(timezone.localdate())
    officer.goto("/reporting/packs/")
    officer.fill("#id_as_of", last_month.isoformat())
    officer.click("button:has-text('Generate')")
    officer.wait_for_selector("[data-testid=pack-sha]")
    assert "1. Total margin loans against capital" in officer.text_content("main") or officer.locator("#total-loans").count() == 1
    with officer.expect_download() as pdf:
        officer.click("[data-testid=pack-pdf]")
    assert Path(pdf.value.path()).read_bytes()[:5] == b"%PDF-"
    with officer.expect_download() as xlsx:
        officer.click("[data-testid=pack-xlsx]")
    assert load_workbook(io.BytesIO(Path(xlsx.value.path()).read_bytes()))["SMF"]["A1"].value == "Figure / 項目"

    # 2. The client's data-access request: one archive whose manifest verifies.
    officer.goto("/reporting/record-requests/")
    officer.fill("#id_client_email", alice.email)
    officer.select_option("#id_basis", "client")
    officer.fill("#id_reference", "DAR-2026-001")
    officer.click("button:has-text('Produce archive')")
    officer.wait_for_selector("text=Archive ready")
    request = RecordRequest.objects.get()
    with officer.expect_download() as archive:
        officer.click(f"[data-testid=archive-{request.pk}]")
    data = Path(archive.value.path()).read_bytes()
    assert archive_verify(data, manifest_sha256=request.manifest_sha256).ok
    assert "reporting/complaints.json" in zipfile.ZipFile(io.BytesIO(data)).namelist()

    # 3. The complaint: assign, acknowledge, close with the outcome.
    officer.goto(f"/reporting/complaints/{complaint.pk}/")
    officer.click("button:has-text('Assign')")
    officer.wait_for_selector("text=Complaint updated.")
    officer.fill("textarea[name=text]", "Thank you, we are looking into the fee.")
    officer.click("button:has-text('Record acknowledgement')")
    officer.wait_for_selector("[data-testid=complaint-state]:has-text('Acknowledged')")
    officer.select_option("#id_outcome", "upheld")
    officer.fill("#id_text", "The fee was charged in error and has been refunded.")
    officer.click("button:has-text('Close complaint')")
    officer.wait_for_selector("[data-testid=complaint-state]:has-text('Closed')")
    complaint.refresh_from_db()
    assert complaint.state == "closed" and complaint.closed_by_id == compliance_user.pk

    # The client reads the answer.
    page.goto(f"/reporting/my-complaints/{complaint.pk}/")
    assert "refunded" in page.text_content("main")
