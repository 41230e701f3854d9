"""Complaints, capital, deviations, record archives and retention: the rules each register enforces."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine

from lending.reporting import services
from lending.reporting.models import ComplaintState
from portal.errors import ConflictError, ForbiddenError, PortalError
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db
HK = ZoneInfo("Asia/Hong_Kong")


# --- Complaints -------------------------------------------------------------------------------------------


def test_deadlines_count_hong_kong_business_days():
    from lending.reporting.policy import complaint_deadlines

    # Thursday 17 Dec 2026: acknowledge by Monday 21 Dec (Fri 18, Mon 21). For the answer, Christmas (Fri 25 Dec),
    # the first weekday after it (Sat 26 Dec: in Hong Kong a Saturday is a weekday, so no Monday substitute) and
    # New Year (Fri 1 Jan) are skipped: the 20th business day is Monday 18 Jan 2027.
    ack, answer = complaint_deadlines(datetime(2026, 12, 17, 10, 0, tzinfo=HK))
    assert ack == datetime(2026, 12, 21, 23, 59, 59, tzinfo=HK)
    assert answer.date() == date(2027, 1, 18)
    # Friday evening: the weekend does not count.
    ack, _answer = complaint_deadlines(datetime(2026, 11, 27, 22, 0, tzinfo=HK))
    assert ack.date() == date(2026, 12, 1)


def test_client_logs_a_complaint_from_the_portal(client, alice):
    client.force_login(alice)
    response = client.post("/reporting/my-complaints/", {"subject": "Statement wrong", "details": "My October statement is missing a repayment."})
    assert response.status_code == 302
    complaint = alice.complaints.get()
    assert complaint.channel == "portal" and complaint.logged_by == alice and complaint.state == ComplaintState.OPEN
    assert AuditEvent.objects.filter(action="reporting.complaint.logged", object_id=str(complaint.pk)).exists()
    page = client.get(response["Location"]).content.decode()
    assert "Statement wrong" in page


def test_another_client_cannot_see_the_complaint(client, alice, charlie):
    complaint = services.complaint_log(actor=alice, subject="s", details="d")
    client.force_login(charlie)
    assert client.get(f"/reporting/my-complaints/{complaint.pk}/").status_code == 404


def test_staff_involved_in_the_matter_never_handle_the_complaint(alice, officer, compliance_user, compliance2):
    complaint = services.complaint_log(actor=officer, client=alice, complainant_name="Alice", channel="phone", subject="Rude call",
                                       details="The officer was rude", staff_involved=[compliance_user])
    with pytest.raises(ForbiddenError):
        services.complaint_assign(actor=compliance2, complaint_id=complaint.pk, assignee=compliance_user)
    with pytest.raises(ForbiddenError):
        services.complaint_assign(actor=compliance_user, complaint_id=complaint.pk, assignee=compliance2)
    with pytest.raises(PortalError):
        services.complaint_assign(actor=compliance2, complaint_id=complaint.pk, assignee=officer)  # not a complaint handler
    services.complaint_assign(actor=compliance2, complaint_id=complaint.pk, assignee=compliance2)


def test_staff_who_decided_the_clients_application_are_involved(alice, officer, compliance_user, book):
    from lending.reporting.services import complaint_involved_ids
    from tests.reporting.conftest import make_facility

    make_facility(alice, officer=compliance_user)  # decided_by = compliance_user
    complaint = services.complaint_log(actor=officer, client=alice, complainant_name="Alice", channel="email", subject="s", details="d")
    assert compliance_user.pk in complaint_involved_ids(complaint)
    with pytest.raises(ForbiddenError):
        services.complaint_assign(actor=compliance_user, complaint_id=complaint.pk, assignee=compliance_user)


def test_a_complaint_goes_open_acknowledged_escalated_closed(alice, compliance_user):
    complaint = services.complaint_log(actor=alice, subject="s", details="d")
    services.complaint_assign(actor=compliance_user, complaint_id=complaint.pk, assignee=compliance_user)
    with pytest.raises(ConflictError):
        services.complaint_close(actor=compliance_user, complaint_id=complaint.pk, outcome="upheld", text="x")
    services.complaint_acknowledge(actor=compliance_user, complaint_id=complaint.pk, text="We received it.")
    services.complaint_escalate(actor=compliance_user, complaint_id=complaint.pk, reason="Complex")
    closed = services.complaint_close(actor=compliance_user, complaint_id=complaint.pk, outcome="partly_upheld", text="We corrected it.")
    assert closed.state == ComplaintState.CLOSED and closed.outcome == "partly_upheld"
    with pytest.raises(ConflictError):
        services.complaint_escalate(actor=compliance_user, complaint_id=complaint.pk, reason="again")
    actions = list(AuditEvent.objects.filter(object_type="reporting.complaint").order_by("id").values_list("action", flat=True))
    assert actions == ["reporting.complaint.logged", "reporting.complaint.assigned", "reporting.complaint.acknowledged",
                       "reporting.complaint.escalated", "reporting.complaint.closed"]


def test_only_the_assignee_acknowledges(alice, compliance_user, compliance2):
    complaint = services.complaint_log(actor=alice, subject="s", details="d")
    services.complaint_assign(actor=compliance_user, complaint_id=complaint.pk, assignee=compliance_user)
    with pytest.raises(ForbiddenError):
        services.complaint_acknowledge(actor=compliance2, complaint_id=complaint.pk, text="hi")


def test_bad_complaint_input_changes_nothing(officer):
    with pytest.raises(PortalError) as err:
        services.complaint_log(actor=officer, subject="", details="", complainant_name="", channel="fax")
    assert set(err.value.fields) >= {"subject", "details", "complainant_name", "channel"}
    from lending.reporting.models import Complaint

    assert not Complaint.objects.exists()


def test_overdue_complaints_escalate_once(alice):
    received = datetime(2026, 11, 2, 10, 0, tzinfo=HK)  # Monday
    with time_machine.travel(received, tick=False):
        complaint = services.complaint_log(actor=alice, subject="s", details="d")
    with time_machine.travel(datetime(2026, 11, 4, 23, 0, tzinfo=HK), tick=False):  # ack due end of Wed 4 Nov
        assert services.complaints_escalate_overdue() == 0
    with time_machine.travel(datetime(2026, 11, 5, 0, 1, tzinfo=HK), tick=False):
        assert services.complaints_escalate_overdue() == 1
        assert services.complaints_escalate_overdue() == 0
    complaint.refresh_from_db()
    assert complaint.state == ComplaintState.ESCALATED and "acknowledged" in complaint.escalation_reason


def test_staff_page_logs_a_phone_complaint(client, officer):
    client.force_login(officer)
    response = client.post("/reporting/complaints/new/", {
        "complainant_name": "Mr Chan", "channel": "phone", "received_at": "2026-11-30T10:00", "subject": "Late statement",
        "details": "Monthly statement arrived late.", "client_email": "", "staff_involved": "nobody@example.com",
    })
    assert response.status_code == 200 and "nobody@example.com" in response.content.decode()
    response = client.post("/reporting/complaints/new/", {
        "complainant_name": "Mr Chan", "channel": "phone", "received_at": "2026-11-30T10:00", "subject": "Late statement",
        "details": "Monthly statement arrived late.", "client_email": "", "staff_involved": "",
    })
    assert response.status_code == 302
    from lending.reporting.models import Complaint

    assert Complaint.objects.get().received_at == datetime(2026, 11, 30, 10, 0, tzinfo=HK)


# --- Capital and deviations -------------------------------------------------------------------------------


def test_capital_is_entered_by_a_credit_manager_and_approved_by_compliance(credit_manager, compliance_user, officer):
    with pytest.raises(ForbiddenError):
        services.capital_propose(actor=officer, as_of=date(2026, 11, 30), liquid_capital="1", source_reference="x", reason="y")
    entry = services.capital_propose(actor=credit_manager, as_of=date(2026, 11, 30), liquid_capital="250000000", source_reference="FRR", reason="m")
    with pytest.raises(ForbiddenError):
        services.capital_approve(actor=credit_manager, entry_id=entry.pk)  # no approve permission, and the maker
    approved = services.capital_approve(actor=compliance_user, entry_id=entry.pk, note="checked against FRR")
    assert approved.status == "approved" and approved.decided_by == compliance_user
    with pytest.raises(ConflictError):
        services.capital_approve(actor=compliance_user, entry_id=entry.pk)
    assert AuditEvent.objects.filter(action="reporting.capital.approved", object_id=str(entry.pk)).exists()


def test_capital_input_is_validated(credit_manager):
    from lending.reporting.models import CapitalEntry

    for bad in ({"liquid_capital": "abc"}, {"liquid_capital": "0"}, {"ceiling_multiple": "6"}, {"source_reference": " "}):
        kwargs = {"as_of": date(2026, 11, 30), "liquid_capital": "100", "source_reference": "FRR", "reason": "r"} | bad
        with pytest.raises(PortalError):
            services.capital_propose(actor=credit_manager, **kwargs)
    with pytest.raises(PortalError):
        services.capital_propose(actor=credit_manager, as_of=date.today() + timedelta(days=5), liquid_capital="1", source_reference="x", reason="r")
    assert not CapitalEntry.objects.exists()


def test_nobody_approves_their_own_deviation(compliance_user, compliance2, credit_manager):
    dev = services.deviation_propose(actor=compliance_user, area="haircuts", benchmark="b", departure="d", justification="j",
                                     compensating_control="c", review_date=date.today() + timedelta(days=90))
    with pytest.raises(ForbiddenError):
        services.deviation_approve(actor=compliance_user, deviation_id=dev.pk)
    services.deviation_approve(actor=credit_manager, deviation_id=dev.pk)
    retired = services.deviation_retire(actor=compliance2, deviation_id=dev.pk, reason="Back within the benchmark")
    assert retired.state == "retired"
    with pytest.raises(ConflictError):
        services.deviation_approve(actor=compliance2, deviation_id=dev.pk)


# --- Record archive ----------------------------------------------------------------------------------------


def _client_with_records(alice, admin_user, compliance_user):
    from disclosures import services as disclosure_services
    from tests.disclosures.conftest import EN, ZH, acknowledge, publish_new

    document = disclosure_services.document_create(actor=admin_user, code="arch", title_en="A", title_zh="甲", products=["va_margin"])
    version = publish_new(admin_user, document, en=EN, zh=ZH)
    acknowledge(alice, version, language="zh-hant")
    services.complaint_log(actor=alice, subject="s", details="d")
    return version


def test_client_archive_holds_the_exact_texts_and_its_manifest_verifies(alice, charlie, admin_user, compliance_user):
    from lending.reporting.archive import archive_verify

    version = _client_with_records(alice, admin_user, compliance_user)
    services.complaint_log(actor=charlie, subject="other client", details="never in alice's archive")
    request = services.record_request_create(actor=compliance_user, client=alice, basis="client", reference="DAR-7")
    data = bytes(request.archive)
    report = archive_verify(data, manifest_sha256=request.manifest_sha256)
    assert report.ok and report.checked == request.files
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert f"disclosures/texts/arch-v{version.number}-zh-hant.md" in names
        assert zf.read(f"disclosures/texts/arch-v{version.number}-zh-hant.md").decode() == version.body_zh
        complaints = json.loads(zf.read("reporting/complaints.json"))
        assert [c["subject"] for c in complaints] == ["s"]
        audit = json.loads(zf.read("audit/audit_events.json"))
        assert any(a["action"] == "disclosures.acknowledgement.recorded" or a["object_type"] == "disclosures.acknowledgement" for a in audit)
        assert all(a.get("object_id") != str(charlie.pk) or a["object_type"] != "portal.user" for a in audit)
        assert "password" not in zf.read("profile/user.json").decode()


def test_a_tampered_archive_does_not_verify(alice, admin_user, compliance_user, tmp_path):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from lending.reporting.archive import archive_verify

    _client_with_records(alice, admin_user, compliance_user)
    request = services.record_request_create(actor=compliance_user, client=alice, basis="regulator", reference="SFC-1")
    good = tmp_path / "good.zip"
    good.write_bytes(bytes(request.archive))
    out = io.StringIO()
    call_command("record_archive_verify", str(good), manifest_sha256=request.manifest_sha256, stdout=out)
    assert "Archive verifies" in out.getvalue()
    src = zipfile.ZipFile(io.BytesIO(bytes(request.archive)))
    tampered = io.BytesIO()
    with zipfile.ZipFile(tampered, "w") as zf:
        for name in src.namelist():
            body = src.read(name)
            zf.writestr(name, body.replace(b"\"s\"", b"\"t\"") if name == "reporting/complaints.json" else body)
        zf.writestr("extra.txt", b"x")
    report = archive_verify(tampered.getvalue())
    assert not report.ok
    assert "reporting/complaints.json: content does not match its hash" in report.problems and "extra.txt: not in the manifest" in report.problems
    bad = tmp_path / "bad.zip"
    bad.write_bytes(tampered.getvalue())
    with pytest.raises(CommandError):
        call_command("record_archive_verify", str(bad), stdout=io.StringIO(), stderr=io.StringIO())


def test_archive_download_is_compliance_only_and_audited(client, alice, officer, compliance_user):
    request = services.record_request_create(actor=compliance_user, client=alice, basis="client", reference="DAR-8")
    with pytest.raises(ForbiddenError):
        services.record_request_create(actor=officer, client=alice, basis="client", reference="x")
    client.force_login(compliance_user)
    response = client.get(f"/reporting/record-requests/{request.pk}/archive.zip")
    assert response.status_code == 200 and response["Content-Security-Policy"] == "sandbox"
    assert AuditEvent.objects.filter(action="reporting.record_request.downloaded", object_id=str(request.pk)).count() == 1
    client.force_login(officer)
    assert client.get(f"/reporting/record-requests/{request.pk}/archive.zip").status_code == 403


# --- Retention ---------------------------------------------------------------------------------------------


def test_retention_report_and_disposal_needs_a_second_person(alice, compliance_user, compliance2):
    from lending.reporting import retention
    from lending.reporting.models import Complaint

    with time_machine.travel(datetime(2018, 3, 1, 10, 0, tzinfo=HK), tick=False):
        old = services.complaint_log(actor=alice, subject="old", details="d")
    services.complaint_log(actor=alice, subject="new", details="d")
    rule = retention.RULES_BY_LABEL["reporting.complaint"]
    assert list(retention.due_queryset(rule, as_of=date(2025, 3, 1)).values_list("pk", flat=True)) == [old.pk]
    assert not retention.due_queryset(rule, as_of=date(2025, 2, 28)).exists()  # 7 years to the day
    request = services.disposal_request(actor=compliance_user, record_type="reporting.complaint", reason="Past 7 years")
    assert request.record_ids == [old.pk]
    with pytest.raises(ForbiddenError):
        services.disposal_approve(actor=compliance_user, request_id=request.pk)
    approved = services.disposal_approve(actor=compliance2, request_id=request.pk, note="ok")
    assert approved.state == "approved"
    assert Complaint.objects.filter(pk=old.pk).exists(), "approval records the decision; the portal deletes nothing"
    assert AuditEvent.objects.filter(action="reporting.disposal.approved").count() == 1
    with pytest.raises(PortalError):
        services.disposal_request(actor=compliance_user, record_type="portal.user", reason="x")


def test_due_diligence_records_run_from_the_relationship_end(alice, book, compliance_user):
    from lending.models import Facility
    from lending.reporting import retention
    from onboarding.models import ClientProfile
    from tests.reporting.conftest import make_facility

    ClientProfile.objects.create(user=alice, legal_name="Alice")
    facility = make_facility(alice)
    rule = retention.RULES_BY_LABEL["onboarding.clientprofile"]
    assert not retention.due_queryset(rule, as_of=date(2040, 1, 1)).exists(), "an open facility: the relationship has not ended"
    Facility.objects.filter(pk=facility.pk).update(state="closed", closed_at=datetime(2026, 6, 30, 12, 0, tzinfo=HK))
    assert not retention.due_queryset(rule, as_of=date(2031, 6, 29)).exists()
    assert retention.due_queryset(rule, as_of=date(2031, 6, 30)).count() == 1
    assert Decimal("1")  # keep Decimal imported for the money checks above
