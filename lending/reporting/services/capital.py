"""The firm's liquid capital: a credit manager enters finance's figure, a compliance officer approves it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from lending.inputs import decimal_input
from lending.services import maker_checker_decide
from portal.access import ensure_staff_permission
from portal.audit import audit_log, snapshot
from portal.errors import PortalError
from portal.permissions import Perm

from .. import policy
from ..models import CapitalEntry

FIELDS = ["version", "status", "as_of", "liquid_capital", "ceiling_multiple", "source_reference", "reason"]


@transaction.atomic
def capital_propose(
    *, actor, as_of: date, liquid_capital, source_reference: str, reason: str, ceiling_multiple=policy.LOANS_TO_CAPITAL_BENCHMARK,
) -> CapitalEntry:
    ensure_staff_permission(actor=actor, perm=Perm.CAPITAL_PROPOSE)
    amount = decimal_input(liquid_capital, "liquid_capital", minimum=Decimal("0.01")).quantize(Decimal("0.01"))
    ceiling = decimal_input(ceiling_multiple, "ceiling_multiple", minimum=Decimal("0.01"), maximum=policy.LOANS_TO_CAPITAL_BENCHMARK)
    errors = {}
    if not isinstance(as_of, date):
        errors["as_of"] = [_("Enter the date the figure is as at.")]
    elif as_of > timezone.localdate():
        errors["as_of"] = [_("The date cannot be in the future.")]
    if not (source_reference or "").strip():
        errors["source_reference"] = [_("Say where the figure comes from (e.g. the month's FRR return).")]
    if not (reason or "").strip():
        errors["reason"] = [_("Give a reason.")]
    if errors:
        raise PortalError("validation_error", _("The capital entry is incomplete."), errors)
    version = (CapitalEntry.objects.select_for_update(no_key=True).aggregate(v=Max("version"))["v"] or 0) + 1
    entry = CapitalEntry.objects.create(
        version=version, as_of=as_of, liquid_capital=amount, ceiling_multiple=ceiling, source_reference=source_reference.strip(),
        reason=reason.strip(), proposed_by=actor,
    )
    audit_log(actor=actor, action="reporting.capital.proposed", obj=entry, after=snapshot(entry, FIELDS))
    return entry


def _decide(*, actor, entry_id: int, approve: bool, note: str) -> tuple[CapitalEntry, CapitalEntry | None]:
    ensure_staff_permission(actor=actor, perm=Perm.CAPITAL_APPROVE)
    try:
        entry = CapitalEntry.objects.select_for_update(no_key=True).get(pk=entry_id)
    except CapitalEntry.DoesNotExist:
        raise PortalError("not_found", _("No such capital entry.")) from None
    superseded = maker_checker_decide(
        entry, actor=actor, approve=approve, note=note,
        not_awaiting=_("Capital entry v%(version)s is %(status)s, not awaiting approval."),
    )
    return entry, superseded


@transaction.atomic
def capital_approve(*, actor, entry_id: int, note: str = "") -> CapitalEntry:
    """A second person (compliance, never the maker) puts the figure in force. The previous entry is marked
    superseded but still counts for its own dates: the capital of a day is the latest approved entry dated on
    or before it (a restated past figure is a new entry with that past date and a higher version)."""
    entry, superseded = _decide(actor=actor, entry_id=entry_id, approve=True, note=note)
    audit_log(
        actor=actor, action="reporting.capital.approved", obj=entry,
        before={"in_force": superseded.version if superseded else None},
        after={"in_force": entry.version, "liquid_capital": entry.liquid_capital, "as_of": entry.as_of, "note": note},
    )
    return entry


@transaction.atomic
def capital_reject(*, actor, entry_id: int, note: str) -> CapitalEntry:
    if not (note or "").strip():
        raise PortalError("validation_error", _("Say why the entry is rejected."), {"note": [_("Give a reason.")]})
    entry, _superseded = _decide(actor=actor, entry_id=entry_id, approve=False, note=note)
    audit_log(actor=actor, action="reporting.capital.rejected", obj=entry, before={"status": "proposed"}, after={"status": "rejected", "note": note})
    return entry
