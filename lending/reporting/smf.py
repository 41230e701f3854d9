"""The SMF control pack's figures: the seven control areas of the Guidelines for Securities Margin
Financing Activities, as at a date, for the month up to that date. Reads only.

The book as at a date is the risk engine's valuation snapshot of the latest day on or before it (the
regulatory record). For today, until the end-of-day valuation has been taken (the engine's scheduled job,
23:55 Hong Kong time), the book is valued live by the engine's own statement at the current prices: a
snapshot of today taken earlier (part of the book, at prices since moved) is never presented as the end of
the day. Collateral by instrument is valued at the same moment and for the same facilities as the book, so
one pack carries one valuation. Every figure carries the link to the records behind it. The result is plain JSON (strings for money,
so no float ever touches a figure), which ``services.smf_pack_generate`` stores with its SHA-256.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.db.models import Count, DecimalField, F, Max, Min, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.urls import reverse
from django.utils import timezone

from lending.models import CollateralPolicy, Facility, PolicyStatus
from lending.risk.models import CallState, MarginCall, StressReport, ValuationSnapshot
from lending.risk.revaluation import HK

from . import policy, selectors
from .models import Complaint, Deviation, DeviationState

ZERO = Decimal("0")
CENT = Decimal("0.01")
MONEY = DecimalField(max_digits=20, decimal_places=2)
AGE_BUCKETS = [(0, 2, "0–2"), (3, 5, "3–5"), (6, 10, "6–10"), (11, None, "11+")]


def money(v) -> str:
    return str(Decimal(v or 0).quantize(CENT))


def _opt(value, fn):
    return None if value is None else fn(value)


def ratio(num, den) -> str | None:
    if not den:
        return None
    return str((Decimal(num or 0) / Decimal(den)).quantize(Decimal("0.0001")))


def _url(name: str, *args, **query) -> str:
    url = reverse(name, args=args)
    query = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{url}?{urlencode(query)}" if query else url


def period_bounds(as_of: date) -> tuple[date, datetime, datetime]:
    start_day = as_of.replace(day=1)
    start = datetime.combine(start_day, time.min, tzinfo=HK)
    end = datetime.combine(as_of, time.max, tzinfo=HK)
    return start_day, start, end


def last_month_end(today: date) -> date:
    return today.replace(day=1) - timedelta(days=1)


def compute(*, as_of: date, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    start_day, start, end = period_bounds(as_of)
    memberships = selectors.memberships_at(day=as_of)
    book = _book(as_of=as_of, now=now, member_ids=sorted({m.client_id for m in memberships}))
    collateral_policy = _policy_at(end)
    capital = selectors.capital_at(day=as_of)
    credit_limits = _credit_limits(book, collateral_policy, as_of)
    return {
        "as_of": as_of.isoformat(),
        "period_start": start_day.isoformat(),
        "book_source": book["source"],
        "total_loans": _total_loans(book, capital),
        "credit_limits": credit_limits,
        "collateral_concentration": _collateral(book, collateral_policy) | {"instruments": _instruments(**book["valued"])},
        "client_concentration": _clients(book, memberships=memberships, collateral_policy=collateral_policy, as_of=as_of,
                                         limits_total=Decimal(credit_limits["limits_total"])),
        "haircuts": _haircuts(collateral_policy, start, end),
        "margin_calls": _calls(start, end),
        "stress_testing": _stress(start, end),
        "complaints": _complaints(start, end),
        "deviations": _deviations(as_of),
    }


# --- The book as at the date -------------------------------------------------------------------------


def _per_member(qs, member_ids: list[int], *, drawn: str, lv: str) -> dict[int, dict]:
    """Drawn balance, lending value and facilities of each related-group member, from the same book."""
    if not member_ids:
        return {}
    rows = qs.filter(client_id__in=member_ids).values("client_id").annotate(drawn=Sum(drawn), lv=Sum(lv), facilities=Count("id"))
    return {r["client_id"]: r for r in rows}


EOD_SNAPSHOT_TASK = "lending.risk.tasks.snapshots_take"


def end_of_day_moment(day: date) -> datetime:
    """When the risk engine takes the end-of-day valuation of ``day``: its scheduled job's time that day
    (Hong Kong time), or the end of the day if no such job is declared."""
    from celery import schedules

    from portal.scheduling import declared_jobs, next_run_after

    for entry in declared_jobs().values():
        schedule = schedules.maybe_schedule(entry["schedule"])
        if entry["task"] == EOD_SNAPSHOT_TASK and isinstance(schedule, schedules.crontab):
            return next_run_after(schedule, datetime.combine(day, time.min, tzinfo=HK) - timedelta(microseconds=1))
    return datetime.combine(day, time.max, tzinfo=HK)


def _book(*, as_of: date, now: datetime, member_ids: list[int] = ()) -> dict:
    day = ValuationSnapshot.objects.filter(day__lte=as_of).aggregate(d=Max("day"))["d"]
    taken = ValuationSnapshot.objects.filter(day=day).aggregate(first=Min("created_at"), last=Max("created_at")) if day else {}
    # The day's rows are written once (ON CONFLICT DO NOTHING): one taken before the scheduled run stays.
    end_of_day = bool(day) and taken["first"] >= end_of_day_moment(day)
    if as_of >= now.astimezone(HK).date() and (day != as_of or not end_of_day):
        return _live_book(now=now, member_ids=member_ids)
    if day is None:
        end = datetime.combine(as_of, time.max, tzinfo=HK)
        return {"source": {"kind": "none", "day": None, "link": _url("reporting:snapshots")}, "facilities": 0, "rows": None, "by_member": {},
                "valued": {"at": end, "facility_ids": None}}
    rows = ValuationSnapshot.objects.filter(day=day)
    totals = rows.filter(collateral_type="total")
    securities_lv = Subquery(
        rows.filter(facility_id=OuterRef("facility_id"), collateral_type="securities").values("lending_value")[:1], output_field=MONEY
    )
    per_type = {r["collateral_type"]: r for r in rows.values("collateral_type").annotate(mv=Sum("market_value"), lv=Sum("lending_value"))}
    agg = totals.annotate(f_sec_lv=Coalesce(securities_lv, Value(ZERO), output_field=MONEY)).aggregate(
        facilities=Count("id"),
        drawn=Coalesce(Sum("drawn_balance"), Value(ZERO), output_field=MONEY),
        lv=Coalesce(Sum("lending_value"), Value(ZERO), output_field=MONEY),
        mv=Coalesce(Sum("market_value"), Value(ZERO), output_field=MONEY),
        sec_lv=Coalesce(Sum("f_sec_lv"), Value(ZERO), output_field=MONEY),
        uncovered_lending=Coalesce(Sum(Greatest(F("drawn_balance") - F("lending_value"), Value(ZERO), output_field=MONEY)), Value(ZERO), output_field=MONEY),
        uncovered_capital=Coalesce(Sum(Greatest(F("drawn_balance") - F("f_sec_lv"), Value(ZERO), output_field=MONEY)), Value(ZERO), output_field=MONEY),
        over_limit=Count("id", filter=Q(drawn_balance__gt=F("facility__limit"))),
        limits=Coalesce(Sum("facility__limit"), Value(ZERO), output_field=MONEY),
    )
    by_client = list(
        totals.values("client_id", "client__email", "client__full_name")
        .annotate(drawn=Sum("drawn_balance"), lv=Sum("lending_value"), limits=Sum("facility__limit"), facilities=Count("id"))
        .order_by("-drawn", "client_id")[: policy.TOP_CLIENTS]
    )
    bands = {r["band"]: r["n"] for r in totals.values("band").annotate(n=Count("id"))}
    return {
        "source": {"kind": "snapshot", "day": day.isoformat(), "end_of_day": end_of_day, "taken_at": timezone.localtime(taken["first"], HK).isoformat(),
                   "link": _url("reporting:snapshots", day_from=day.isoformat(), day_to=day.isoformat())},
        "valued": {"at": taken["last"], "facility_ids": totals.values("facility_id")},
        "facilities": agg["facilities"],
        "rows": agg,
        "per_type": {k: {"mv": v["mv"] or ZERO, "lv": v["lv"] or ZERO} for k, v in per_type.items()},
        "by_client": by_client,
        "by_member": _per_member(totals, list(member_ids), drawn="drawn_balance", lv="lending_value"),
        "bands": bands,
    }


def _live_book(*, now: datetime, member_ids: list[int] = ()) -> dict:
    """The book valued now by the risk engine's statement (``lending.risk.book.live_sql``, the one its snapshots
    and the risk board use): the facilities it values, at the current prices, each figure rounded as a snapshot
    row is. Grouped by client and band in the database, so its cost follows the clients, not the positions."""
    from lending.models import FacilityState
    from lending.risk import book as risk_book
    from lending.risk.revaluation import current_inputs
    from portal.models import User

    source = {"kind": "live", "day": None, "at": timezone.localtime(now, HK).isoformat(), "link": _url("lending:staff-facilities")}
    valued = {"at": now, "facility_ids": Facility.objects.filter(state=FacilityState.ACTIVE).values("pk")}
    collateral_policy, prices = current_inputs()
    groups = []
    if collateral_policy is not None and prices:
        groups = risk_book.fetch(
            f"""SELECT v.client_id AS client_id, v.band AS band, COUNT(*) AS facilities, SUM(v.drawn) AS drawn, SUM(v.lv) AS lv,
                       SUM(ROUND(v.mv, 2)) AS mv, SUM(ROUND(v.sec_mv, 2)) AS sec_mv, SUM(ROUND(v.sec_lv, 2)) AS sec_lv,
                       SUM(ROUND(v.btc_mv, 2)) AS btc_mv, SUM(ROUND(v.eth_mv, 2)) AS eth_mv,
                       SUM(CASE WHEN v.drawn > v.lv THEN v.drawn - v.lv ELSE 0 END) AS uncovered_lending,
                       SUM(CASE WHEN v.drawn > ROUND(v.sec_lv, 2) THEN v.drawn - ROUND(v.sec_lv, 2) ELSE 0 END) AS uncovered_capital,
                       SUM(CASE WHEN v.drawn > f."limit" THEN 1 ELSE 0 END) AS over_limit, SUM(f."limit") AS limits
                FROM ({risk_book.live_sql()}) v JOIN lending_facility f ON f.id = v.facility_id
                GROUP BY v.client_id, v.band""",  # noqa: S608 - the engine's SQL text and constants; every value is bound
            risk_book.Scenario.current(policy=collateral_policy, prices=prices).params(),
        )
    sums = ("drawn", "lv", "mv", "sec_mv", "sec_lv", "btc_mv", "eth_mv", "uncovered_lending", "uncovered_capital", "limits")
    agg = dict.fromkeys(sums, ZERO) | {"facilities": 0, "over_limit": 0}
    clients: dict[int, dict] = {}
    bands: dict[str, int] = {}
    for g in groups:
        figures = {k: Decimal(str(g[k] or 0)).quantize(CENT) for k in sums}
        for k in sums:
            agg[k] += figures[k]
        agg["facilities"] += int(g["facilities"])
        agg["over_limit"] += int(g["over_limit"] or 0)
        bands[g["band"]] = bands.get(g["band"], 0) + int(g["facilities"])
        c = clients.setdefault(g["client_id"], {"client_id": g["client_id"], "drawn": ZERO, "lv": ZERO, "limits": ZERO, "facilities": 0})
        c["drawn"] += figures["drawn"]
        c["lv"] += figures["lv"]
        c["limits"] += figures["limits"]
        c["facilities"] += int(g["facilities"])
    by_client = sorted(clients.values(), key=lambda c: (-c["drawn"], c["client_id"]))[: policy.TOP_CLIENTS]
    names = {u["pk"]: u for u in User.objects.filter(pk__in=[c["client_id"] for c in by_client]).values("pk", "email", "full_name")}
    for c in by_client:
        c["client__email"], c["client__full_name"] = names[c["client_id"]]["email"], names[c["client_id"]]["full_name"]
    per_type = {
        "securities": {"mv": agg["sec_mv"], "lv": agg["sec_lv"]},
        "BTC": {"mv": agg["btc_mv"], "lv": None},
        "ETH": {"mv": agg["eth_mv"], "lv": None},
        "total": {"mv": agg["mv"], "lv": agg["lv"]},
    }
    by_member = {i: {"client_id": i, "drawn": clients[i]["drawn"], "lv": clients[i]["lv"], "facilities": clients[i]["facilities"]}
                 for i in member_ids if i in clients}
    return {"source": source, "valued": valued, "facilities": agg["facilities"], "rows": agg, "per_type": per_type, "by_client": by_client,
            "bands": bands, "by_member": by_member}


def _policy_at(end: datetime) -> CollateralPolicy | None:
    return (
        CollateralPolicy.objects.filter(status__in=[PolicyStatus.APPROVED, PolicyStatus.SUPERSEDED], decided_at__lte=end)
        .order_by("-decided_at", "-version").first()
    )


# --- 1. Total margin loans against capital --------------------------------------------------------------


def _total_loans(book: dict, capital) -> dict:
    rows = book["rows"] or {}
    drawn = rows.get("drawn", ZERO)
    view = selectors.loans_to_capital(total_loans=drawn, capital=capital)
    lending_lv, capital_lv = rows.get("lv", ZERO), rows.get("sec_lv", ZERO)
    out = {
        "total_loans": money(drawn),
        "facilities": book["facilities"],
        "link": book["source"]["link"],
        "benchmark": str(policy.LOANS_TO_CAPITAL_BENCHMARK),
        "capital_entry": None,
        "liquid_capital": None,
        "multiple": _opt(view["multiple"], str),
        "ceiling": _opt(view["ceiling"], str),
        "within_ceiling": view["within"],
        "headroom": _opt(view["headroom"], money),
        # 26EC5 lending view: VA counted at the policy haircut (≥ 60%) and within the VA cap.
        "lending_view": {"lending_value": money(lending_lv), "uncovered": money(rows.get("uncovered_lending", ZERO))},
        # Financial Resources Rules view: VA collateral at a 100% haircut (only securities count).
        "capital_view": {"lending_value": money(capital_lv), "uncovered": money(rows.get("uncovered_capital", ZERO))},
        "capital_link": _url("reporting:capital"),
    }
    if capital is not None:
        out["capital_entry"] = {"version": capital.version, "as_of": capital.as_of.isoformat(), "source": capital.source_reference}
        out["liquid_capital"] = money(capital.liquid_capital)
        out["capital_view"]["uncovered_to_capital"] = ratio(rows.get("uncovered_capital", ZERO), capital.liquid_capital)
    return out


# --- 2. Client credit limits ----------------------------------------------------------------------------


def _credit_limits(book: dict, collateral_policy, as_of: date) -> dict:
    from lending.models import FacilityState

    rows = book["rows"] or {}
    end = datetime.combine(as_of, time.max, tzinfo=HK)
    open_then = Facility.objects.filter(opened_at__lte=end).filter(Q(closed_at__isnull=True) | Q(closed_at__gt=end))
    client_max = collateral_policy.client_exposure_limit if collateral_policy else None
    firm_max = collateral_policy.firm_exposure_limit if collateral_policy else None
    from lending.servicing.selectors import limit_at, limit_changes_between

    # Limits as they stood at the end of the period (credit-limit history), not as they are today.
    open_then = open_then.annotate(limit_then=limit_at(end))
    per_client = open_then.values("client_id", "client__email").annotate(limits=Sum("limit_then")).order_by("-limits", "client_id")
    over_client = list(per_client.filter(limits__gt=client_max)[:50]) if client_max is not None else []
    firm_limits = open_then.aggregate(s=Coalesce(Sum("limit_then"), Value(ZERO), output_field=MONEY))["s"]
    _first, start, _end = period_bounds(as_of)
    changes = [
        {"facility": e.facility_reference, "facility_id": e.facility_id, "state": e.state, "old_limit": money(e.old_limit),
         "new_limit": money(e.new_limit), "reason": e.reason, "by": e.by.email, "at": e.at.isoformat(),
         "decided_by": e.decided_by.email if e.decided_by else None, "decided_at": e.decided_at.isoformat() if e.decided_at else None,
         "link": _url("lending:staff-facility", e.facility_id)}
        for e in limit_changes_between(start=start, end=end)
    ]
    return {
        "facilities_open": open_then.count(),
        "limits_total": money(firm_limits),
        "drawn_total": money(rows.get("drawn", ZERO)),
        "drawn_to_limits": ratio(rows.get("drawn", ZERO), firm_limits),
        "over_limit": rows.get("over_limit", 0),
        "client_limit_max": _opt(client_max, money),
        "clients_over_client_limit": [
            {"client_id": r["client_id"], "email": r["client__email"], "limits": money(r["limits"]),
             "link": _url("lending:staff-facilities", search=r["client__email"])} for r in over_client
        ],
        "firm_limit_max": _opt(firm_max, money),
        "firm_within": None if firm_max is None else firm_limits <= firm_max,
        "policy_version": collateral_policy.version if collateral_policy else None,
        "bands": book.get("bands", {}),
        "link": _url("lending:staff-facilities"),
        "suspended_now": Facility.objects.filter(state=FacilityState.SUSPENDED).count(),
        "changes": changes,
    }


# --- 3. Collateral concentration -------------------------------------------------------------------------


def _collateral(book: dict, collateral_policy) -> dict:
    per_type = book.get("per_type") or {}
    total_mv = (per_type.get("securities", {}).get("mv") or ZERO) + (per_type.get("BTC", {}).get("mv") or ZERO) + (per_type.get("ETH", {}).get("mv") or ZERO)
    rows = book["rows"] or {}
    va_mv = (per_type.get("BTC", {}).get("mv") or ZERO) + (per_type.get("ETH", {}).get("mv") or ZERO)
    va_lv = (rows.get("lv") or ZERO) - (rows.get("sec_lv") or ZERO)
    by_asset = []
    for key in ("securities", "BTC", "ETH"):
        mv = per_type.get(key, {}).get("mv") or ZERO
        by_asset.append({"asset": key, "market_value": money(mv), "share": ratio(mv, total_mv)})
    return {
        "by_asset": by_asset,
        "market_value": money(total_mv),
        "va_market_value": money(va_mv),
        "va_share_of_market_value": ratio(va_mv, total_mv),
        "va_lending_value": money(va_lv),
        "va_share_of_lending_value": ratio(va_lv, rows.get("lv")),
        "va_share_cap": collateral_policy and str(collateral_policy.va_max_share),
        "link": book["source"]["link"],
    }


def _instruments(*, at: datetime, facility_ids) -> dict:
    """What is pledged as at ``at`` to the facilities the book valued (``facility_ids``, a query of ids; None:
    every facility), per instrument, issuer and sector, from the custody ledger (pledges less releases),
    valued at each instrument's last governed price at or before ``at`` (the price authority's history; an
    instrument with no price by then shows no value). ``at`` is the moment the book was valued, so these
    figures and the collateral by type above stand on the same prices."""
    from django.db.models import Case, OuterRef, Subquery, When

    from lending.collateral.models import CustodyEntry, EntryKind
    from lending.models import Price

    signed = Case(When(kind=EntryKind.RELEASE, then=-F("quantity")), default=F("quantity"), output_field=DecimalField(max_digits=24, decimal_places=8))
    price = Price.objects.filter(asset=OuterRef("instrument__code"), as_of__lte=at).order_by("-as_of", "-id").values("price_hkd")[:1]
    entries = CustodyEntry.objects.filter(kind__in=[EntryKind.PLEDGE, EntryKind.RELEASE], created_at__lte=at)
    if facility_ids is not None:
        entries = entries.filter(facility_id__in=facility_ids)
    rows = list(
        entries
        .values("instrument_id", "instrument__code", "instrument__name_en", "instrument__issuer", "instrument__sector", "instrument__kind")
        .annotate(pledged=Sum(signed), clients=Count("client_id", distinct=True), price=Subquery(price))
        .filter(pledged__gt=0)
    )
    for r in rows:
        r["mv"] = (r["pledged"] * r["price"]).quantize(Decimal("0.01")) if r["price"] is not None else None
    rows.sort(key=lambda r: (-(r["mv"] or ZERO), -r["clients"], r["instrument__code"]))
    total = sum((r["mv"] or ZERO for r in rows), ZERO)
    by_sector: dict[str, dict] = {}
    by_issuer: dict[str, dict] = {}
    for r in rows:
        for key, table in ((r["instrument__sector"] or "—", by_sector), (r["instrument__issuer"] or r["instrument__name_en"], by_issuer)):
            entry = table.setdefault(key, {"name": key, "instruments": 0, "clients": 0, "mv": ZERO})
            entry["instruments"] += 1
            entry["clients"] += r["clients"]
            entry["mv"] += r["mv"] or ZERO

    def top(table):
        return [{"name": e["name"], "instruments": e["instruments"], "clients": e["clients"],
                 "market_value": money(e["mv"]), "share": ratio(e["mv"], total)}
                for e in sorted(table.values(), key=lambda e: (-e["mv"], -e["clients"], e["name"]))[:20]]

    return {
        "by_instrument": [
            {"code": r["instrument__code"], "name": r["instrument__name_en"], "issuer": r["instrument__issuer"], "sector": r["instrument__sector"],
             "kind": r["instrument__kind"], "pledged": f"{r['pledged'].normalize():f}", "clients": r["clients"],
             "price": _opt(r["price"], money), "market_value": _opt(r["mv"], money), "share": ratio(r["mv"] or ZERO, total),
             "link": _url("collateral:instruments", q=r["instrument__code"])} for r in rows[:20]
        ],
        "by_issuer": top(by_issuer),
        "by_sector": top(by_sector),
        "instruments_pledged": len(rows),
        "market_value": money(total),
        "unpriced": [r["instrument__code"] for r in rows if r["price"] is None],
    }


# --- 4. Client concentration -------------------------------------------------------------------------------


def _limits_at(as_of: date, client_ids) -> dict[int, Decimal]:
    """Each client's facility limits as they stood at the end of ``as_of`` (credit-limit history), the
    measure the credit-limits area uses."""
    from lending.servicing.selectors import limit_at

    if not client_ids:
        return {}
    end = datetime.combine(as_of, time.max, tzinfo=HK)
    open_then = Facility.objects.filter(opened_at__lte=end, client_id__in=client_ids).filter(Q(closed_at__isnull=True) | Q(closed_at__gt=end))
    return {r["client_id"]: r["limits"] or ZERO for r in open_then.annotate(limit_then=limit_at(end)).values("client_id").annotate(limits=Sum("limit_then"))}


def _clients(book: dict, *, memberships: list, collateral_policy, as_of: date, limits_total: Decimal) -> dict:
    """Top clients, and top related-client groups counted as one exposure: drawn, limits and lending value
    against the firm's book, and the group's limits against the policy's per-client limits (the SMF
    Guidelines treat a client and its related clients as one)."""
    rows = book["rows"] or {}
    total = rows.get("drawn") or ZERO
    total_lv = rows.get("lv") or ZERO
    by_client = book.get("by_client") or []
    limits = _limits_at(as_of, {r["client_id"] for r in by_client} | {m.client_id for m in memberships})
    top = [
        {"client_id": r["client_id"], "email": r["client__email"], "name": r["client__full_name"], "facilities": r["facilities"],
         "drawn": money(r["drawn"]), "limits": money(limits.get(r["client_id"], ZERO)), "share": ratio(r["drawn"], total),
         "link": _url("lending:staff-facilities", search=r["client__email"])}
        for r in by_client
    ]
    top_share = ratio(sum((Decimal(r["drawn"]) for r in top), ZERO), total)
    client_max = collateral_policy.client_exposure_limit if collateral_policy else None
    share_max = collateral_policy.client_concentration_max if collateral_policy else None
    capacity = collateral_policy.firm_exposure_limit if collateral_policy else None
    per_member = book.get("by_member") or {}
    groups: dict[int, dict] = {}
    for m in memberships:
        g = groups.setdefault(m.group_id, {"id": m.group_id, "reference": m.group.reference, "name": m.group.name, "basis": m.group.basis,
                                           "members": [], "facilities": 0, "drawn": ZERO, "limits": ZERO, "lv": ZERO})
        figures = per_member.get(m.client_id) or {}
        drawn, lv, lim = figures.get("drawn") or ZERO, figures.get("lv") or ZERO, limits.get(m.client_id, ZERO)
        g["members"].append({"client_id": m.client_id, "email": m.client.email, "name": m.client.full_name, "relationship": m.relationship,
                             "since": m.effective_from.isoformat(), "facilities": figures.get("facilities") or 0, "drawn": money(drawn),
                             "limits": money(lim), "lending_value": money(lv), "link": _url("lending:staff-facilities", search=m.client.email)})
        g["facilities"] += figures.get("facilities") or 0
        g["drawn"] += drawn
        g["limits"] += lim
        g["lv"] += lv
    out = []
    for g in sorted(groups.values(), key=lambda g: (-g["drawn"], -g["limits"], g["name"], g["id"])):
        capacity_share = (g["limits"] / capacity).quantize(Decimal("0.0001")) if capacity else None
        out.append({
            "id": g["id"], "reference": g["reference"], "name": g["name"], "basis": g["basis"], "members": g["members"],
            "facilities": g["facilities"], "drawn": money(g["drawn"]), "limits": money(g["limits"]), "lending_value": money(g["lv"]),
            "share_of_loans": ratio(g["drawn"], total), "share_of_limits": ratio(g["limits"], limits_total),
            "share_of_lending_value": ratio(g["lv"], total_lv),
            "capacity_share": _opt(capacity_share, str),
            "within_client_limit": None if client_max is None else g["limits"] <= client_max,
            "within_concentration_max": None if share_max is None or capacity_share is None else capacity_share <= share_max,
            "link": reverse("reporting:group", args=[g["id"]]),
        })
    return {
        "top": top, "top_share": top_share, "total_loans": money(total), "limits_total": money(limits_total), "lending_value_total": money(total_lv),
        "groups": out[: policy.TOP_GROUPS], "groups_in_force": len(out), "group_limit_max": _opt(client_max, money),
        "group_share_max": _opt(share_max, str), "groups_link": _url("reporting:groups"),
    }


# --- 5. Haircuts ---------------------------------------------------------------------------------------------


def _policy_row(p: CollateralPolicy) -> dict:
    return {
        "version": p.version, "status": p.status, "btc": str(p.btc_haircut), "eth": str(p.eth_haircut),
        "securities": {k: str(v) for k, v in sorted((p.securities_haircuts or {}).items())},
        "va_max_share": str(p.va_max_share), "reason": p.reason,
        "proposed_by": p.proposed_by.email, "proposed_at": p.proposed_at.isoformat(),
        "decided_by": p.decided_by.email if p.decided_by else None, "decided_at": p.decided_at.isoformat() if p.decided_at else None,
    }


def _haircuts(collateral_policy, start: datetime, end: datetime) -> dict:
    changes = list(
        CollateralPolicy.objects.filter(Q(proposed_at__range=(start, end)) | Q(decided_at__range=(start, end)))
        .select_related("proposed_by", "decided_by").order_by("version")
    )
    return {
        "in_force": _policy_row(collateral_policy) if collateral_policy else None,
        "changes": [_policy_row(p) for p in changes],
        "link": _url("lending:policies"),
    }


# --- 6. Margin calls -------------------------------------------------------------------------------------------


def _calls(start: datetime, end: datetime) -> dict:
    calls = MarginCall.objects.all()
    counts = calls.aggregate(
        opened=Count("id", filter=Q(opened_at__range=(start, end))),
        met=Count("id", filter=Q(state=CallState.MET, met_at__range=(start, end))),
        escalated=Count("id", filter=Q(escalated_at__range=(start, end))),
        closed_out=Count("id", filter=Q(state=CallState.CLOSED_OUT, resolved_at__range=(start, end))),
        waived=Count("id", filter=Q(state=CallState.WAIVED, resolved_at__range=(start, end))),
        shortfall_opened=Coalesce(Sum("shortfall_at_open", filter=Q(opened_at__range=(start, end))), Value(ZERO), output_field=MONEY),
    )
    still_open = Q(opened_at__lte=end) & ~Q(met_at__lte=end) & ~Q(resolved_at__lte=end)
    open_at_end = list(calls.filter(still_open).values_list("id", "opened_at", "shortfall"))
    ages = []
    for low, high, label in AGE_BUCKETS:
        ids = [i for i, opened, _s in open_at_end if (end - opened).days >= low and (high is None or (end - opened).days <= high)]
        ages.append({"days": label, "count": len(ids)})
    met = list(calls.filter(state=CallState.MET, met_at__range=(start, end)).values_list("opened_at", "met_at"))
    hours = [(m - o).total_seconds() / 3600 for o, m in met]
    opened_list = list(calls.filter(opened_at__range=(start, end)).select_related("client").order_by("opened_at", "id")[:50])
    link = _url("risk:calls", state="")
    return {
        **{k: counts[k] for k in ("opened", "met", "escalated", "closed_out", "waived")},
        "shortfall_opened": money(counts["shortfall_opened"]),
        "open_at_end": len(open_at_end),
        "shortfall_open_at_end": money(sum((s for _i, _o, s in open_at_end), ZERO)),
        "ages": ages,
        "average_hours_to_meet": f"{sum(hours) / len(hours):.1f}" if hours else None,
        "opened_calls": [
            {"id": c.pk, "client": c.client.email, "state": c.state, "opened_at": c.opened_at.isoformat(),
             "shortfall_at_open": money(c.shortfall_at_open), "link": reverse("risk:call", args=[c.pk])} for c in opened_list
        ],
        "link": link,
    }


# --- 7. Stress testing ----------------------------------------------------------------------------------------


def _stress(start: datetime, end: datetime) -> dict:
    # The month's stored results: those run in the period, and the month's scheduled report (by its period).
    month = start.strftime("%Y-%m")
    reports = list(StressReport.objects.filter(Q(created_at__range=(start, end)) | Q(kind=StressReport.Kind.MONTHLY, period=month))
                   .order_by("created_at", "id"))
    rows = []
    for r in reports:
        s = (r.result or {}).get("summary", {})
        rows.append({
            "id": r.pk, "kind": r.kind, "period": r.period, "created_at": r.created_at.isoformat(),
            "btc_shock": str(r.btc_shock), "eth_shock": str(r.eth_shock), "securities_shock": str(r.securities_shock),
            "facilities": s.get("facilities"), "margin_call": s.get("margin_call"), "close_out": s.get("close_out"),
            "newly_in_call": s.get("newly_in_call"), "shortfall": s.get("shortfall"), "drawn": s.get("drawn"),
            "link": reverse("risk:stress-report", args=[r.pk]),
        })
    return {"reports": rows, "monthly_done": any(r["kind"] == StressReport.Kind.MONTHLY and r["period"] == month for r in rows), "link": _url("risk:stress-reports")}


# --- Complaints and deviations (DESIGN: in the monthly pack) -----------------------------------------------


def _complaints(start: datetime, end: datetime) -> dict:
    qs = Complaint.objects.all()
    counts = qs.aggregate(
        received=Count("id", filter=Q(received_at__range=(start, end))),
        acknowledged=Count("id", filter=Q(acknowledged_at__range=(start, end))),
        acknowledged_late=Count("id", filter=Q(acknowledged_at__range=(start, end), acknowledged_at__gt=F("acknowledge_due"))),
        escalated=Count("id", filter=Q(escalated_at__range=(start, end))),
        closed=Count("id", filter=Q(closed_at__range=(start, end))),
        closed_late=Count("id", filter=Q(closed_at__range=(start, end), closed_at__gt=F("answer_due"))),
        open_at_end=Count("id", filter=Q(received_at__lte=end) & (Q(closed_at__isnull=True) | Q(closed_at__gt=end))),
        overdue_at_end=Count("id", filter=Q(received_at__lte=end, answer_due__lt=end) & (Q(closed_at__isnull=True) | Q(closed_at__gt=end))),
    )
    return {**counts, "link": _url("reporting:complaints", state=""), "open_link": _url("reporting:complaints", state="active")}


def _deviations(as_of: date) -> list[dict]:
    end = datetime.combine(as_of, time.max, tzinfo=HK)
    rows = Deviation.objects.filter(decided_at__lte=end, state__in=[DeviationState.APPROVED, DeviationState.RETIRED]).filter(
        Q(retired_at__isnull=True) | Q(retired_at__gt=end)).select_related("decided_by").order_by("id")
    return [
        {"id": d.pk, "reference": d.reference, "area": d.area, "benchmark": d.benchmark, "departure": d.departure,
         "compensating_control": d.compensating_control, "approved_by": d.decided_by.email if d.decided_by else None,
         "approved_at": d.decided_at.isoformat() if d.decided_at else None, "review_date": d.review_date.isoformat(),
         "review_overdue": d.review_date < as_of, "link": reverse("reporting:deviation", args=[d.pk])}
        for d in rows
    ]
