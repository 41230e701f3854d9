"""The facility ledger: every movement of money on a facility is one immutable entry.

``ledger_post`` is the one writer of single entries (drawdowns, repayments, fees, sale
proceeds, adjustments, write-offs, recoveries); the monthly interest posting writes its entries
set-based (``lending.servicing.interest``) with the same columns and the same rule:
``balance_after`` = previous balance + ``delta`` and the facility's drawn balance equals the
sum of its deltas. ``ledger_check`` proves that for the whole book in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.errors import PortalError

from .models import TXN_SIGN, Facility, FacilityTransaction, TxnKind
from .valuation import money


def ledger_post(*, facility: Facility, kind: str, amount: Decimal, actor=None, reference: str = "", narrative: str = "",
                value_date: date | None = None, approved_by=None, sign: int | None = None) -> FacilityTransaction:
    """Append one entry and move ``facility.drawn_balance`` by it (the caller holds the facility's
    lock and saves the facility in the same transaction). ``sign`` is given only for an adjustment."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ledger_post must run inside the transaction that locked the facility")
    amount = money(Decimal(amount))
    if amount <= 0:
        raise PortalError("validation_error", _("An amount must be more than zero."), {"amount": [_("More than zero.")]})
    if kind == TxnKind.ADJUSTMENT:
        if sign not in (1, -1):
            raise ValueError("an adjustment needs sign=+1 or -1")
    else:
        sign = TXN_SIGN[kind]
    delta = amount * sign
    after = facility.drawn_balance + delta
    if after < 0:
        raise PortalError(
            "above_drawn",
            _("HK$%(amount)s is more than the drawn balance of HK$%(drawn_balance)s.") % {"amount": f"{amount:,}", "drawn_balance": f"{facility.drawn_balance:,}"},
            {"amount": [_("Above the drawn balance.")]},
        )
    value_date = _checked_value_date(value_date)
    if value_date < timezone.localdate(facility.opened_at):
        raise PortalError("validation_error", _("A value date cannot be before the facility opened."), {"value_date": [_("Before the facility opened.")]})
    facility.drawn_balance = after
    txn = FacilityTransaction.objects.create(
        facility=facility, kind=kind, amount=amount, delta=delta, balance_after=after,
        value_date=value_date, reference=(reference or "")[:100], narrative=(narrative or "")[:200],
        recorded_by=actor if getattr(actor, "pk", None) else None, approved_by=approved_by,
    )
    from .confirmations import ledger_entry_confirm

    ledger_entry_confirm(facility=facility, txn=txn)
    return txn


def _checked_value_date(value_date: date | None) -> date:
    """Today, or an earlier date being booked late: never in the future, and never on a day whose
    interest has already been accrued (that day would have been charged on the wrong balance)."""
    today = timezone.localdate()
    if value_date is None or value_date == today:
        return today
    if value_date > today:
        raise PortalError("validation_error", _("A value date cannot be in the future."), {"value_date": [_("Today or earlier.")]})
    from lending.servicing.models import AccrualDay

    if AccrualDay.objects.filter(day__gte=value_date).exists():
        raise PortalError(
            "value_date_accrued",
            _("Interest has already been accrued for %(day)s; book the entry with today's value date and an adjustment if needed.") % {"day": value_date.isoformat()},
            {"value_date": [_("Interest already accrued.")]},
        )
    return value_date


@dataclass
class LedgerReport:
    facilities: int = 0
    entries: int = 0
    broken_entries: list[int] = field(default_factory=list)  # balance_after ≠ running sum of deltas
    bad_sign_entries: list[int] = field(default_factory=list)  # delta ≠ sign(kind) × amount
    mismatched_facilities: list[tuple[int, Decimal, Decimal]] = field(default_factory=list)  # (id, drawn, Σ delta)

    @property
    def ok(self) -> bool:
        return not (self.broken_entries or self.bad_sign_entries or self.mismatched_facilities)


_SIGN_SQL = " ".join(f"WHEN '{kind}' THEN {sign}" for kind, sign in TXN_SIGN.items())


def ledger_check(*, limit: int = 50) -> LedgerReport:
    """Recompute every facility's balance from its entries, set-based (three statements).

    Each entry's ``balance_after`` must equal the running sum of deltas in entry order, each
    delta must carry its kind's sign, and each facility's drawn balance must equal its sum.
    """
    report = LedgerReport()
    t = FacilityTransaction._meta.db_table
    f = Facility._meta.db_table
    with connection.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {t}")  # noqa: S608 (table names come from the models) (table names from the models)
        report.entries = cur.fetchone()[0]
        cur.execute(f"SELECT COUNT(*) FROM {f}")  # noqa: S608 (table names from the models)
        report.facilities = cur.fetchone()[0]
        cur.execute(
            f"SELECT id FROM (SELECT"  # noqa: S608
            f" id, balance_after, SUM(delta) OVER (PARTITION BY facility_id ORDER BY id "
            f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running FROM {t}) r "
            f"WHERE ROUND(r.balance_after, 2) <> ROUND(r.running, 2) ORDER BY id LIMIT %s", [limit])
        report.broken_entries = [row[0] for row in cur.fetchall()]
        cur.execute(
            f"SELECT id FROM {t} WHERE"  # noqa: S608
            f" kind <> 'adjustment' AND ROUND(delta - amount * (CASE kind {_SIGN_SQL} END), 2) <> 0 "
            f"OR kind = 'adjustment' AND ROUND(ABS(delta) - amount, 2) <> 0 ORDER BY id LIMIT %s", [limit])
        report.bad_sign_entries = [row[0] for row in cur.fetchall()]
        cur.execute(
            f"SELECT f.id,"  # noqa: S608
            f" f.drawn_balance, COALESCE(s.total, 0) FROM {f} f LEFT JOIN "
            f"(SELECT facility_id, SUM(delta) AS total FROM {t} GROUP BY facility_id) s ON s.facility_id = f.id "
            f"WHERE ROUND(f.drawn_balance - COALESCE(s.total, 0), 2) <> 0 ORDER BY f.id LIMIT %s", [limit])
        report.mismatched_facilities = [(r[0], money(Decimal(str(r[1]))), money(Decimal(str(r[2])))) for r in cur.fetchall()]
    return report
