"""The facility's life after opening: annual review (renew, change the limit, give notice to close) and closing.

A limit change within the officer's authority, or any decrease, applies at once; an increase above it
waits for a different credit manager. A decrease below the drawn balance is refused with the reason.
Closing repays nothing itself: the balance, and the interest accrued and not yet charged, must already be repaid; it then releases all collateral
through the custody ledger and closes the facility (lending's service).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from lending.inputs import places_input
from portal.access import ensure_four_eyes, ensure_not_own_record, ensure_staff_permission
from portal.audit import audit_log
from portal.errors import ConflictError, NotFoundError, PortalError
from portal.permissions import Perm

from .models import FacilityTerms, LimitChange, LimitChangeState
from .selectors import facility_interest
from .services import add_months


def facilities_due(*, within_days: int = 30, today: date | None = None):
    """Open facilities whose annual review falls within ``within_days`` (or is overdue), soonest first."""
    today = today or timezone.localdate()
    return (FacilityTerms.objects.filter(facility__isnull=False, review_date__lte=today + timedelta(days=within_days))
            .exclude(facility__state="closed").select_related("facility__client").order_by("review_date", "id"))


def _locked(actor, facility_id: int, perm: Perm = Perm.FACILITY_OPERATE):
    from lending import locks
    from lending.models import Facility

    ensure_staff_permission(actor=actor, perm=perm)
    locks.book()
    try:
        facility = locks.facility(facility_id, Facility.objects.select_related("client", "policy"))
    except Facility.DoesNotExist:
        raise NotFoundError("not_found", _("No such facility.")) from None
    ensure_not_own_record(actor=actor, client_user=facility.client)
    if facility.state == "closed":
        raise ConflictError("facility_closed", _("The facility is closed."))
    terms = FacilityTerms.objects.select_for_update(no_key=True, of=("self",)).filter(facility=facility).select_related("policy").first()
    return facility, terms


@transaction.atomic
def facility_renew(*, actor, facility_id: int, note: str = "") -> FacilityTerms:
    """The review is done and the facility continues: the next review date is set a review period on."""
    facility, terms = _locked(actor, facility_id)
    if terms is None:
        raise ConflictError("no_terms", _("This facility has no servicing terms yet."))
    before = {"review_date": terms.review_date.isoformat() if terms.review_date else None}
    base = max(terms.review_date or timezone.localdate(), timezone.localdate())
    terms.review_date = add_months(base, terms.policy.review_months)
    terms.last_reviewed_at = timezone.now()
    terms.save(update_fields=["review_date", "last_reviewed_at"])
    audit_log(actor=actor, action="servicing.review.renewed", obj=facility, before=before,
              after={"review_date": terms.review_date.isoformat(), "note": note})
    return terms


def _apply_limit(facility, new_limit: Decimal) -> None:
    from lending.models import Facility

    Facility.objects.filter(pk=facility.pk).update(limit=new_limit)
    facility.limit = new_limit


@transaction.atomic
def facility_limit_change(*, actor, facility_id: int, new_limit, reason: str) -> LimitChange:
    from lending import selectors as lending_selectors
    from lending.services import officer_authority

    if not (reason or "").strip():
        raise PortalError("validation_error", _("Give the reason for the change."), {"reason": [_("Required.")]})
    from lending.services import facility_revalue

    facility, _terms = _locked(actor, facility_id)
    facility_revalue(facility=facility)  # lending value at current prices (the limit never exceeds it)
    new_limit = places_input(new_limit, "new_limit", places=2, minimum=Decimal("1"))
    if new_limit < facility.drawn_balance:
        raise PortalError(
            "limit_below_drawn",
            _("A limit of HK$%(limit)s is below the drawn balance of HK$%(drawn)s: the client would be over their limit at once. "
              "Agree a repayment first, or give notice to close.") % {"limit": f"{new_limit:,}", "drawn": f"{facility.drawn_balance:,}"},
            {"new_limit": [_("Below the drawn balance.")]},
        )
    if new_limit > facility.lending_value:
        raise PortalError("above_lending_value", _("A limit of HK$%(limit)s is above the lending value of HK$%(lv)s.") % {"limit": f"{new_limit:,}", "lv": f"{facility.lending_value:,}"},
                          {"new_limit": [_("At most the lending value.")]})
    if LimitChange.objects.filter(facility=facility, state=LimitChangeState.PROPOSED).exists():
        raise ConflictError("change_pending", _("A limit change is already waiting for a credit manager."))
    policy = lending_selectors.policy_current() or facility.policy
    change = LimitChange.objects.create(facility=facility, old_limit=facility.limit, new_limit=new_limit, reason=reason.strip(), proposed_by=actor)
    if new_limit <= facility.limit or new_limit <= officer_authority(actor=actor, policy=policy):
        _apply_limit(facility, new_limit)
        change.state, change.decided_by, change.decided_at = LimitChangeState.APPLIED, actor, timezone.now()
        change.save(update_fields=["state", "decided_by", "decided_at"])
    audit_log(actor=actor, action=f"servicing.limit.{change.state}", obj=facility,
              before={"limit": change.old_limit}, after={"limit": new_limit, "state": change.state, "reason": change.reason, "change": change.pk})
    return change


@transaction.atomic
def limit_change_decide(*, actor, change_id: int, approve: bool) -> LimitChange:
    """A credit manager other than the proposer approves or rejects an increase above the officer's authority."""
    change = LimitChange.objects.select_related("proposed_by").filter(pk=change_id).first()
    if change is None:
        raise NotFoundError("not_found", _("No such limit change."))
    facility, _terms = _locked(actor, change.facility_id, Perm.APPLICATION_SECOND_APPROVE)
    change = LimitChange.objects.select_for_update(no_key=True).get(pk=change_id)
    ensure_four_eyes(maker=change.proposed_by, checker=actor)
    if change.state != LimitChangeState.PROPOSED:
        raise ConflictError("invalid_state", _("This change is already %(state)s.") % {"state": change.get_state_display().lower()})
    if approve:
        if change.new_limit < facility.drawn_balance:
            raise PortalError("limit_below_drawn", _("The drawn balance is now above the proposed limit."))
        _apply_limit(facility, change.new_limit)
    change.state = LimitChangeState.APPLIED if approve else LimitChangeState.REJECTED
    change.decided_by, change.decided_at = actor, timezone.now()
    change.save(update_fields=["state", "decided_by", "decided_at"])
    audit_log(actor=actor, action=f"servicing.limit.{change.state}", obj=facility, before={"limit": change.old_limit},
              after={"limit": facility.limit, "state": change.state, "change": change.pk})
    return change


@transaction.atomic
def facility_notice_to_close(*, actor, facility_id: int, close_by: date, reason: str) -> FacilityTerms:
    from portal.notifications import notify

    if not (reason or "").strip():
        raise PortalError("validation_error", _("Give the reason."), {"reason": [_("Required.")]})
    if not isinstance(close_by, date) or close_by <= timezone.localdate():
        raise PortalError("validation_error", _("The closing date must be in the future."), {"close_by": [_("A future date.")]})
    facility, terms = _locked(actor, facility_id)
    if terms is None:
        raise ConflictError("no_terms", _("This facility has no servicing terms yet."))
    terms.notice_given_at, terms.notice_close_by, terms.notice_reason = timezone.now(), close_by, reason.strip()
    terms.save(update_fields=["notice_given_at", "notice_close_by", "notice_reason"])
    audit_log(actor=actor, action="servicing.review.notice_to_close", obj=facility,
              after={"close_by": close_by.isoformat(), "reason": terms.notice_reason})
    notify(user=facility.client, kind="servicing.notice_to_close", title=_("Notice to close facility %(ref)s"),
           body=_("Please repay the balance by %(date)s; your collateral is then released and the facility closed."),
           params={"ref": facility.reference, "date": close_by.isoformat()}, link=f"/lending/facilities/{facility.pk}/")
    return terms


@transaction.atomic
def facility_wind_up(*, actor, facility_id: int) -> object:
    """Close a repaid facility: release every pledge through the custody ledger, clear the positions, close."""
    from lending.collateral import selectors as custody_selectors
    from lending.collateral import services as custody
    from lending.collateral.models import CustodyEntry, Instrument
    from lending.models import CollateralPosition
    from lending.risk.services import facility_changed
    from lending.services import facility_close

    facility, _terms = _locked(actor, facility_id, Perm.FACILITY_SUSPEND)
    if facility.drawn_balance > 0:
        raise ConflictError("balance_outstanding", _("HK$%(drawn)s is still owed: it must be repaid in full before the facility closes.") % {"drawn": f"{facility.drawn_balance:,}"})
    # Interest accrued and not yet charged is owed too: charged at the month end, it would land on a closed facility.
    accrued = facility_interest(facility=facility)
    if accrued.accrued_to_date > 0:
        raise ConflictError("interest_accrued", _(
            "HK$%(amount)s of interest accrued to %(through)s is not charged yet: it is charged to the balance on %(posting)s "
            "and must be repaid before the facility closes.") % {
            "amount": f"{accrued.accrued_to_date:,}", "through": accrued.accrued_through.isoformat(), "posting": accrued.next_posting.isoformat()})
    released = {}
    instrument_ids = CustodyEntry.objects.filter(facility_id=facility.pk).values_list("instrument_id", flat=True).distinct()
    for instrument in Instrument.objects.filter(pk__in=list(instrument_ids)).order_by("pk"):
        pledged = custody_selectors.pledged_to_facility(facility_id=facility.pk, instrument_id=instrument.pk)
        if pledged > 0:
            custody.custody_release(client_id=facility.client_id, instrument_id=instrument.pk, quantity=pledged, facility_id=facility.pk,
                                    actor=actor, reference=f"CLOSE-{facility.reference}")
            released[instrument.code] = str(pledged)
    CollateralPosition.objects.filter(facility=facility).update(quantity=Decimal(0), market_value=Decimal(0))
    facility_changed(facility_id=facility.pk)
    closed = facility_close(actor=actor, facility_id=facility.pk)
    audit_log(actor=actor, action="servicing.facility.wound_up", obj=closed, after={"released": released})
    return closed
