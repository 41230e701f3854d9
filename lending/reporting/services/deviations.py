"""The deviations register: a departure from an SMF benchmark, approved by a second person and reviewed."""

from __future__ import annotations

from datetime import date

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.access import ensure_four_eyes, ensure_staff_permission
from portal.audit import audit_log, snapshot
from portal.errors import ConflictError, PortalError
from portal.permissions import Perm

from ..models import ControlArea, Deviation, DeviationState

FIELDS = ["area", "benchmark", "departure", "justification", "compensating_control", "review_date", "state"]


@transaction.atomic
def deviation_propose(
    *, actor, area: str, benchmark: str, departure: str, justification: str, compensating_control: str, review_date: date,
) -> Deviation:
    ensure_staff_permission(actor=actor, perm=Perm.DEVIATION_PROPOSE)
    errors = {}
    if area not in ControlArea.values:
        errors["area"] = [_("Choose one of the seven control areas.")]
    for name, value in (("benchmark", benchmark), ("departure", departure), ("justification", justification),
                        ("compensating_control", compensating_control)):
        if not (value or "").strip():
            errors[name] = [_("This field is required.")]
    if not isinstance(review_date, date):
        errors["review_date"] = [_("Enter the date of the next review.")]
    elif review_date <= timezone.localdate():
        errors["review_date"] = [_("The review date must be in the future.")]
    if errors:
        raise PortalError("validation_error", _("The deviation is incomplete."), errors)
    deviation = Deviation.objects.create(
        area=area, benchmark=benchmark.strip(), departure=departure.strip(), justification=justification.strip(),
        compensating_control=compensating_control.strip(), review_date=review_date, proposed_by=actor,
    )
    audit_log(actor=actor, action="reporting.deviation.proposed", obj=deviation, after=snapshot(deviation, FIELDS))
    return deviation


def _locked(deviation_id: int) -> Deviation:
    try:
        return Deviation.objects.select_for_update(no_key=True).get(pk=deviation_id)
    except Deviation.DoesNotExist:
        raise PortalError("not_found", _("No such deviation.")) from None


def _decide(*, actor, deviation_id: int, approve: bool, note: str) -> Deviation:
    ensure_staff_permission(actor=actor, perm=Perm.DEVIATION_APPROVE)
    deviation = _locked(deviation_id)
    ensure_four_eyes(maker=deviation.proposed_by, checker=actor)
    if deviation.state != DeviationState.PROPOSED:
        raise ConflictError("invalid_state", _("This deviation is %(state)s, not awaiting approval.") % {"state": deviation.get_state_display()})
    (deviation.approve if approve else deviation.reject)(by=actor, at=timezone.now(), note=note)
    deviation.save()
    return deviation


@transaction.atomic
def deviation_approve(*, actor, deviation_id: int, note: str = "") -> Deviation:
    deviation = _decide(actor=actor, deviation_id=deviation_id, approve=True, note=note)
    audit_log(actor=actor, action="reporting.deviation.approved", obj=deviation, before={"state": "proposed"}, after={"state": "approved", "note": note})
    return deviation


@transaction.atomic
def deviation_reject(*, actor, deviation_id: int, note: str) -> Deviation:
    if not (note or "").strip():
        raise PortalError("validation_error", _("Say why the deviation is rejected."), {"note": [_("Give a reason.")]})
    deviation = _decide(actor=actor, deviation_id=deviation_id, approve=False, note=note)
    audit_log(actor=actor, action="reporting.deviation.rejected", obj=deviation, before={"state": "proposed"}, after={"state": "rejected", "note": note})
    return deviation


@transaction.atomic
def deviation_retire(*, actor, deviation_id: int, reason: str) -> Deviation:
    """The firm no longer departs from the benchmark (or the departure ended)."""
    ensure_staff_permission(actor=actor, perm=Perm.DEVIATION_APPROVE)
    if not (reason or "").strip():
        raise PortalError("validation_error", _("Say why the deviation ends."), {"reason": [_("Give a reason.")]})
    deviation = _locked(deviation_id)
    if deviation.state != DeviationState.APPROVED:
        raise ConflictError("invalid_state", _("Only an approved deviation can be retired."))
    deviation.retire(by=actor, at=timezone.now(), reason=reason.strip())
    deviation.save()
    audit_log(actor=actor, action="reporting.deviation.retired", obj=deviation, before={"state": "approved"}, after={"state": "retired", "reason": reason})
    return deviation
