"""Confirmations to the client of every movement on their facility: drawdowns and repayments (from the
ledger's one writer, ``ledger.ledger_post``) and collateral movements (from the custody ledger's one
writer of entries: the pledges of an acceptance or a top-up, releases). A close-out sale is told by the
close-out's own notice (``lending.recovery``), with its price and what it paid off.

Called inside the transaction that records the movement, so a confirmation exists exactly when the
movement does; sent through ``portal.notifications`` (category: confirmations, so each client chooses
email and SMS/push for them).
"""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

KIND_PREFIX = "lending.confirmation"

_LEDGER = {
    "drawdown": (
        _("Drawdown of HK$%(amount)s on facility %(ref)s"),
        _("HK$%(amount)s was drawn on facility %(ref)s with value date %(date)s (reference %(reference)s). "
          "The drawn balance is now HK$%(balance)s."),
    ),
    "repayment": (
        _("Repayment of HK$%(amount)s on facility %(ref)s"),
        _("Your repayment of HK$%(amount)s was applied to facility %(ref)s with value date %(date)s (reference %(reference)s). "
          "The drawn balance is now HK$%(balance)s."),
    ),
}

_COLLATERAL = {
    "pledge": (
        _("Collateral pledged to facility %(ref)s"),
        _("%(quantity)s %(instrument)s from your account were pledged to facility %(ref)s (reference %(reference)s)."),
    ),
    "release": (
        _("Collateral released from facility %(ref)s"),
        _("%(quantity)s %(instrument)s were released from facility %(ref)s and are free in your account again (reference %(reference)s)."),
    ),
}


class InstrumentName:
    """An instrument's code and name in the active language (confirmations render per reader)."""

    def __init__(self, instrument):
        self.code, self.en, self.zh = instrument.code, instrument.name_en, instrument.name_zh

    def __str__(self) -> str:
        from django.utils import translation

        name = self.zh if (translation.get_language() or "").startswith("zh") and self.zh else self.en
        return f"{self.code} {name}".strip() if name and name != self.code else self.code


def _money(value: Decimal) -> str:
    return f"{Decimal(value).quantize(Decimal('0.01')):,.2f}"


def _quantity(value: Decimal) -> str:
    text = f"{Decimal(value):,.8f}".rstrip("0").rstrip(".")
    return text or "0"


def ledger_entry_confirm(*, facility, txn) -> None:
    """Confirm a drawdown or repayment just posted (other entry kinds have their own notices or statements)."""
    texts = _LEDGER.get(txn.kind)
    if texts is None:
        return
    from portal.notifications import notify

    notify(
        user=facility.client, kind=f"{KIND_PREFIX}.{txn.kind}", title=texts[0], body=texts[1],
        params={"ref": facility.reference, "amount": _money(txn.amount), "balance": _money(txn.balance_after),
                "date": txn.value_date.isoformat(), "reference": txn.reference or "-"},
        link=f"/lending/facilities/{facility.pk}/",
    )


def collateral_movement_confirm(*, client, facility_id: int | None, movement: str, quantity: Decimal, instrument: str,
                                reference: str = "") -> None:
    """Confirm a collateral movement on a facility: ``movement`` is the custody entry kind (pledge or release);
    ``instrument`` names what moved (text, or an object whose ``str()`` follows the active language). A
    movement outside any facility (a holding the back office reports) is not confirmed here."""
    if facility_id is None or movement not in _COLLATERAL:
        return
    from django.contrib.auth import get_user_model

    from portal.notifications import notify

    user = client if hasattr(client, "preferred_language") else get_user_model().objects.get(pk=client)
    title, body = _COLLATERAL[movement]
    notify(
        user=user, kind=f"{KIND_PREFIX}.collateral_{movement}", title=title, body=body,
        params={"ref": f"FAC-{int(facility_id):06d}", "quantity": _quantity(quantity), "instrument": instrument,
                "reference": reference or "-", "date": timezone.localdate().isoformat()},
        link=f"/lending/facilities/{facility_id}/",
    )
