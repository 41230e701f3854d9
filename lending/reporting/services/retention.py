"""Disposal of records past retention: requested by compliance, approved by a second person, audited.

Approval records the decision and the exact record ids; the portal itself deletes nothing (regulated
records are never hard-deleted by the application: the approved list goes to the records custodian).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.access import ensure_four_eyes, ensure_staff_permission
from portal.audit import audit_log
from portal.errors import ConflictError, PortalError
from portal.permissions import Perm

from .. import retention
from ..models import DisposalRequest, DisposalState

MAX_IDS = 10_000


@transaction.atomic
def disposal_request(*, actor, record_type: str, reason: str) -> DisposalRequest:
    ensure_staff_permission(actor=actor, perm=Perm.DISPOSAL_REQUEST)
    rule = retention.RULES_BY_LABEL.get(record_type)
    if rule is None:
        raise PortalError("validation_error", _("Choose a record type with a retention rule."), {"record_type": [_("Unknown record type.")]})
    if not (reason or "").strip():
        raise PortalError("validation_error", _("Give a reason."), {"reason": [_("This field is required.")]})
    ids = list(retention.due_queryset(rule, as_of=timezone.localdate()).order_by("pk").values_list("pk", flat=True)[:MAX_IDS])
    if not ids:
        raise PortalError("nothing_due", _("No records of this type are past their retention period."))
    request = DisposalRequest.objects.create(record_type=record_type, record_ids=ids, reason=reason.strip(), requested_by=actor)
    audit_log(actor=actor, action="reporting.disposal.requested", obj=request,
              after={"record_type": record_type, "count": len(ids), "first_id": ids[0], "last_id": ids[-1], "reason": request.reason})
    return request


def _decide(*, actor, request_id: int) -> DisposalRequest:
    ensure_staff_permission(actor=actor, perm=Perm.DISPOSAL_APPROVE)
    try:
        request = DisposalRequest.objects.select_for_update(no_key=True).get(pk=request_id)
    except DisposalRequest.DoesNotExist:
        raise PortalError("not_found", _("No such disposal request.")) from None
    ensure_four_eyes(maker=request.requested_by, checker=actor)
    if request.state != DisposalState.REQUESTED:
        raise ConflictError("invalid_state", _("This request has already been decided."))
    return request


@transaction.atomic
def disposal_approve(*, actor, request_id: int, note: str = "") -> DisposalRequest:
    request = _decide(actor=actor, request_id=request_id)
    rule = retention.RULES_BY_LABEL[request.record_type]
    # Still due today? A record whose relationship restarted, for example, is no longer due.
    still_due = set(retention.due_queryset(rule, as_of=timezone.localdate()).filter(pk__in=request.record_ids).values_list("pk", flat=True))
    if still_due != set(request.record_ids):
        raise ConflictError("no_longer_due", _("Some of these records are no longer past retention; raise a new request."))
    request.approve(by=actor, at=timezone.now(), note=note)
    request.save()
    audit_log(actor=actor, action="reporting.disposal.approved", obj=request,
              before={"state": "requested"}, after={"state": "approved", "count": len(request.record_ids), "note": note})
    return request


@transaction.atomic
def disposal_reject(*, actor, request_id: int, note: str) -> DisposalRequest:
    if not (note or "").strip():
        raise PortalError("validation_error", _("Give a reason."), {"note": [_("This field is required.")]})
    request = _decide(actor=actor, request_id=request_id)
    request.reject(by=actor, at=timezone.now(), note=note)
    request.save()
    audit_log(actor=actor, action="reporting.disposal.rejected", obj=request, before={"state": "requested"}, after={"state": "rejected", "note": note})
    return request
