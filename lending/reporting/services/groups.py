"""The related-client group register: groups are recorded by one person; every change to who is in a
group (joining, leaving) is proposed by one person and approved by another, each step audited.

A membership changes the client-concentration figures of every report dated after its approval, so it
takes a checker like a policy change does; a group with no approved member counts nothing.
"""

from __future__ import annotations

from datetime import date

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.access import ensure_four_eyes, ensure_not_own_record, ensure_staff_permission
from portal.audit import audit_log, snapshot
from portal.errors import ConflictError, PortalError
from portal.permissions import Perm

from ..models import GroupBasis, GroupMembership, MembershipState, RelatedClientGroup

GROUP_FIELDS = ["name", "basis", "description"]
MEMBER_FIELDS = ["group_id", "client_id", "relationship", "reason", "effective_from", "state"]


def _required(errors: dict, **values) -> None:
    for name, value in values.items():
        if not (value or "").strip():
            errors[name] = [_("This field is required.")]


@transaction.atomic
def client_group_create(*, actor, name: str, basis: str, description: str) -> RelatedClientGroup:
    ensure_staff_permission(actor=actor, perm=Perm.CLIENT_GROUP_PROPOSE)
    errors: dict = {}
    _required(errors, name=name, description=description)
    if basis not in GroupBasis.values:
        errors["basis"] = [_("Choose how the clients are connected.")]
    if not errors and RelatedClientGroup.objects.filter(name__iexact=name.strip()).exists():
        errors["name"] = [_("A group with this name exists already.")]
    if errors:
        raise PortalError("validation_error", _("The group is incomplete."), errors)
    group = RelatedClientGroup.objects.create(name=name.strip(), basis=basis, description=description.strip(), created_by=actor)
    audit_log(actor=actor, action="reporting.client_group.created", obj=group, after=snapshot(group, GROUP_FIELDS))
    return group


@transaction.atomic
def client_group_member_propose(
    *, actor, group_id: int, client, relationship: str, reason: str, effective_from: date,
) -> GroupMembership:
    """Maker: propose that ``client`` belongs to the group from ``effective_from``."""
    ensure_staff_permission(actor=actor, perm=Perm.CLIENT_GROUP_PROPOSE)
    try:
        group = RelatedClientGroup.objects.select_for_update(no_key=True).get(pk=group_id)
    except RelatedClientGroup.DoesNotExist:
        raise PortalError("not_found", _("No such group.")) from None
    errors: dict = {}
    if client is None or not getattr(client, "is_client", False):
        errors["client"] = [_("No client has this email.")]
    _required(errors, relationship=relationship, reason=reason)
    if not isinstance(effective_from, date):
        errors["effective_from"] = [_("Enter the date the link began.")]
    elif effective_from > timezone.localdate():
        errors["effective_from"] = [_("The date cannot be in the future.")]
    if errors:
        raise PortalError("validation_error", _("The membership is incomplete."), errors)
    ensure_not_own_record(actor=actor, client_user=client)
    try:
        with transaction.atomic():
            membership = GroupMembership.objects.create(
                group=group, client=client, relationship=relationship.strip(), reason=reason.strip(),
                effective_from=effective_from, proposed_by=actor,
            )
    except IntegrityError:
        raise ConflictError("already_member", _("This client is already in the group or awaiting approval."),
                            {"client": [_("Already in the group or awaiting approval.")]}) from None
    audit_log(actor=actor, action="reporting.client_group.member_proposed", obj=membership, after=snapshot(membership, MEMBER_FIELDS))
    return membership


def _locked(membership_id: int) -> GroupMembership:
    try:
        return GroupMembership.objects.select_for_update(no_key=True).select_related("group").get(pk=membership_id)
    except GroupMembership.DoesNotExist:
        raise PortalError("not_found", _("No such membership.")) from None


@transaction.atomic
def client_group_member_decide(*, actor, membership_id: int, approve: bool, note: str = "") -> GroupMembership:
    """Checker: approve or reject a proposed membership (never the person who proposed it)."""
    ensure_staff_permission(actor=actor, perm=Perm.CLIENT_GROUP_APPROVE)
    if not approve and not (note or "").strip():
        raise PortalError("validation_error", _("Say why the membership is rejected."), {"note": [_("Give a reason.")]})
    membership = _locked(membership_id)
    ensure_four_eyes(maker=membership.proposed_by, checker=actor)
    if membership.state != MembershipState.PROPOSED:
        raise ConflictError("invalid_state", _("This membership is %(state)s, not awaiting approval.") % {"state": membership.get_state_display()})
    (membership.approve if approve else membership.reject)(by=actor, at=timezone.now(), note=(note or "").strip())
    membership.save()
    audit_log(actor=actor, action=f"reporting.client_group.member_{'approved' if approve else 'rejected'}", obj=membership,
              before={"state": MembershipState.PROPOSED}, after={"state": membership.state, "note": membership.decision_note})
    return membership


@transaction.atomic
def client_group_member_end_propose(*, actor, membership_id: int, end_on: date, reason: str) -> GroupMembership:
    """Maker: propose that the client left the group on ``end_on``. Until approved it still counts."""
    ensure_staff_permission(actor=actor, perm=Perm.CLIENT_GROUP_PROPOSE)
    membership = _locked(membership_id)
    errors: dict = {}
    _required(errors, reason=reason)
    if not isinstance(end_on, date):
        errors["end_on"] = [_("Enter the date the link ended.")]
    elif end_on > timezone.localdate():
        errors["end_on"] = [_("The date cannot be in the future.")]
    elif end_on <= membership.effective_from:
        errors["end_on"] = [_("The link must end after it began (%(date)s).") % {"date": membership.effective_from.isoformat()}]
    if errors:
        raise PortalError("validation_error", _("The end of the membership is incomplete."), errors)
    if membership.state != MembershipState.ACTIVE or membership.end_pending:
        raise ConflictError("invalid_state", _("Only a membership in force with no end awaiting approval can be ended."))
    membership.end_on, membership.end_reason = end_on, reason.strip()
    membership.end_proposed_by, membership.end_proposed_at = actor, timezone.now()
    membership.save(update_fields=["end_on", "end_reason", "end_proposed_by", "end_proposed_at"])
    audit_log(actor=actor, action="reporting.client_group.member_end_proposed", obj=membership,
              after={"end_on": end_on, "reason": membership.end_reason})
    return membership


@transaction.atomic
def client_group_member_end_decide(*, actor, membership_id: int, approve: bool, note: str = "") -> GroupMembership:
    """Checker: the client leaves the group on the proposed date, or the proposal is withdrawn."""
    ensure_staff_permission(actor=actor, perm=Perm.CLIENT_GROUP_APPROVE)
    if not approve and not (note or "").strip():
        raise PortalError("validation_error", _("Say why the end is rejected."), {"note": [_("Give a reason.")]})
    membership = _locked(membership_id)
    if not membership.end_pending:
        raise ConflictError("invalid_state", _("No end of this membership is awaiting approval."))
    ensure_four_eyes(maker=membership.end_proposed_by, checker=actor)
    before = {"state": membership.state, "end_on": membership.end_on, "end_proposed_by": membership.end_proposed_by_id}
    if approve:
        membership.end(by=actor, at=timezone.now())
        membership.save()
        audit_log(actor=actor, action="reporting.client_group.member_ended", obj=membership, before=before,
                  after={"state": membership.state, "end_on": membership.end_on, "note": (note or "").strip()})
    else:
        membership.end_on, membership.end_reason, membership.end_proposed_by, membership.end_proposed_at = None, "", None, None
        membership.save(update_fields=["end_on", "end_reason", "end_proposed_by", "end_proposed_at"])
        audit_log(actor=actor, action="reporting.client_group.member_end_rejected", obj=membership, before=before,
                  after={"state": membership.state, "note": note.strip()})
    return membership
