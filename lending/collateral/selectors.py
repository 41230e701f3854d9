"""Reads for the collateral book. Other apps may call these (they never import ``services``).

Public contracts:
``instruments(...)``, ``instrument_by_code(code=)``, ``custody_for_client(user=)``, ``custody_balance(client_id=, instrument_id=)``,
``pledged_to_facility(facility_id=, instrument_id=)``, ``margin_accounts(numbers=)``, ``breaks(open_only=)``, ``import_batches()``,
``concentration(...)`` (see ``lending.risk.selectors``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from .models import (
    CustodyBalance,
    CustodyEntry,
    EntryKind,
    ImportBatch,
    Instrument,
    InstrumentKind,
    MachineKey,
    ReconciliationBreak,
    normalise_code,
)

ZERO = Decimal("0")


def instruments(*, kind: str = "", search: str = "", include_inactive: bool = False) -> QuerySet[Instrument]:
    qs = Instrument.objects.all()
    if not include_inactive:
        qs = qs.filter(active=True)
    if kind:
        qs = qs.filter(kind=kind)
    if search:
        term = search.strip()
        qs = qs.filter(Q(code__icontains=term) | Q(name_en__icontains=term) | Q(name_zh__icontains=term) | Q(issuer__icontains=term))
    return qs.order_by("kind", "code")


def instrument_by_code(*, code: str) -> Instrument | None:
    return Instrument.objects.filter(code=normalise_code(code)).first()


def instruments_by_code(*, codes) -> dict[str, Instrument]:
    return {i.code: i for i in Instrument.objects.filter(code__in=list(codes))}


@dataclass(frozen=True)
class Holding:
    """One line of a client's custody: what the back office holds for them, what is pledged, what is free."""

    instrument: Instrument
    held: Decimal
    pledged: Decimal

    @property
    def free(self) -> Decimal:
        return self.held - self.pledged


def custody_for_client(*, user=None, client_id: int | None = None, kind: str = "") -> list[Holding]:
    """The client's custody balances (held > 0 or something pledged), securities first. One query."""
    cid = client_id if client_id is not None else user.pk
    qs = CustodyBalance.objects.filter(client_id=cid).filter(Q(held__gt=0) | Q(pledged__gt=0)).select_related("instrument")
    if kind:
        qs = qs.filter(instrument__kind=kind)
    rows = sorted(qs, key=lambda b: (b.instrument.kind != InstrumentKind.SECURITY, b.instrument.code))
    return [Holding(b.instrument, b.held, b.pledged) for b in rows]


def custody_balance(*, client_id: int, instrument_id: int) -> Holding | None:
    b = CustodyBalance.objects.select_related("instrument").filter(client_id=client_id, instrument_id=instrument_id).first()
    return Holding(b.instrument, b.held, b.pledged) if b else None


def pledged_to_facility(*, facility_id: int, instrument_id: int) -> Decimal:
    """What the ledger says is pledged to one facility in one instrument (pledges less releases)."""
    rows = (
        CustodyEntry.objects.filter(facility_id=facility_id, instrument_id=instrument_id, kind__in=[EntryKind.PLEDGE, EntryKind.RELEASE])
        .values("kind").annotate(total=Sum("quantity"))
    )
    totals = {r["kind"]: r["total"] for r in rows}
    return (totals.get(EntryKind.PLEDGE) or ZERO) - (totals.get(EntryKind.RELEASE) or ZERO)


def ledger_totals(*, client_id: int, instrument_id: int) -> tuple[Decimal, Decimal]:
    """(held, pledged) recomputed from the ledger entries: a balance must equal the sum of its entries."""
    rows = CustodyEntry.objects.filter(client_id=client_id, instrument_id=instrument_id).values("kind").annotate(total=Sum("quantity"))
    totals = {r["kind"]: r["total"] or ZERO for r in rows}
    return totals.get(EntryKind.HOLDING, ZERO), totals.get(EntryKind.PLEDGE, ZERO) - totals.get(EntryKind.RELEASE, ZERO)


def custody_entries(*, client_id: int | None = None, facility_id: int | None = None) -> QuerySet[CustodyEntry]:
    qs = CustodyEntry.objects.select_related("instrument", "batch").order_by("-id")
    if client_id is not None:
        qs = qs.filter(client_id=client_id)
    if facility_id is not None:
        qs = qs.filter(facility_id=facility_id)
    return qs


def margin_accounts(*, numbers) -> dict[str, int]:
    """{margin account number: client user id} for the confirmed securities margin accounts among ``numbers``."""
    from onboarding.models import ClientProfile

    numbers = [n for n in numbers if n]
    if not numbers:
        return {}
    rows = ClientProfile.objects.filter(margin_account_number__in=numbers, margin_account_confirmed_at__isnull=False).values_list(
        "margin_account_number", "user_id")
    return dict(rows)


def margin_account_of(*, user_id: int) -> str:
    from onboarding.models import ClientProfile

    return ClientProfile.objects.filter(user_id=user_id, margin_account_confirmed_at__isnull=False).values_list(
        "margin_account_number", flat=True).first() or ""


def margin_account_numbers(*, user_ids) -> dict[int, str]:
    """{client user id: margin account number} for ``user_ids`` (one query): how a break names the client."""
    from onboarding.models import ClientProfile

    ids = [i for i in user_ids if i]
    if not ids:
        return {}
    return dict(ClientProfile.objects.filter(user_id__in=ids).exclude(margin_account_number="").values_list("user_id", "margin_account_number"))


def breaks(*, open_only: bool = True, kind: str = "") -> QuerySet[ReconciliationBreak]:
    qs = ReconciliationBreak.objects.select_related("client", "instrument", "batch", "resolved_by")
    if open_only:
        qs = qs.filter(resolved_at__isnull=True)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-raised_at", "-id")


def import_batches(*, kind: str = "") -> QuerySet[ImportBatch]:
    qs = ImportBatch.objects.select_related("submitted_by", "machine_key")
    return qs.filter(kind=kind) if kind else qs


def import_batch(*, batch_pk: int) -> ImportBatch:
    return ImportBatch.objects.select_related("submitted_by", "machine_key").get(pk=batch_pk)


def machine_keys() -> QuerySet[MachineKey]:
    return MachineKey.objects.select_related("created_by", "revoked_by").order_by("-created_at", "-id")


# --- The marginable list ------------------------------------------------------------------------------


def marginable_list(*, policy):
    from .models import MarginableList

    return MarginableList.objects.filter(policy=policy).prefetch_related("entries__instrument").first()


def marginable_lists(*, policies) -> dict:
    """{policy id: its MarginableList with entries and their instruments} for several versions: three queries."""
    from .models import MarginableList

    return {m.policy_id: m for m in MarginableList.objects.filter(policy__in=list(policies)).prefetch_related("entries__instrument")}


DEFAULT_LIMIT_ROUNDING_UNIT = Decimal("10000")
DEFAULT_SECURITIES_PRICE_MAX_AGE_DAYS = 4


def marginable_numbers(*, policy):
    """The collateral-book numbers of a policy version (its ``MarginableList`` without the entries; one query):
    concentration limits, how recommended limits are rounded, how long a security's last price stays usable.
    None where the version has no list (the defaults above then apply)."""
    from .models import MarginableList

    return MarginableList.objects.filter(policy=policy).first() if policy is not None else None


def _haircut_rows(*, policy, instrument_ids=None):
    """Every instrument with its marginable-list entry and the list's suspended haircut: ONE query."""
    from django.db.models import OuterRef, Subquery

    from .models import MarginableEntry, MarginableList

    qs = Instrument.objects.all() if instrument_ids is None else Instrument.objects.filter(pk__in=list(instrument_ids))
    return qs.annotate(
        entry_haircut=Subquery(MarginableEntry.objects.filter(marginable_list__policy=policy, instrument=OuterRef("pk")).values("haircut")[:1]),
        list_suspended_haircut=Subquery(MarginableList.objects.filter(policy=policy).values("suspended_haircut")[:1]),
    )


def haircuts_for(*, policy, instrument_ids=None) -> dict[int, Decimal]:
    """{instrument id: effective haircut} under ``policy`` (one query)."""
    from .marginable import effective_haircut

    return {i.pk: effective_haircut(instrument=i, policy=policy, entry_haircut=i.entry_haircut, suspended_haircut=i.list_suspended_haircut)
            for i in _haircut_rows(policy=policy, instrument_ids=instrument_ids)}


def haircuts_by_code(*, policy) -> dict[str, Decimal]:
    """{instrument code: effective haircut} under ``policy`` (one query)."""
    from .marginable import effective_haircut

    return {i.code: effective_haircut(instrument=i, policy=policy, entry_haircut=i.entry_haircut, suspended_haircut=i.list_suspended_haircut)
            for i in _haircut_rows(policy=policy)}


def classes_without_haircut(*, policy) -> list[dict]:
    """The margin classes of active securities that ``policy`` gives no haircut, with their instruments not on its
    marginable list: those are not marginable under it (``marginable.effective_haircut``), which a credit manager should
    see before approving, not find in a client's lending value. [{"margin_class", "count", "codes", "shown"}], one query."""
    from collections import defaultdict

    from .models import MarginableEntry

    classes = list((policy.securities_haircuts or {}).keys())
    listed = MarginableEntry.objects.filter(marginable_list__policy=policy).values("instrument_id")
    rows = (Instrument.objects.filter(kind=InstrumentKind.SECURITY, active=True).exclude(margin_class="").exclude(margin_class__in=classes)
            .exclude(pk__in=listed).order_by("margin_class", "code").values_list("margin_class", "code"))
    found: dict[str, list[str]] = defaultdict(list)
    for margin_class, code in rows:
        found[margin_class].append(code)
    return [{"margin_class": c, "count": len(codes), "codes": codes, "shown": ", ".join(codes[:5]) + ("…" if len(codes) > 5 else "")}
            for c, codes in found.items()]


def policy_preview(*, policy) -> dict:
    """Before approval: how many active facilities would change band were ``policy`` in force now (one SELECT)."""
    from lending.risk import book
    from lending.selectors import prices_current

    prices = {code: q.price_hkd for code, q in prices_current().items()}
    return book.band_changes_under(policy_numbers=policy, haircuts=haircuts_for(policy=policy), prices=prices)


def concentration(*, top: int = 10) -> dict:
    """Collateral concentration of the live book by instrument, issuer and sector (market and lending value at
    the current prices and haircuts), with the firm's limits of the marginable list in force. One SELECT plus
    the policy; for the risk board and the SMF pack."""
    from django.db import connection

    from lending.selectors import policy_current

    from .models import MarginableList

    sql = """
        SELECT i.code, i.name_en, i.name_zh, i.issuer, i.sector, i.kind,
               SUM(p.quantity * COALESCE(cp.price_hkd, 0)) AS mv,
               SUM(p.quantity * COALESCE(cp.price_hkd, 0) * (1 - p.haircut)) AS lv,
               COUNT(DISTINCT p.facility_id) AS facilities
        FROM lending_collateralposition p
        JOIN lending_facility f ON f.id = p.facility_id AND f.state = 'active'
        JOIN collateral_instrument i ON i.id = p.instrument_id
        LEFT JOIN lending_currentprice cp ON cp.asset = i.code
        GROUP BY i.code, i.name_en, i.name_zh, i.issuer, i.sector, i.kind
    """
    from django.utils.translation import get_language

    from lending.risk import book
    from lending.selectors import prices_current

    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = [dict(zip([c[0] for c in cursor.description], r, strict=True)) for r in cursor.fetchall()]
    policy = policy_current()
    limits = MarginableList.objects.filter(policy=policy).first() if policy else None
    # The book's lending value as the engine values it (lending.risk.book.live_sql: the risk board's total), with bitcoin
    # and ether counted after each facility's VA cap, shared between them in proportion to their uncapped values.
    total_lv = ZERO
    if policy is not None:
        prices = {a: q.price_hkd for a, q in prices_current().items()}
        params = book.Scenario.current(policy=policy, prices=prices).params()
        va_share = "CASE WHEN v.va_lv_uncapped > 0 THEN v.va_lv * v.{w} * %({p})s / v.va_lv_uncapped ELSE 0 END"
        totals_sql = (f"SELECT COALESCE(SUM(v.lv), 0), COALESCE(SUM({va_share.format(w='btc_w', p='btc')}), 0), "  # noqa: S608 - constants only
                      f"COALESCE(SUM({va_share.format(w='eth_w', p='eth')}), 0) FROM ({book.live_sql()}) v")
        with connection.cursor() as cursor:
            cursor.execute(totals_sql, params)
            total, btc_lv, eth_lv = cursor.fetchone()
        total_lv = Decimal(str(total))
        capped = {"BTC": Decimal(str(btc_lv)), "ETH": Decimal(str(eth_lv))}
        for r in rows:
            if r["kind"] == "virtual_asset" and r["code"] in capped:
                r["lv"] = capped[r["code"]]
    # The firm-wide limits apply once the book is large enough to make a share meaningful (firm_concentration_min_book).
    firm_limits_apply = limits is not None and total_lv >= limits.firm_concentration_min_book

    def share(value):
        return (Decimal(str(value)) / total_lv).quantize(Decimal("0.0001")) if total_lv else ZERO

    def group(key):
        out: dict = {}
        for r in rows:
            name = r[key] or r["code"]
            g = out.setdefault(name, {"name": name, "mv": ZERO, "lv": ZERO, "facilities": 0})
            g["mv"] += Decimal(str(r["mv"] or 0))
            g["lv"] += Decimal(str(r["lv"] or 0))
            g["facilities"] += r["facilities"]
        ranked = sorted(out.values(), key=lambda g: -g["lv"])
        for g in ranked:
            g["mv"], g["lv"], g["share"] = g["mv"].quantize(Decimal("0.01")), g["lv"].quantize(Decimal("0.01")), share(g["lv"])
        return ranked[:top]

    instrument_limit = limits.firm_instrument_concentration_max if limits else None
    issuer_limit = limits.firm_issuer_concentration_max if limits else None
    by_instrument = group("code")
    names = {r["code"]: r for r in rows}
    zh = (get_language() or "").startswith("zh")
    for g in by_instrument:
        named = names[g["name"]]
        g["label"] = f"{g['name']} {named['name_zh'] if zh and named['name_zh'] else named['name_en']}"
        g["over"] = firm_limits_apply and instrument_limit is not None and g["share"] > instrument_limit
    by_issuer = group("issuer")
    for g in by_issuer:
        g["label"] = g["name"]
        g["over"] = firm_limits_apply and issuer_limit is not None and g["share"] > issuer_limit
    by_sector = group("sector")
    for g in by_sector:
        g["label"], g["over"] = g["name"], False
    return {"total_lending_value": total_lv.quantize(Decimal("0.01")), "by_instrument": by_instrument, "by_issuer": by_issuer,
            "by_sector": by_sector, "instrument_limit": instrument_limit, "issuer_limit": issuer_limit,
            "firm_limits_apply": firm_limits_apply, "firm_min_book": limits.firm_concentration_min_book if limits else None}
