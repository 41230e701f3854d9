"""The custody ledger's pledge, release and disposal: per client and instrument, held / pledged / free.

Other apps call these inside their own transaction (the risk engine's top-up, servicing's release, a
close-out's sale). This module imports nothing of the risk engine, so the engine can call it while the
collateral services (price imports) call the engine: one direction between the two apps.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext

from django.db import connection
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.audit import System
from portal.errors import ConflictError, NotFoundError, PortalError

from . import selectors
from .models import CustodyBalance, CustodyEntry, EntryKind, Instrument

# Django's SQLite backend stores a decimal as a REAL and reads it back to 15 significant digits.
SQLITE_DIGITS = 15


@dataclass(frozen=True)
class Column:
    """What a DecimalField keeps: its largest number, its decimal places and (on this database) how many
    significant digits survive a round trip."""

    maximum: Decimal
    places: int
    digits: int

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.places)

    def too_large(self, number: Decimal) -> bool:
        """More than the column holds, or (to its places) more significant digits than the database keeps
        exactly: it would store another number."""
        if abs(number) > self.maximum:
            return True
        return len(self._kept(number).normalize().as_tuple().digits) > self.digits

    def too_fine(self, number: Decimal) -> bool:
        """Finer than the column's places (called on a number that is not too large)."""
        return number != self._kept(number)

    def _kept(self, number: Decimal) -> Decimal:
        with localcontext(prec=self.maximum.adjusted() + self.places + 3):
            return number.quantize(self.quantum)


def column(model, name: str) -> Column:
    """The bounds of the DecimalField ``model.name``: a number sent to it is checked against them (refused,
    not left to overflow the column or be rounded by it)."""
    field = model._meta.get_field(name)
    places = field.decimal_places
    digits = min(field.max_digits, SQLITE_DIGITS) if connection.vendor == "sqlite" else field.max_digits
    return Column(maximum=Decimal(10) ** (field.max_digits - places) - Decimal(1).scaleb(-places), places=places, digits=digits)


QUANTUM = Decimal(1).scaleb(-CustodyBalance._meta.get_field("held").decimal_places)


def qty_column() -> Column:
    """Held, pledged and every ledger entry's quantity share one column definition."""
    return column(CustodyBalance, "held")


def fmt_qty(value) -> str:
    """A quantity with thousands separators and no trailing zeros (1,000; 0.5)."""
    text = f"{Decimal(value or 0).normalize():,f}"
    return text


def _actor_label(actor) -> str:
    if isinstance(actor, System):
        return actor.label
    return getattr(actor, "email", "") or "system"


def _user_or_none(actor):
    return None if actor is None or isinstance(actor, System) else actor


# --- Custody ledger --------------------------------------------------------------------------------------


def _quantity(value, label: str, *, allow_zero: bool = False) -> Decimal:
    try:
        qty = Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, AttributeError):
        raise PortalError("validation_error", _("%(label)s must be a number.") % {"label": label}, {label: [_("A number.")]}) from None
    if not qty.is_finite() or qty < 0 or (qty == 0 and not allow_zero):
        raise PortalError("validation_error", _("%(label)s must be more than zero.") % {"label": label}, {label: [_("More than zero.")]})
    col = qty_column()
    if col.too_large(qty):
        raise PortalError("out_of_range", _("%(field)s %(value)s is out of range: the custody ledger keeps at most %(max)s, to %(digits)s significant digits.") % {
            "field": label, "value": str(value)[:40], "max": fmt_qty(col.maximum), "digits": col.digits}, {label: [_("Out of range.")]})
    if qty != qty.quantize(QUANTUM):
        raise PortalError("validation_error", _("%(label)s has more than 8 decimal places.") % {"label": label}, {label: [_("At most 8 decimal places.")]})
    return qty.quantize(QUANTUM)


def _balance_locked(client_id: int, instrument_id: int) -> CustodyBalance:
    """The balance row, created at zero if new, locked for this transaction."""
    CustodyBalance.objects.bulk_create([CustodyBalance(client_id=client_id, instrument_id=instrument_id)], ignore_conflicts=True)
    return CustodyBalance.objects.select_for_update(no_key=True).get(client_id=client_id, instrument_id=instrument_id)


def _entry(balance: CustodyBalance, instrument: Instrument, *, kind, quantity, facility_id=None, batch=None, actor=None, reference="",
           confirm: bool = True) -> CustodyEntry:
    entry = CustodyEntry.objects.create(
        balance=balance, client_id=balance.client_id, instrument=instrument, instrument_kind=instrument.kind, kind=kind,
        quantity=quantity, held_after=balance.held, pledged_after=balance.pledged, facility_id=facility_id, batch=batch,
        repledge_allowed=False, reference=(reference or "")[:100], actor=_user_or_none(actor), actor_label=_actor_label(actor)[:120],
    )
    if kind != EntryKind.HOLDING and confirm:
        from lending.confirmations import InstrumentName, collateral_movement_confirm

        collateral_movement_confirm(client=balance.client_id, facility_id=facility_id, movement=kind, quantity=quantity,
                                    instrument=InstrumentName(instrument), reference=entry.reference)
    return entry


def _instrument(instrument_id: int) -> Instrument:
    try:
        return Instrument.objects.get(pk=instrument_id)
    except Instrument.DoesNotExist:
        raise NotFoundError("not_found", _("No such instrument.")) from None


def custody_pledge(*, client_id: int, instrument_id: int, quantity, facility_id: int | None, actor, reference: str = "") -> CustodyEntry:
    """Pledge ``quantity`` of the client's free holding. Call inside the transaction that records the pledge."""
    if not connection.in_atomic_block:
        raise RuntimeError("custody_pledge must run inside the transaction that records the pledge")
    qty = _quantity(quantity, "quantity")
    instrument = _instrument(instrument_id)
    # One conditional UPDATE: it succeeds only while enough is free, so two pledges racing for the
    # same shares cannot both land (the second finds too little free, or waits on the row lock).
    updated = CustodyBalance.objects.filter(
        client_id=client_id, instrument_id=instrument_id, held__gte=F("pledged") + qty,
    ).update(pledged=F("pledged") + qty, updated_at=timezone.now())
    if not updated:
        balance = CustodyBalance.objects.filter(client_id=client_id, instrument_id=instrument_id).first()
        free = balance.free if balance else Decimal("0")
        raise ConflictError(
            "insufficient_free",
            _("Only %(free)s %(code)s is free to pledge (held %(held)s, already pledged %(pledged)s); %(qty)s was asked for.") % {
                "free": fmt_qty(free), "code": instrument.code, "held": fmt_qty(balance.held if balance else 0),
                "pledged": fmt_qty(balance.pledged if balance else 0), "qty": fmt_qty(qty)},
            {"quantity": [_("At most %(free)s.") % {"free": fmt_qty(free)}]},
        )
    balance = CustodyBalance.objects.get(client_id=client_id, instrument_id=instrument_id)
    return _entry(balance, instrument, kind=EntryKind.PLEDGE, quantity=qty, facility_id=facility_id, actor=actor, reference=reference)


def custody_release(*, client_id: int, instrument_id: int, quantity, facility_id: int | None, actor, reference: str = "",
                    confirm: bool = True) -> CustodyEntry:
    """Release ``quantity`` pledged to ``facility_id`` back to free. Refused above what that facility has pledged.
    ``confirm=False``: the caller sends the client its own notice of the movement (a close-out sale)."""
    if not connection.in_atomic_block:
        raise RuntimeError("custody_release must run inside the transaction that records the release")
    qty = _quantity(quantity, "quantity")
    instrument = _instrument(instrument_id)
    pledged_to_facility = selectors.pledged_to_facility(facility_id=facility_id, instrument_id=instrument_id) if facility_id else None
    if pledged_to_facility is not None and qty > pledged_to_facility:
        raise ConflictError(
            "above_pledged", _("Only %(pledged)s %(code)s is pledged to this facility; %(qty)s cannot be released.") % {
                "pledged": fmt_qty(pledged_to_facility), "code": instrument.code, "qty": fmt_qty(qty)},
            {"quantity": [_("At most %(pledged)s.") % {"pledged": fmt_qty(pledged_to_facility)}]},
        )
    updated = CustodyBalance.objects.filter(client_id=client_id, instrument_id=instrument_id, pledged__gte=qty).update(
        pledged=F("pledged") - qty, updated_at=timezone.now())
    if not updated:
        raise ConflictError("above_pledged", _("Less than %(qty)s %(code)s is pledged.") % {"qty": fmt_qty(qty), "code": instrument.code})
    balance = CustodyBalance.objects.get(client_id=client_id, instrument_id=instrument_id)
    return _entry(balance, instrument, kind=EntryKind.RELEASE, quantity=qty, facility_id=facility_id, actor=actor, reference=reference,
                  confirm=confirm)


def custody_dispose(*, client_id: int, instrument_id: int, quantity, facility_id: int, actor, reference: str) -> tuple[CustodyEntry, CustodyEntry]:
    """Collateral sold in a close-out: the quantity is released from the facility's pledge and leaves the
    holding (two entries), so what was sold can never be pledged again. The back office's next positions
    report the same holding (an end-of-day file that still shows it before settlement raises a break)."""
    # The close-out's own notice tells the client what was sold, at what price and what it paid off.
    release = custody_release(client_id=client_id, instrument_id=instrument_id, quantity=quantity, facility_id=facility_id,
                              actor=actor, reference=reference, confirm=False)
    balance = _balance_locked(client_id, instrument_id)
    qty = release.quantity
    balance.held -= qty
    balance.updated_at = timezone.now()
    balance.save(update_fields=["held", "updated_at"])
    sold = _entry(balance, release.instrument, kind=EntryKind.HOLDING, quantity=-qty, facility_id=facility_id, actor=actor, reference=reference)
    return release, sold
