"""Who may move money on a facility, beyond the permission: four-eyes above the policy amount, and a
client's request only as it was approved. Imported by lending's drawdown and repayment services
(kept free of lending imports at module level, so there is no import cycle)."""

from __future__ import annotations

from decimal import Decimal

from django.utils.translation import gettext_lazy as _

from portal.errors import ConflictError, ForbiddenError, PortalError


def money_movement_authorised(*, facility, kind: str, amount: Decimal, actor, request=None):
    """Return the second person who approved the movement (or None), or refuse it.

    Staff recording a drawdown or repayment above ``staff_four_eyes_above`` go through a servicing
    instruction a different member of staff approves; a request executes only for its own facility,
    kind and amount, and only once it has every approval it needs.
    """
    from .models import RequestState
    from .selectors import servicing_policy_current

    if request is None:
        policy = servicing_policy_current()
        if policy is not None and amount > policy.staff_four_eyes_above:
            raise PortalError(
                "second_person_required",
                _("Above HK$%(limit)s a second member of staff must approve: record it as an instruction on the facility's servicing page.")
                % {"limit": f"{policy.staff_four_eyes_above:,}"},
                {"amount": [_("Needs a second person.")]},
            )
        return None
    if request.facility_id != facility.pk or request.kind != kind or request.amount != amount:
        raise ConflictError("request_mismatch", _("This movement does not match the request it executes."))
    if request.state not in (RequestState.REQUESTED, RequestState.AWAITING_SECOND):
        raise ConflictError("invalid_state", _("The request is %(state)s.") % {"state": request.get_state_display().lower()})
    if request.needs_second and (request.second_by_id is None or request.second_by_id == request.first_by_id):
        raise ForbiddenError("four_eyes", _("A second person must approve this first."))
    if request.needs_officer and request.first_by_id is None:
        raise ForbiddenError("officer_required", _("An account officer must approve this first."))
    return request.second_by or request.first_by
