"""Collateral concentration limits (SMF Guidelines: collateral concentration), per client and firm-wide.

A share is of lending value: the securities lending value from one instrument, issuer or sector divided
by the total lending value (virtual assets counted after their cap), either the client's across all their
active facilities or the firm's whole active book. The limits are numbers of the marginable list in force
(``MarginableList``); the firm-wide ones apply once the book's lending value reaches
``firm_concentration_min_book``.

Two callers, one rule (``breaches``):

* the credit review's concentration step refers an application whose collateral would take the client
  (or the book) above a limit, naming each breach;
* a pledge after opening (``ensure_pledge_within_limits``, from the top-up service) is refused when it
  would take a share above its limit and raise it; a pledge that lowers a concentration is always allowed.

Virtual assets have their own limit (the VA share cap of the policy), so only securities are counted
here as concentrations; they still count in the total.
"""

# ruff: noqa: S608 - SQL text here is built only from constants in this module; every value is a bound parameter.

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.utils.translation import gettext_lazy as _

from portal.errors import ConflictError

ZERO = Decimal("0")
DIMENSIONS = ("instrument", "issuer", "sector")
SHARE_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class Limits:
    client: dict  # dimension → largest share of the client's lending value
    firm: dict  # dimension → largest share of the firm's book
    firm_min_book: Decimal

    @classmethod
    def of(cls, listed) -> Limits:
        return cls(
            client={"instrument": listed.instrument_concentration_max, "issuer": listed.issuer_concentration_max,
                    "sector": listed.sector_concentration_max},
            firm={"instrument": listed.firm_instrument_concentration_max, "issuer": listed.firm_issuer_concentration_max,
                  "sector": listed.firm_sector_concentration_max},
            firm_min_book=listed.firm_concentration_min_book,
        )

    def as_dict(self) -> dict:
        return {"client": {k: str(v) for k, v in self.client.items()}, "firm": {k: str(v) for k, v in self.firm.items()},
                "firm_min_book": str(self.firm_min_book)}


def limits_for(*, policy) -> Limits | None:
    from .models import MarginableList

    listed = MarginableList.objects.filter(policy=policy).first() if policy is not None else None
    return Limits.of(listed) if listed is not None else None


@dataclass(frozen=True)
class Name:
    """What a concentration is grouped by, for one instrument."""

    code: str
    name_en: str
    issuer: str
    sector: str
    is_virtual_asset: bool = False

    @classmethod
    def of(cls, instrument) -> Name:
        return cls(instrument.code, instrument.name_en, instrument.issuer, instrument.sector, instrument.is_virtual_asset)


@dataclass
class Exposure:
    """Lending value: the total, and the securities part by instrument id."""

    total: Decimal = ZERO
    by_instrument: dict = field(default_factory=dict)

    def plus(self, *, total: Decimal, by_instrument: dict) -> Exposure:
        merged = dict(self.by_instrument)
        for iid, lv in by_instrument.items():
            merged[iid] = merged.get(iid, ZERO) + lv
        return Exposure(self.total + total, merged)


@dataclass(frozen=True)
class Breach:
    scope: str  # "client" | "firm"
    dimension: str  # "instrument" | "issuer" | "sector"
    name: str
    share: Decimal
    limit: Decimal
    share_before: Decimal

    def reason(self) -> str:
        whose = "the client's lending value" if self.scope == "client" else "the firm's book (lending value)"
        what = {"instrument": "", "issuer": "issuer ", "sector": "sector "}[self.dimension]
        return f"Concentration: {what}{self.name} would be {self.share:.1%} of {whose}, above the policy maximum of {self.limit:.0%}."

    def as_dict(self) -> dict:
        return {"scope": self.scope, "dimension": self.dimension, "name": self.name, "share": str(self.share),
                "share_before": str(self.share_before), "limit": str(self.limit)}


def _group(exposure: Exposure, instruments: dict, dimension: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for iid, lv in exposure.by_instrument.items():
        item = instruments.get(iid)
        if item is None or item.is_virtual_asset:
            continue
        if dimension == "instrument":
            key = f"{item.name_en} ({item.code})"
        else:
            key = (item.issuer if dimension == "issuer" else item.sector) or f"{item.name_en} ({item.code})"
        out[key] = out.get(key, ZERO) + lv
    return out


def _share(part: Decimal, total: Decimal) -> Decimal:
    return (part / total).quantize(SHARE_PLACES) if total > 0 else ZERO


def breaches(*, limits: Limits, client_before: Exposure, firm_before: Exposure, added_total: Decimal, added: dict,
             instruments: dict, only_touched: bool) -> list[Breach]:
    """The limits the client's and the firm's collateral would exceed once ``added`` ({instrument id: securities
    lending value}, with ``added_total`` of total lending value) is pledged. Pure.

    ``only_touched`` keeps only the instruments, issuers and sectors the new collateral adds to, and only
    where it raises the share (a pledge); without it every client concentration after the change counts
    (the review of a new facility: the client's whole position after it), the firm's only where touched.
    """
    out: list[Breach] = []
    touched_ids = {iid for iid, lv in added.items() if lv > 0}
    scopes = [("client", client_before, limits.client)]
    if firm_before.total >= limits.firm_min_book:
        scopes.append(("firm", firm_before, limits.firm))
    for scope, before, maxima in scopes:
        after = before.plus(total=added_total, by_instrument=added)
        for dimension in DIMENSIONS:
            grouped_after = _group(after, instruments, dimension)
            grouped_before = _group(before, instruments, dimension)
            touched = set(_group(Exposure(ZERO, {i: Decimal(1) for i in touched_ids}), instruments, dimension))
            for name, lv in sorted(grouped_after.items()):
                # Compared exactly (no division): a share at the limit is within it.
                if after.total <= 0 or lv <= maxima[dimension] * after.total:
                    continue
                if (only_touched or scope == "firm") and name not in touched:
                    continue
                lv_before = grouped_before.get(name, ZERO)
                if only_touched and before.total > 0 and lv * before.total <= lv_before * after.total:
                    continue  # the pledge does not raise this share
                share, was = _share(lv, after.total), _share(lv_before, before.total)
                out.append(Breach(scope, dimension, name, share, maxima[dimension], was))
    return out


# --- What the book holds now (two SELECTs) --------------------------------------------------------------


def book_exposure(*, client_id: int, policy, prices: dict) -> tuple[Exposure, Exposure, dict]:
    """(the client's, the firm's) lending value of the active book, and the names of the instruments held.

    Totals by the engine's own valuation SQL (``lending.risk.book.live_sql``, VA after its cap); securities
    by instrument at the book prices and the positions' haircuts (what the engine's per-facility sums are
    made of). ``prices``: {code: HKD}, the reference prices.
    """
    from lending.risk import book

    params = book.Scenario.current(policy=policy, prices=prices).params() | {"client": int(client_id)}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE(SUM(v.lv), 0), COALESCE(SUM(CASE WHEN v.client_id = %(client)s THEN v.lv ELSE 0 END), 0) "
            f"FROM ({book.live_sql()}) v",
            params,
        )
        firm_total, client_total = cursor.fetchone()
        cursor.execute(
            """
            SELECT s.instrument_id, s.lv, s.client_lv, i.code, i.name_en, i.issuer, i.sector
            FROM (SELECT p.instrument_id, SUM(p.quantity * bp.price * (1 - p.haircut)) AS lv,
                         SUM(CASE WHEN f.client_id = %(client)s THEN p.quantity * bp.price * (1 - p.haircut) ELSE 0 END) AS client_lv
                  FROM lending_collateralposition p
                  JOIN lending_facility f ON f.id = p.facility_id
                  JOIN collateral_bookprice bp ON bp.instrument_id = p.instrument_id
                  WHERE f.state = %(active)s AND p.kind = 'securities' AND p.instrument_id IS NOT NULL
                  GROUP BY p.instrument_id) s
            JOIN collateral_instrument i ON i.id = s.instrument_id
            """,
            {"client": int(client_id), "active": book.ACTIVE},
        )
        rows = cursor.fetchall()
    names = {r[0]: Name(r[3], r[4], r[5], r[6]) for r in rows}
    firm = Exposure(_dec(firm_total), {r[0]: _dec(r[1]) for r in rows if r[1]})
    client = Exposure(_dec(client_total), {r[0]: _dec(r[2]) for r in rows if r[2]})
    return client, firm, names


def _dec(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def review_concentration(*, client_id: int, listed, policy, prices: dict, added_total: Decimal, added: dict,
                         added_names: dict) -> tuple[list[Breach], dict]:
    """For the credit review: the breaches a new facility's collateral (``added``: {instrument id: securities lending
    value}, named in ``added_names``) would cause under the marginable list ``listed``, and the figures shown with them."""
    if listed is None:
        return [], {"limits": None}
    limits = Limits.of(listed)
    client, firm, names = book_exposure(client_id=client_id, policy=policy, prices=prices)
    names |= added_names
    found = breaches(limits=limits, client_before=client, firm_before=firm, added_total=added_total, added=added,
                     instruments=names, only_touched=False)
    after = client.plus(total=added_total, by_instrument=added)
    largest = sorted(_group(after, names, "instrument").items(), key=lambda kv: -kv[1])[:3]
    figures = {
        "limits": limits.as_dict(),
        "client_lending_value_after": str(after.total.quantize(Decimal("0.01"))),
        "firm_book_lending_value": str(firm.total),
        "firm_limits_apply": firm.total >= limits.firm_min_book,
        "largest_instruments": [{"name": n, "share": str(_share(lv, after.total))} for n, lv in largest],
    }
    return found, figures


def ensure_pledge_within_limits(*, client_id: int, instrument, lending_value: Decimal, policy, prices: dict) -> None:
    """Refuse a pledge of securities adding ``lending_value`` that would take a concentration above its limit
    (and raise it). Call under the book lock, before the pledge is recorded. ``prices``: {code: HKD}."""
    if instrument.is_virtual_asset or lending_value <= 0:
        return
    limits = limits_for(policy=policy)
    if limits is None:
        return
    client, firm, names = book_exposure(client_id=client_id, policy=policy, prices=prices)
    names[instrument.pk] = Name.of(instrument)
    found = breaches(limits=limits, client_before=client, firm_before=firm, added_total=lending_value,
                     added={instrument.pk: lending_value}, instruments=names, only_touched=True)
    if found:
        first = found[0]
        raise ConflictError(
            "concentration_limit",
            _("This pledge would take %(name)s to %(share)s of %(whose)s, above the policy maximum of %(limit)s (now %(before)s).") % {
                "name": first.name, "share": f"{first.share:.1%}", "limit": f"{first.limit:.0%}", "before": f"{first.share_before:.1%}",
                "whose": _("the client's lending value") if first.scope == "client" else _("the firm's book")},
            {"quantity": [b.reason() for b in found]},
        )
