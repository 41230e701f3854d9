"""Professional-investor attestation: thresholds, evidence windows, uploads, staff decisions, expiry."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from onboarding import services
from onboarding.models import PIAttestation, PIEvidence, PIState, add_months
from portal.errors import ConflictError, ForbiddenError, PortalError
from portal.models import AuditEvent, Notification
from portal.products import Product
from tests.onboarding.conftest import (
    ALL_TICKED,
    PDF,
    acknowledge,
    draft_attestation,
    make_profile,
    on_day,
    pdf_upload,
    png_bytes,
    submitted_attestation,
    verified_attestation,
)

pytestmark = pytest.mark.django_db


def codes(attestation):
    return [p["code"] for p in services.attestation_problems(attestation=attestation)]


def messages(attestation):
    return [p["message"] for p in services.attestation_problems(attestation=attestation)]


def test_individual_portfolio_one_cent_below_threshold_is_refused_with_exact_message(alice):
    acknowledge(alice, Product.PROFESSIONAL_INVESTOR)
    attestation = draft_attestation(alice, amount="7999999.99")
    assert messages(attestation) == [
        "The declared portfolio of HK$7,999,999.99 is below the minimum of HK$8,000,000.00 for the category “Individual”."
    ]
    with pytest.raises(PortalError) as exc:
        services.attestation_submit(attestation_id=attestation.pk, actor=alice)
    assert exc.value.code == "attestation_incomplete"
    assert PIAttestation.objects.get(pk=attestation.pk).state == PIState.DRAFT


def test_individual_portfolio_at_threshold_is_accepted(alice):
    attestation = submitted_attestation(alice, amount="8000000.00")
    assert attestation.state == PIState.SUBMITTED
    # How the client was assessed: the numbers used are kept with the attestation.
    record = PIAttestation.objects.get(pk=attestation.pk).assessment_record
    assert record["pi_portfolio_threshold"] == "8000000.00"
    assert record["threshold_applied"] == "8000000.00"
    assert record["evidence_window_months"] == 12
    assert record["policy_version"] == 1


@pytest.mark.parametrize("category", ["corporation", "trust_corporation"])
def test_total_assets_threshold_for_corporation_and_trust_corporation(alice, category):
    below = draft_attestation(alice, category=category, basis="total_assets", amount="39999999.99", kind="audited_accounts")
    assert "below_threshold" in codes(below)
    assert any("HK$40,000,000.00" in m for m in messages(below))
    services.attestation_update(attestation_id=below.pk, actor=alice, data={"declared_amount": "40000000.00"})
    assert codes(PIAttestation.objects.get(pk=below.pk)) == []


def test_trust_corporation_cannot_use_portfolio_and_individual_cannot_use_total_assets(alice, charlie):
    trust = draft_attestation(alice, category="trust_corporation", basis="portfolio", amount="50000000")
    assert "basis_not_allowed" in codes(trust)
    person = draft_attestation(charlie, category="individual", basis="total_assets", amount="50000000")
    assert "basis_not_allowed" in codes(person)


def test_corporation_portfolio_of_eight_million_qualifies(alice):
    assert codes(draft_attestation(alice, category="corporation", basis="portfolio", amount="8000000")) == []


def test_evidence_one_day_outside_twelve_month_window_is_refused(alice):
    relevant = timezone.localdate() - timedelta(days=5)
    earliest = add_months(relevant, -12)
    attestation = draft_attestation(alice, relevant_date=relevant, issued_on=earliest - timedelta(days=1))
    assert codes(attestation) == ["evidence_too_old"]
    assert messages(attestation) == [
        f"Bank or broker statement dated {(earliest - timedelta(days=1)).isoformat()} is more than 12 months before the relevant "
        f"date {relevant.isoformat()}; it must be dated {earliest.isoformat()} or later."
    ]


def test_evidence_on_the_first_day_of_the_window_is_accepted(alice):
    relevant = timezone.localdate() - timedelta(days=5)
    attestation = draft_attestation(alice, relevant_date=relevant, issued_on=add_months(relevant, -12))
    assert codes(attestation) == []


def test_corporation_audited_accounts_have_sixteen_months(alice, charlie):
    relevant = timezone.localdate() - timedelta(days=2)
    inside = draft_attestation(alice, category="corporation", basis="total_assets", amount="45000000", kind="audited_accounts",
                               relevant_date=relevant, issued_on=add_months(relevant, -16))
    assert codes(inside) == []
    outside = draft_attestation(charlie, category="corporation", basis="total_assets", amount="45000000", kind="audited_accounts",
                                relevant_date=relevant, issued_on=add_months(relevant, -16) - timedelta(days=1))
    assert codes(outside) == ["evidence_too_old"]
    assert "more than 16 months" in messages(outside)[0]


def test_a_statement_for_a_corporation_still_has_twelve_months(alice):
    relevant = timezone.localdate()
    attestation = draft_attestation(alice, category="corporation", basis="portfolio", amount="9000000", kind="custodian_statement",
                                    relevant_date=relevant, issued_on=add_months(relevant, -13))
    assert codes(attestation) == ["evidence_too_old"]


def test_missing_items_are_all_listed(alice):
    attestation = services.attestation_create(client=alice, data={"category": "individual", "basis": "portfolio"})
    assert codes(attestation) == ["amount_missing", "relevant_date_missing", "evidence_missing", "not_acknowledged"]


def test_pi_disclosure_must_be_acknowledged_before_submitting(alice):
    attestation = draft_attestation(alice)
    with pytest.raises(PortalError) as exc:
        services.attestation_submit(attestation_id=attestation.pk, actor=alice)
    assert "Consequences of being treated as a professional investor" in exc.value.message


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("statement.pdf", b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 200),  # a Windows executable named .pdf
        ("photo.png", b"<html><script>alert(1)</script></html>"),
        ("scan.jpg", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
    ],
)
def test_spoofed_file_type_is_refused_and_nothing_is_stored(alice, media_root, name, content):
    attestation = services.attestation_create(client=alice, data={"category": "individual"})
    before = AuditEvent.objects.count()
    with pytest.raises(PortalError) as exc:
        services.evidence_add(attestation_id=attestation.pk, actor=alice, upload=pdf_upload(name, content), kind="statement", issued_on=timezone.localdate())
    assert exc.value.code == "invalid_evidence"
    assert exc.value.message == "Only PDF, PNG or JPEG files are accepted; this file's content is not one of them."
    assert not PIEvidence.objects.exists()
    assert AuditEvent.objects.count() == before
    assert not (media_root / "pi-evidence").exists() or not any((media_root / "pi-evidence").iterdir())


def test_file_over_ten_megabytes_is_refused(alice):
    attestation = services.attestation_create(client=alice, data={})
    with pytest.raises(PortalError) as exc:
        services.evidence_add(attestation_id=attestation.pk, actor=alice, upload=pdf_upload("big.pdf", PDF + b"0" * (10 * 1024 * 1024)),
                              kind="statement", issued_on=timezone.localdate())
    assert "the limit is 10 MB" in exc.value.message
    assert not PIEvidence.objects.exists()


def test_png_is_stored_under_a_random_name_with_its_real_type(alice, media_root):
    attestation = services.attestation_create(client=alice, data={})
    evidence = services.evidence_add(attestation_id=attestation.pk, actor=alice, upload=pdf_upload("my bank statement.pdf", png_bytes()),
                                     kind="statement", issued_on=timezone.localdate())
    assert evidence.content_type == "image/png"
    assert evidence.file.name.startswith("pi-evidence/") and evidence.file.name.endswith(".png")
    assert "bank" not in evidence.file.name
    assert (media_root / evidence.file.name).exists()


def test_officer_verifies_with_full_checklist_and_expiry_is_twelve_months(alice, officer):
    attestation = submitted_attestation(alice)
    verified = services.attestation_verify(attestation_id=attestation.pk, actor=officer, checklist=ALL_TICKED, reason="ok")
    assert verified.state == PIState.VERIFIED
    assert verified.expires_on == add_months(timezone.localdate(), 12)
    assert verified.decided_by == officer
    assert Notification.objects.filter(user=alice, kind="onboarding.pi_verified").exists()
    assert AuditEvent.objects.filter(action="onboarding.attestation.verified", object_id=str(attestation.pk), actor=officer).exists()


def test_verify_needs_every_checklist_item(alice, officer):
    attestation = submitted_attestation(alice)
    with pytest.raises(PortalError) as exc:
        services.attestation_verify(attestation_id=attestation.pk, actor=officer, checklist={**ALL_TICKED, "amount_supported": False})
    assert exc.value.code == "checklist_incomplete"
    assert PIAttestation.objects.get(pk=attestation.pk).state == PIState.SUBMITTED


def test_a_client_cannot_verify_their_own_attestation(alice):
    attestation = submitted_attestation(alice)
    with pytest.raises(ForbiddenError):
        services.attestation_verify(attestation_id=attestation.pk, actor=alice, checklist=ALL_TICKED)
    assert PIAttestation.objects.get(pk=attestation.pk).state == PIState.SUBMITTED


def test_officer_cannot_verify_own_client_record(officer):
    from portal.permissions import Role
    from portal.services import user_add_role

    user_add_role(user=officer, role=Role.CLIENT)
    attestation = submitted_attestation(officer)
    with pytest.raises(ForbiddenError) as exc:
        services.attestation_verify(attestation_id=attestation.pk, actor=officer, checklist=ALL_TICKED)
    assert exc.value.code == "own_record"


def test_staff_without_onboarding_permission_cannot_verify(alice, admin_user):
    attestation = submitted_attestation(alice)
    with pytest.raises(ForbiddenError):
        services.attestation_verify(attestation_id=attestation.pk, actor=admin_user, checklist=ALL_TICKED)


def test_reject_needs_reasons_and_tells_the_client(alice, officer):
    attestation = submitted_attestation(alice)
    with pytest.raises(PortalError):
        services.attestation_reject(attestation_id=attestation.pk, actor=officer, checklist={}, reason=" ")
    rejected = services.attestation_reject(attestation_id=attestation.pk, actor=officer, checklist={}, reason="Statement is in another name")
    assert rejected.state == PIState.REJECTED
    assert Notification.objects.get(user=alice, kind="onboarding.pi_rejected").body == "Reason: Statement is in another name"


def test_returned_attestation_can_be_edited_and_resubmitted(alice, officer):
    attestation = submitted_attestation(alice)
    services.attestation_return(attestation_id=attestation.pk, actor=officer, questions="Please upload the second page.")
    services.evidence_add(attestation_id=attestation.pk, actor=alice, upload=pdf_upload(), kind="statement", issued_on=timezone.localdate())
    again = services.attestation_submit(attestation_id=attestation.pk, actor=alice)
    assert again.state == PIState.SUBMITTED
    assert again.evidence.count() == 2


def test_illegal_transitions_are_refused(alice, officer):
    attestation = draft_attestation(alice)
    with pytest.raises(ConflictError):
        services.attestation_verify(attestation_id=attestation.pk, actor=officer, checklist=ALL_TICKED)
    with pytest.raises(ConflictError):
        services.attestation_withdraw(attestation_id=attestation.pk, actor=alice)
    assert PIAttestation.objects.get(pk=attestation.pk).state == PIState.DRAFT


def test_submitted_attestation_cannot_be_changed_or_given_more_evidence(alice):
    attestation = submitted_attestation(alice)
    with pytest.raises(ConflictError):
        services.attestation_update(attestation_id=attestation.pk, actor=alice, data={"declared_amount": "1"})
    with pytest.raises(ConflictError):
        services.evidence_add(attestation_id=attestation.pk, actor=alice, upload=pdf_upload(), kind="statement", issued_on=timezone.localdate())
    assert PIAttestation.objects.get(pk=attestation.pk).declared_amount == Decimal("8000000.00")


def test_only_one_attestation_in_progress(alice):
    draft_attestation(alice)
    with pytest.raises(ConflictError):
        services.attestation_create(client=alice, data={})


def test_another_client_cannot_touch_the_attestation(alice, charlie):
    attestation = draft_attestation(alice)
    with pytest.raises(ForbiddenError):
        services.attestation_update(attestation_id=attestation.pk, actor=charlie, data={"declared_amount": "1"})
    with pytest.raises(ForbiddenError):
        services.evidence_add(attestation_id=attestation.pk, actor=charlie, upload=pdf_upload(), kind="statement", issued_on=timezone.localdate())


def test_client_withdraws_pi_status_at_any_time(alice, officer):
    attestation = verified_attestation(alice, officer)
    withdrawn = services.attestation_withdraw(attestation_id=attestation.pk, actor=alice)
    assert withdrawn.state == PIState.WITHDRAWN
    assert AuditEvent.objects.filter(action="onboarding.attestation.withdrawn").exists()


def test_daily_task_reminds_thirty_days_before_and_expires_on_the_day(alice, officer, django_capture_on_commit_callbacks):
    from onboarding.tasks import daily_sweep

    attestation = verified_attestation(alice, officer)
    expires = PIAttestation.objects.get(pk=attestation.pk).expires_on
    run = django_capture_on_commit_callbacks
    with on_day(expires - timedelta(days=31)), run(execute=True):
        assert daily_sweep() == {"pi_remind": 0, "pi_expire": 0, "sa_remind": 0, "sa_expire": 0}
    with on_day(expires - timedelta(days=30)), run(execute=True):
        assert daily_sweep()["pi_remind"] == 1
    with on_day(expires - timedelta(days=30), hour=15), run(execute=True):
        assert daily_sweep()["pi_remind"] == 0  # claimed: never twice
        assert services.attestation_send_reminder(attestation_id=attestation.pk) is False
    assert Notification.objects.filter(user=alice, kind="onboarding.pi_expiring").count() == 1
    with on_day(expires - timedelta(days=1), hour=23), run(execute=True):
        assert daily_sweep()["pi_expire"] == 0
    with on_day(expires, hour=1), run(execute=True):
        assert daily_sweep()["pi_expire"] == 1
        assert services.attestation_expire(attestation_id=attestation.pk) is False  # already done: nothing changes
    assert PIAttestation.objects.get(pk=attestation.pk).state == PIState.EXPIRED
    assert Notification.objects.filter(user=alice, kind="onboarding.pi_expired").count() == 1


def test_renewal_replaces_the_earlier_verified_status(alice, officer):
    first = verified_attestation(alice, officer)
    second = draft_attestation(alice)
    services.attestation_submit(attestation_id=second.pk, actor=alice)
    services.attestation_verify(attestation_id=second.pk, actor=officer, checklist=ALL_TICKED)
    assert PIAttestation.objects.get(pk=first.pk).state == PIState.EXPIRED
    assert PIAttestation.objects.get(pk=second.pk).state == PIState.VERIFIED


def test_rejected_client_may_start_a_new_attestation(alice, officer):
    attestation = submitted_attestation(alice)
    services.attestation_reject(attestation_id=attestation.pk, actor=officer, checklist={}, reason="Wrong name")
    make_profile(alice)
    assert draft_attestation(alice).state == PIState.DRAFT
