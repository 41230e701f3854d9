"""Confirmations to the client of every movement on their facility: drawdowns and repayments (from the
ledger's one writer, ``ledger.ledger_post``) and collateral movements (pledges, releases and sales from
the custody ledger's writer, top-ups from the risk engine's ``collateral_top_up``).

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
    "top_up": (
        _("Collateral added to facility %(ref)s"),
        _("%(quantity)s %(instrument)s were added as collateral to facility %(ref)s (reference %(reference)s)."),
    ),
    "sale": (
        _("Collateral sold from facility %(ref)s"),
        _("%(quantity)s %(instrument)s pledged to facility %(ref)s were sold (reference %(reference)s); "
          "the proceeds are applied to the loan."),
    ),
}


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
    """Confirm a collateral movement on a facility: ``movement`` is pledge, release, top_up or sale;
    ``instrument`` names what moved ("00700 Tencent", "BTC"). A movement outside any facility (a holding
    the back office reports) is not confirmed here."""
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
