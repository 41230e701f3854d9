"""The complaints register: logged by staff (any channel) or by the client from the portal, handled by
someone not involved in the matter, against acknowledgement and answer deadlines in HK business days."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.access import ensure_staff_permission
from portal.audit import SYSTEM, audit_log, snapshot
from portal.errors import ConflictError, ForbiddenError, PortalError
from portal.permissions import Perm

from .. import policy, selectors
from ..models import Complaint, ComplaintChannel, ComplaintOutcome, ComplaintState

FIELDS = ["client", "complainant_name", "channel", "received_at", "subject", "state", "acknowledge_due", "answer_due"]


def _required(**values) -> dict:
    return {name: [_("This field is required.")] for name, value in values.items() if not (value or "").strip()}


@transaction.atomic
def complaint_log(
    *, actor, subject: str, details: str, channel: str = ComplaintChannel.PORTAL, client=None, complainant_name: str = "",
    complainant_contact: str = "", received_at: datetime | None = None, staff_involved=(),
) -> Complaint:
    """A client logs their own complaint from the portal; staff log one received by any other channel."""
    now = timezone.now()
    if actor is not None and getattr(actor, "is_client", False) and not actor.is_portal_staff:
        client, channel, received_at = actor, ComplaintChannel.PORTAL, now
        complainant_name = actor.full_name or actor.email
        complainant_contact = actor.email
        staff_involved = ()
    else:
        ensure_staff_permission(actor=actor, perm=Perm.COMPLAINT_LOG)
    errors = _required(subject=subject, details=details, complainant_name=complainant_name)
    if channel not in ComplaintChannel.values:
        errors["channel"] = [_("Choose how the complaint was received.")]
    received_at = received_at or now
    if received_at > now:
        errors["received_at"] = [_("The time received cannot be in the future.")]
    if client is not None and not client.is_client:
        errors["client"] = [_("Choose a client.")]
    if errors:
        raise PortalError("validation_error", _("The complaint is incomplete."), errors)
    ack_due, answer_due = policy.complaint_deadlines(received_at)
    complaint = Complaint.objects.create(
        client=client, complainant_name=complainant_name.strip(), complainant_contact=(complainant_contact or "").strip(),
        channel=channel, received_at=received_at, subject=subject.strip(), details=details.strip(), logged_by=actor,
        acknowledge_due=ack_due, answer_due=answer_due,
    )
    involved = [u for u in staff_involved if u is not None]
    if involved:
        complaint.staff_involved.set(involved)
    audit_log(actor=actor, action="reporting.complaint.logged", obj=complaint,
              after=snapshot(complaint, FIELDS) | {"staff_involved": sorted(u.pk for u in involved)})
    return complaint


def _locked(complaint_id: int) -> Complaint:
    try:
        return Complaint.objects.select_for_update(no_key=True).get(pk=complaint_id)
    except Complaint.DoesNotExist:
        raise PortalError("not_found", _("No such complaint.")) from None


def complaint_involved_ids(complaint: Complaint) -> set[int]:
    """Everyone who may not handle this complaint: the client, staff named in it, staff who acted in the matter."""
    ids = selectors.staff_involved_ids(client_id=complaint.client_id)
    ids.update(complaint.staff_involved.values_list("id", flat=True))
    if complaint.client_id:
        ids.add(complaint.client_id)
    return ids


def _ensure_handler(actor, complaint: Complaint) -> None:
    ensure_staff_permission(actor=actor, perm=Perm.COMPLAINT_HANDLE)
    if actor.pk in complaint_involved_ids(complaint):
        raise ForbiddenError("involved", _("You are involved in this matter, so you cannot handle the complaint."))


@transaction.atomic
def complaint_assign(*, actor, complaint_id: int, assignee) -> Complaint:
    complaint = _locked(complaint_id)
    _ensure_handler(actor, complaint)
    if complaint.state == ComplaintState.CLOSED:
        raise ConflictError("invalid_state", _("The complaint is closed."))
    if not (assignee.is_portal_staff and assignee.has_perm(Perm.COMPLAINT_HANDLE)):
        raise PortalError("validation_error", _("Assign the complaint to a member of compliance."), {"assignee": [_("Not a complaint handler.")]})
    if assignee.pk in complaint_involved_ids(complaint):
        raise ForbiddenError("involved", _("%(name)s is involved in this matter; assign someone independent.") % {"name": assignee})
    before = {"assigned_to": complaint.assigned_to_id}
    complaint.assigned_to, complaint.assigned_at = assignee, timezone.now()
    complaint.save(update_fields=["assigned_to", "assigned_at"])
    audit_log(actor=actor, action="reporting.complaint.assigned", obj=complaint, before=before, after={"assigned_to": assignee.pk})
    return complaint


def _ensure_assignee(actor, complaint: Complaint) -> None:
    _ensure_handler(actor, complaint)
    if complaint.assigned_to_id != actor.pk:
        raise ForbiddenError("not_assignee", _("Only the person the complaint is assigned to can do this."))


@transaction.atomic
def complaint_acknowledge(*, actor, complaint_id: int, text: str) -> Complaint:
    complaint = _locked(complaint_id)
    _ensure_assignee(actor, complaint)
    if not (text or "").strip():
        raise PortalError("validation_error", _("Write the acknowledgement sent to the complainant."), {"text": [_("This field is required.")]})
    if complaint.state != ComplaintState.OPEN:
        raise ConflictError("invalid_state", _("Only an open complaint can be acknowledged."))
    now = timezone.now()
    complaint.acknowledge(at=now, text=text.strip())
    complaint.save()
    audit_log(actor=actor, action="reporting.complaint.acknowledged", obj=complaint, before={"state": "open"},
              after={"state": complaint.state, "late": now > complaint.acknowledge_due})
    return complaint


@transaction.atomic
def complaint_escalate(*, actor, complaint_id: int, reason: str) -> Complaint:
    complaint = _locked(complaint_id)
    if actor is not SYSTEM:
        _ensure_handler(actor, complaint)
    if not (reason or "").strip():
        raise PortalError("validation_error", _("Say why the complaint is escalated."), {"reason": [_("This field is required.")]})
    if complaint.state not in (ComplaintState.OPEN, ComplaintState.ACKNOWLEDGED):
        raise ConflictError("invalid_state", _("This complaint cannot be escalated now."))
    before = complaint.state
    complaint.escalate(at=timezone.now(), reason=reason.strip())
    complaint.save()
    audit_log(actor=actor, action="reporting.complaint.escalated", obj=complaint, before={"state": before}, after={"state": complaint.state, "reason": reason})
    return complaint


@transaction.atomic
def complaint_close(*, actor, complaint_id: int, outcome: str, text: str) -> Complaint:
    complaint = _locked(complaint_id)
    _ensure_assignee(actor, complaint)
    errors = _required(text=text)
    if outcome not in ComplaintOutcome.values:
        errors["outcome"] = [_("Choose the outcome.")]
    if errors:
        raise PortalError("validation_error", _("Record the outcome and the answer given."), errors)
    if complaint.state not in (ComplaintState.ACKNOWLEDGED, ComplaintState.ESCALATED):
        raise ConflictError("invalid_state", _("Acknowledge the complaint before closing it."))
    before = complaint.state
    now = timezone.now()
    complaint.close(by=actor, at=now, outcome=outcome, text=text.strip())
    complaint.save()
    audit_log(actor=actor, action="reporting.complaint.closed", obj=complaint, before={"state": before},
              after={"state": "closed", "outcome": outcome, "late": now > complaint.answer_due})
    return complaint


def complaints_escalate_overdue(*, now: datetime | None = None) -> int:
    """Beat: a complaint not acknowledged, or not answered, by its deadline is escalated (once)."""
    now = now or timezone.now()
    from django.db.models import Q

    due = Complaint.objects.filter(
        Q(state=ComplaintState.OPEN, acknowledge_due__lt=now) | Q(state__in=[ComplaintState.OPEN, ComplaintState.ACKNOWLEDGED], answer_due__lt=now)
    ).values_list("id", "state", "acknowledge_due")
    done = 0
    for complaint_id, state, ack_due in due:
        reason = "Not acknowledged by the policy deadline." if state == ComplaintState.OPEN and ack_due < now else "Not answered by the policy deadline."
        try:
            complaint_escalate(actor=SYSTEM, complaint_id=complaint_id, reason=reason)
            done += 1
        except ConflictError:
            continue  # handled meanwhile
    return done
