"""portal.exports: CSV with a BOM, XLSX in write-only mode, every text cell safe from formula injection."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from portal import exports
from portal.context import RequestMeta, reset_request_meta, set_request_meta
from tests.disclosures.conftest import EN, ZH, acknowledge, publish_new

pytestmark = pytest.mark.django_db

PAYLOADS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_text_starting_like_a_formula_is_neutralised(payload):
    assert exports.cell(payload) == "'" + payload


def test_numbers_stay_numbers_and_times_are_hong_kong_time():
    from datetime import UTC, datetime

    assert exports.cell(Decimal("-12.50")) == Decimal("-12.50")
    assert exports.cell(datetime(2026, 3, 1, 16, 30, tzinfo=UTC)) == "2026-03-02T00:30:00+08:00"
    assert exports.cell(None) == ""
    assert exports.cell("陳大文") == "陳大文"


def _csv_rows(chunks) -> list[list[str]]:
    data = b"".join(chunks)
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 BOM so Excel reads Chinese names"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_csv_and_xlsx_write_the_same_safe_cells():
    rows = [{"name": "陳大文", "ua": "=cmd|' /C calc'!A0", "amount": Decimal("1234.56")}]
    cols = exports.columns(("Name", lambda r: r["name"]), ("User agent", lambda r: r["ua"]), ("Amount", lambda r: r["amount"]))
    parsed = _csv_rows(exports.csv_chunks(rows, cols))
    assert parsed == [["Name", "User agent", "Amount"], ["陳大文", "'=cmd|' /C calc'!A0", "1234.56"]]
    data = b"".join(exports.xlsx_chunks(rows, cols, sheet_title="=Sheet"))
    sheet = load_workbook(io.BytesIO(data)).worksheets[0]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[1][1] == "'=cmd|' /C calc'!A0"
    assert sheet.cell(2, 2).data_type == "s", "a string cell, never a formula"
    assert values[1][2] == 1234.56


def test_acknowledgement_csv_neutralises_a_user_agent_starting_with_equals(client, compliance_user, admin_user, alice):
    """A browser's User-Agent is client-controlled; issue 9 found it written raw into the acknowledgement CSV."""
    from disclosures import services

    document = services.document_create(actor=admin_user, code="inj", title_en="Injection", title_zh="注入", products=["va_margin"])
    version = publish_new(admin_user, document, en=EN, zh=ZH)
    token = set_request_meta(RequestMeta(ip_address="203.0.113.9", user_agent='=HYPERLINK("http://evil.example","open")'))
    try:
        acknowledge(alice, version)
    finally:
        reset_request_meta(token)
    client.force_login(compliance_user)
    response = client.get(f"/disclosures/compliance/versions/{version.pk}/acknowledgements.csv")
    assert response.status_code == 200
    rows = _csv_rows(response.streaming_content)
    header = rows[0]
    assert rows[1][header.index("user_agent")] == '\'=HYPERLINK("http://evil.example","open")'
    xlsx = client.get(f"/disclosures/compliance/versions/{version.pk}/acknowledgements.xlsx")
    assert xlsx["Content-Type"] == exports.XLSX_CONTENT_TYPE
    sheet = load_workbook(io.BytesIO(b"".join(xlsx.streaming_content))).worksheets[0]
    cells = [c.value for c in next(sheet.iter_rows(min_row=2, max_row=2))]
    assert cells[header.index("user_agent")].startswith("'=")
    assert cells[header.index("client_name")] == "Alice Wong"


def test_export_headers_keep_the_file_private():
    response = exports.csv_response([], exports.columns(("A", "pk")), filename="x.csv")
    assert response["Content-Security-Policy"].startswith("sandbox")
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == 'attachment; filename="x.csv"'


def test_each_staff_list_links_to_its_export_with_its_filters(client, officer):
    client.force_login(officer)
    queue = client.get("/lending/staff/queue/", {"search": "alice", "state": "approved"}).content.decode()
    assert "/reporting/export/applications.csv?search=alice&amp;state=approved" in queue
    facilities = client.get("/lending/staff/facilities/", {"band": "watch"}).content.decode()
    assert "/reporting/export/facilities.xlsx?band=watch" in facilities
    calls = client.get("/risk/margin-calls/", {"state": "met"}).content.decode()
    assert "/reporting/export/margin-calls.csv?state=met" in calls


def test_facility_export_applies_the_list_filters(client, officer, book, alice, charlie):
    from tests.reporting.conftest import make_facility

    make_facility(alice, drawn="100")
    make_facility(charlie, drawn="200")
    client.force_login(officer)
    response = client.get("/reporting/export/facilities.csv", {"search": "charlie"})
    rows = _csv_rows(response.streaming_content)
    assert len(rows) == 2 and rows[1][1] == "charlie@example.com" and rows[1][5] == "200.00"


def test_xlsx_continues_on_a_new_sheet_past_excels_row_limit(monkeypatch):
    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 3)
    rows = [{"n": i} for i in range(5)]
    data = b"".join(exports.xlsx_chunks(rows, exports.columns(("N", lambda r: r["n"])), sheet_title="List"))
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["List", "List 2", "List 3"]
    assert [[c.value for c in r] for r in book["List"].iter_rows()] == [["N"], [0], [1]]
    assert [c.value for c in book["List 3"]["A"]] == ["N", 4]


def test_xlsx_drops_characters_xml_cannot_carry():
    data = b"".join(exports.xlsx_chunks([{"t": "a\x00b\x1fc <&>"}], exports.columns(("T", lambda r: r["t"]))))
    assert load_workbook(io.BytesIO(data)).worksheets[0]["A2"].value == "abc <&>"


def test_queryset_exports_read_values_not_model_instances(django_assert_num_queries, officer):
    from portal.models import AuditEvent

    cols = exports.columns(("Id", "pk"), ("Actor", "actor.email"), ("Action", "action"), ("Record", "object_repr"))
    with django_assert_num_queries(1):
        body = b"".join(exports.csv_chunks(AuditEvent.objects.order_by("id"), cols)).decode("utf-8-sig")
    first = AuditEvent.objects.order_by("id").first()
    assert f"{first.pk},,user.created,Bob Officer" in body, "a null foreign key is an empty cell"


def test_the_values_fast_path_neutralises_text_and_keeps_hong_kong_time(client, compliance_user):
    from django.db import transaction

    from portal.audit import audit_log

    token = set_request_meta(RequestMeta(ip_address="203.0.113.9", user_agent="=1+2"))
    try:
        with transaction.atomic():
            audit_log(actor=compliance_user, action="x.y", object_type="portal.user", object_id="1")
    finally:
        reset_request_meta(token)
    client.force_login(compliance_user)
    rows = _csv_rows(client.get("/reporting/export/audit.csv", {"action": "x.y"}).streaming_content)
    header = rows[0]
    assert rows[1][header.index("User agent")] == "'=1+2"
    assert rows[1][header.index("Time (HKT)")].endswith("+08:00")


def test_a_bad_list_filter_is_a_400_and_nothing_is_exported(client, officer):
    from portal.models import AuditEvent

    client.force_login(officer)
    response = client.get("/reporting/export/facilities.csv", {"band": "purple"})
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(action="reporting.export.downloaded").exists()
