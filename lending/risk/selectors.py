"""Reads for the risk engine. Every whole-book read is one aggregate SQL statement (constant queries).

Public contracts other apps may call:
``facility_risk(facility_id=)``, ``facility_risk_for_client(user=, facility_id=)``, ``open_call_for_facility(facility_id=)``,
``risk_numbers()``, ``board()``, ``stress_presets()``, ``stress_test(btc=, eth=, securities=)``.
"""

# ruff: noqa: S608 - SQL text here is built only from constants in this module; every value is a bound parameter.

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from lending import valuation
from lending.models import LIVE_STATES, Band, PolicyStatus
from portal.errors import PortalError

from . import book
from .models import (
    OPEN_CALL_STATES,
    AssetVolatility,
    CallState,
    MarginCall,
    PriceAlarm,
    PriceOverride,
    PriceQuote,
    PriceSource,
    RiskPolicy,
    StressReport,
)

# Used until a risk policy is approved (shown as "defaults" on the pages).
DEFAULT_NUMBERS = {
    "source_deviation_max": Decimal("0.0200"),
    "volatility_alarm_level": Decimal("0.9000"),
    "stress_btc_shock": Decimal("-0.5000"),
    "stress_eth_shock": Decimal("-0.6000"),
    "stress_securities_shock": Decimal("-0.3000"),
    "quote_band_max": Decimal("0.2500"),
    "override_justification_level": Decimal("0.1000"),
}
# The fixed scenarios of the stress page (shocks as fractions); the first preset is the risk policy's (``stress_presets``).
FIXED_PRESETS = [
    {"key": "va_crash", "label": gettext_lazy("VA crash (BTC −50%, ETH −60%)"), "btc": "-0.50", "eth": "-0.60", "securities": "0"},
    {"key": "equity", "label": gettext_lazy("Equity crash (securities −30%)"), "btc": "0", "eth": "0", "securities": "-0.30"},
    {"key": "mild", "label": gettext_lazy("Bad week (BTC −15%, ETH −20%, securities −5%)"), "btc": "-0.15", "eth": "-0.20", "securities": "-0.05"},
]


def jsonable(value):
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def risk_policy_current() -> RiskPolicy | None:
    return RiskPolicy.objects.filter(status=PolicyStatus.APPROVED).first()


def risk_policies() -> QuerySet[RiskPolicy]:
    return RiskPolicy.objects.select_related("proposed_by", "decided_by").order_by("-version")


def risk_numbers() -> dict:
    policy = risk_policy_current()
    if policy is None:
        return dict(DEFAULT_NUMBERS) | {"version": None}
    return {name: getattr(policy, name) for name in RiskPolicy.NUMBERS} | {"version": policy.version}


def _inputs():
    from .revaluation import current_inputs

    return current_inputs()


# --- One facility (client view) ---------------------------------------------------------------------


def _fall_to_call(*, a, b, c, btc, eth, drawn, level) -> dict:
    """How far BTC, ETH (or both together) can fall before a margin call (lending.valuation owns the arithmetic)."""
    from lending.valuation import price_falls_to_level

    return price_falls_to_level(securities_lv=a, btc_weight=b, eth_weight=c, btc=btc, eth=eth, drawn=drawn, level=level)


def _pct(level) -> str:
    return f"{level * 100:.0f}%"


def _open_facilities_sql(where: str) -> tuple[str, dict]:
    """The engine's valuation SQL over open facilities (``lending.models.LIVE_STATES``: active or suspended), not
    the active ones alone the ticks band; with the parameters naming the states."""
    states = {f"live{i}": str(state) for i, state in enumerate(LIVE_STATES)}
    sql = book.live_sql(where).replace("WHERE f.state = %(active)s", f"WHERE f.state IN ({', '.join(f'%({k})s' for k in states)})", 1)
    return sql, states


def facility_risk(*, facility_id: int, client_id: int | None = None) -> dict | None:
    """Live valuation of one facility at the current prices, its distance to a margin call and its open call.

    Four queries (policy, prices, the valuation, the open call).
    """
    policy, prices = _inputs()
    if policy is None:
        return None
    scenario = book.Scenario.current(policy=policy, prices=prices)
    where = "AND f.id = %(fid)s" + (" AND f.client_id = %(cid)s" if client_id is not None else "")
    sql, states = _open_facilities_sql(where)
    rows = book.fetch(f"SELECT * FROM ({sql}) v", scenario.params() | states | {"fid": facility_id, "cid": client_id})
    if not rows:
        return None
    row = rows[0]
    d = {k: (Decimal(str(v)) if isinstance(v, float | int) and k not in ("facility_id", "client_id", "has_call") else v) for k, v in row.items()}
    btc, eth = Decimal(prices.get("BTC") or 0), Decimal(prices.get("ETH") or 0)
    a = d["sec_lv"]
    b = (Decimal(str(d["btc_w"])) if d["btc_w"] is not None else Decimal("0"))
    c = (Decimal(str(d["eth_w"])) if d["eth_w"] is not None else Decimal("0"))
    cap = a * scenario.cap
    va_uncapped = b * btc + c * eth
    call = MarginCall.objects.filter(facility_id=facility_id, state__in=OPEN_CALL_STATES).first()
    util = Decimal(d["util"]).quantize(Decimal("0.0001"))
    lending_value, drawn = valuation.money(Decimal(d["lv"])), valuation.money(Decimal(d["drawn"]))
    return {
        "facility_id": row["facility_id"],
        "client_id": row["client_id"],
        "securities_market_value": valuation.money(Decimal(d["sec_mv"])),
        "securities_lending_value": valuation.money(Decimal(a)),
        "btc_quantity": Decimal(d["btc_qty"]).quantize(Decimal("0.00000001")),
        "eth_quantity": Decimal(d["eth_qty"]).quantize(Decimal("0.00000001")),
        "btc_market_value": valuation.money(Decimal(d["btc_mv"])),
        "eth_market_value": valuation.money(Decimal(d["eth_mv"])),
        "va_market_value": valuation.money(Decimal(d["va_mv"])),
        "market_value": valuation.money(Decimal(d["mv"])),
        "va_lending_value": valuation.money(min(va_uncapped, cap)),
        "va_capped": va_uncapped > cap,
        "lending_value": lending_value,
        "drawn_balance": drawn,
        "utilisation": util,
        "band": row["band"],
        "band_label": Band(row["band"]).label,
        "in_call": util > policy.margin_call_level,
        "watch_pct": _pct(policy.watch_level), "margin_call_pct": _pct(policy.margin_call_level), "close_out_pct": _pct(policy.close_out_level),
        "watch_level": policy.watch_level,
        "margin_call_level": policy.margin_call_level,
        "close_out_level": policy.close_out_level,
        "prices": {"BTC": btc, "ETH": eth},
        "fall_to_call": _fall_to_call(a=a, b=b, c=c, btc=btc, eth=eth, drawn=Decimal(d["drawn"]), level=policy.margin_call_level),
        "open_call": call,
        "gauge": gauge(util, policy),
        # Repay this much, or add one of these, to be back at the margin-call level at today's prices.
        "cure": valuation.cure(drawn=drawn, securities_lending_value=a, va_lending_value_uncapped=va_uncapped,
                               max_share=policy.va_max_share, margin_call=policy.margin_call_level, prices={"BTC": btc, "ETH": eth},
                               haircuts={"BTC": policy.va_haircut("BTC"), "ETH": policy.va_haircut("ETH")}),
    }


def _live_rows(*, policy, prices, facility_ids: list[int], client_id: int | None = None) -> dict[int, dict]:
    """The given facilities (active or suspended) valued now from the engine's stored coefficients, with
    the cure of each at today's prices (one query, whatever the number of ids)."""
    if not facility_ids:
        return {}
    scenario = book.Scenario.current(policy=policy, prices=prices)
    names = {f"f{i}": int(fid) for i, fid in enumerate(facility_ids)}
    where = f"AND f.id IN ({', '.join('%(' + k + ')s' for k in names)})" + (" AND f.client_id = %(cid)s" if client_id is not None else "")
    sql, states = _open_facilities_sql(where)
    names |= states
    btc, eth = Decimal(prices.get("BTC") or 0), Decimal(prices.get("ETH") or 0)
    haircuts = {"BTC": policy.va_haircut("BTC"), "ETH": policy.va_haircut("ETH")}
    result = {}
    for row in book.fetch(f'SELECT v.*, f."limit" AS f_limit, f.state AS f_state FROM ({sql}) v JOIN lending_facility f ON f.id = v.facility_id',
                          scenario.params() | names | {"cid": client_id}):
        lv = valuation.money(Decimal(str(row["lv"])))
        drawn = valuation.money(Decimal(str(row["drawn"])))
        a = Decimal(str(row["sec_lv"] or 0))
        va = Decimal(str(row["btc_w"] or 0)) * btc + Decimal(str(row["eth_w"] or 0)) * eth
        result[row["facility_id"]] = {
            "facility_id": row["facility_id"], "state": row["f_state"], "limit": valuation.money(Decimal(str(row["f_limit"]))),
            "lending_value": lv, "drawn_balance": drawn, "utilisation": Decimal(str(row["util"])).quantize(Decimal("0.0001")),
            "band": row["band"], "band_label": Band(row["band"]).label,
            "available": valuation.available(limit=Decimal(str(row["f_limit"])), lending_value=lv, drawn=drawn),
            "cure": valuation.cure(drawn=drawn, securities_lending_value=a, va_lending_value_uncapped=va, max_share=policy.va_max_share,
                                   margin_call=policy.margin_call_level, prices={"BTC": btc, "ETH": eth}, haircuts=haircuts),
        }
    return result


# How often a page polls the live figures (the engine revalues on every new reference price).
LIVE_POLL_MS = 5000


def call_contact() -> dict:
    """What every margin call shows beside the account officer: the margin desk's phone; the poll interval."""
    from django.conf import settings

    return {"desk_phone": getattr(settings, "MARGIN_DESK_PHONE", ""), "live_every_ms": LIVE_POLL_MS}


def client_calls(*, user, facility_id: int | None = None, call_id: int | None = None) -> list[dict]:
    """The client's margin calls as the client sees them: open ones (or the one ``call_id``, in any state),
    each with its facility valued now, what cures it, the officer to contact and what the client has done
    about it (repayment notices, top-up requests since it opened). Constant queries: five at most."""
    from lending.servicing import selectors as servicing_selectors

    qs = MarginCall.objects.filter(client=user).select_related("facility__application__decided_by").order_by("opened_at", "id")
    qs = qs.filter(pk=call_id) if call_id is not None else qs.filter(state__in=OPEN_CALL_STATES)
    if facility_id is not None:
        qs = qs.filter(facility_id=facility_id)
    calls = list(qs[:10])
    if not calls:
        return []
    policy, prices = _inputs()
    live = _live_rows(policy=policy, prices=prices, facility_ids=[c.facility_id for c in calls], client_id=user.pk) if policy else {}
    responses = servicing_selectors.call_responses(facility_ids=[c.facility_id for c in calls], since=min(c.opened_at for c in calls))
    result = []
    for c in calls:
        officer = c.facility.application.decided_by
        result.append({
            "call": c, "live": live.get(c.facility_id), "officer": officer,
            "responses": [r for r in responses if r.facility_id == c.facility_id and r.requested_at >= c.opened_at],
            "margin_call_pct": _pct(policy.margin_call_level) if policy else "",
        })
    return result


def client_book(*, user) -> dict:
    """The client's live facilities valued now, and their totals: drawn, available, utilisation across
    them (drawn ÷ lending value of all of them). Constant queries (four)."""
    from lending.models import Facility, FacilityState

    facilities = list(Facility.objects.filter(client=user).exclude(state=FacilityState.CLOSED).select_related("application__decided_by")
                      .order_by("-id")[:20])
    policy, prices = (_inputs() if facilities else (None, {}))
    live = _live_rows(policy=policy, prices=prices, facility_ids=[f.pk for f in facilities], client_id=user.pk) if policy else {}
    drawn = sum((f.drawn_balance for f in facilities), Decimal("0"))
    lending_value = sum((live[f.pk]["lending_value"] for f in facilities if f.pk in live), Decimal("0"))
    # Only an active facility without an open call can be drawn on.
    available = sum((live[f.pk]["available"] for f in facilities
                     if f.pk in live and f.state == FacilityState.ACTIVE and not f.has_open_margin_call), Decimal("0"))
    rows = [{"facility": f, "live": live.get(f.pk)} for f in facilities]
    calls = list(MarginCall.objects.filter(client=user, state__in=OPEN_CALL_STATES).order_by("cure_deadline")
                 .values("id", "facility_id", "cure_deadline")) if any(f.has_open_margin_call for f in facilities) else []
    for c in calls:
        c["reference"] = f"MC-{c['id']:06d}"
    return {
        "rows": rows, "calls": calls, "drawn": drawn, "lending_value": lending_value, "available": valuation.money(available),
        "utilisation": valuation.utilisation(drawn=drawn, lending_value=lending_value) if facilities else None,
        "policy": policy,
    }


def facility_risk_for_client(*, user, facility_id: int) -> dict | None:
    """The client's own facility only (None for anyone else's)."""
    return facility_risk(facility_id=facility_id, client_id=user.pk)


def open_call_for_facility(*, facility_id: int) -> MarginCall | None:
    return MarginCall.objects.filter(facility_id=facility_id, state__in=OPEN_CALL_STATES).first()


def gauge(util: Decimal, policy) -> dict:
    """Geometry of the semicircular utilisation gauge (0 … 150%), for inline SVG."""
    import math

    top = Decimal("1.5")

    def point(value, radius=80):
        frac = float(min(max(value, 0), top) / top)
        angle = math.pi * (1 - frac)
        return round(100 + radius * math.cos(angle), 2), round(100 - radius * math.sin(angle), 2)

    def arc(lo, hi):
        (x1, y1), (x2, y2) = point(lo), point(hi)
        return f"M {x1} {y1} A 80 80 0 0 1 {x2} {y2}"

    nx, ny = point(util, 70)
    return {
        "healthy": arc(Decimal("0"), policy.watch_level),
        "watch": arc(policy.watch_level, policy.margin_call_level),
        "call": arc(policy.margin_call_level, policy.close_out_level),
        "close": arc(policy.close_out_level, top),
        "needle_x": nx, "needle_y": ny,
        "utilisation": util,
    }


def calls_for_client(*, user) -> QuerySet[MarginCall]:
    return MarginCall.objects.filter(client=user).select_related("facility").order_by("-opened_at", "-id")


# --- Margin calls (staff) --------------------------------------------------------------------------------


def margin_calls(*, state: str = "", search: str = "") -> QuerySet[MarginCall]:
    qs = MarginCall.objects.select_related("client", "facility", "proposed_by", "resolved_by")
    if state == "open_all":
        qs = qs.filter(state__in=OPEN_CALL_STATES)
    elif state:
        qs = qs.filter(state=state)
    if search:
        term = search.strip()
        if term.upper().startswith("MC-") and term[3:].isascii() and term[3:].isdigit() and len(term) <= 15:
            qs = qs.filter(pk=int(term[3:]))
        else:
            qs = qs.filter(client__email__icontains=term)
    return qs.order_by("opened_at", "id")


def margin_call(*, call_id: int) -> MarginCall:
    return MarginCall.objects.select_related("client", "facility", "facility__application__decided_by", "proposed_by", "resolved_by").get(pk=call_id)


def margin_call_counts() -> dict[str, int]:
    from django.db.models import Count

    return {r["state"]: r["n"] for r in MarginCall.objects.values("state").annotate(n=Count("id"))}


# --- Prices -----------------------------------------------------------------------------------------------


def latest_quotes(*, now) -> list[PriceQuote]:
    """The newest quote per active source and asset (two queries)."""
    from django.db.models import Max, Q

    newest = (
        PriceQuote.objects.filter(source__active=True, as_of__lte=now + timedelta(minutes=5))
        .values("source_id", "asset").annotate(latest=Max("as_of"))
    )
    match = Q(pk__in=[])
    for row in newest:
        match |= Q(source_id=row["source_id"], asset=row["asset"], as_of=row["latest"])
    rows = PriceQuote.objects.filter(match).select_related("source").order_by("asset", "source__code", "-id")
    seen, result = set(), []
    for q in rows:
        if (q.source_id, q.asset) not in seen:
            seen.add((q.source_id, q.asset))
            result.append(q)
    return result


def weighted_median(pairs: list[tuple[Decimal, Decimal]], *, quantum: Decimal = Decimal("0.01")) -> Decimal | None:
    """The weighted median of (price, weight), to ``quantum`` (the asset's quoting step, ``lending.models.price_quantum``).
    With equal weights it is the ordinary median (the mean of the two middle prices when they split the weight exactly
    in half)."""
    pairs = sorted((Decimal(p), Decimal(w)) for p, w in pairs if w and w > 0)
    if not pairs:
        return None
    half, running = sum(w for _p, w in pairs) / 2, Decimal("0")
    for i, (price, weight) in enumerate(pairs):
        running += weight
        if running > half:
            value = price
            break
        if running == half:
            value = (price + pairs[i + 1][0]) / 2
            break
    return value.quantize(quantum, rounding="ROUND_HALF_UP")


def _max_age_minutes() -> int:
    from lending import selectors as lending_selectors

    policy = lending_selectors.policy_current()
    return policy.price_max_age_minutes if policy else 15


def governed_prices(*, now=None, quotes=None) -> dict[str, Decimal]:
    """The weighted median of the fresh quotes per asset, or the current reference where no source is
    fresh: the price a manual override is measured against."""
    from lending import selectors as lending_selectors

    now = now or timezone.now()
    max_age = timedelta(minutes=_max_age_minutes())
    quotes = latest_quotes(now=now) if quotes is None else quotes
    result = {a: q.price_hkd for a, q in lending_selectors.prices_current().items()}
    for asset in ("BTC", "ETH"):
        median = weighted_median([(q.price_hkd, q.source.weight) for q in quotes if q.asset == asset and q.as_of >= now - max_age])
        if median:
            result[asset] = median
    return result


def price_overview(*, now=None) -> dict:
    """Reference prices, each source's latest quote, overrides, open alarms and volatility (constant queries)."""
    from lending import selectors as lending_selectors

    now = now or timezone.now()
    max_age = _max_age_minutes()
    current = lending_selectors.prices_current(max_age_minutes=max_age, now=now)
    quotes = latest_quotes(now=now)
    numbers = risk_numbers()
    medians = {}
    for asset in ("BTC", "ETH"):
        median = weighted_median([(q.price_hkd, q.source.weight) for q in quotes if q.asset == asset and q.as_of >= now - timedelta(minutes=max_age)])
        if median:
            medians[asset] = median
    rows = []
    for q in quotes:
        med = medians.get(q.asset)
        rows.append({
            "quote": q, "fresh": q.as_of >= now - timedelta(minutes=max_age),
            "deviation": (abs(q.price_hkd - med) / med).quantize(Decimal("0.0001")) if med else None,
        })
    overrides = list(PriceOverride.objects.select_related("set_by", "approved_by", "cancelled_by").order_by("-set_at")[:20])
    for o in overrides:
        o.is_in_force = o.in_force(now)
    return {
        "current": current,
        "medians": medians,
        "max_age_minutes": max_age,
        "numbers": numbers,
        "quotes": rows,
        "sources": list(PriceSource.objects.order_by("code")),
        "overrides": overrides,
        "proposed_overrides": [o for o in overrides if o.status == "proposed"],
        "alarms": list(PriceAlarm.objects.filter(cleared_at__isnull=True).select_related("source").order_by("-raised_at")),
        "volatility": {v.asset: v for v in AssetVolatility.objects.all()},
        "now": now,
    }


def price_alarms(*, include_cleared: bool = False) -> QuerySet[PriceAlarm]:
    qs = PriceAlarm.objects.select_related("source").order_by("-raised_at", "-id")
    return qs if include_cleared else qs.filter(cleared_at__isnull=True)


def quote_history(*, asset: str = "") -> QuerySet[PriceQuote]:
    qs = PriceQuote.objects.select_related("source", "entered_by").order_by("-as_of", "-id")
    return qs.filter(asset=asset) if asset else qs


# --- Risk board ------------------------------------------------------------------------------------------

BUCKETS = [(0, 50), (50, 70), (70, 80), (80, 90), (90, 100), (100, 110), (110, 130), (130, None)]


# How many of the facilities nearest their thresholds the book summary keeps (the board pages through them).
NEAREST_KEPT = 100


def book_figures(*, policy, prices, nearest_limit: int, nearest_offset: int = 0) -> dict:
    """The board's whole-book figures valued live from the engine's per-facility coefficients: utilisation
    distribution, bands, totals, VA shares, the facilities nearest their thresholds (highest utilisation first),
    exposure by client and by asset. Three aggregate statements, each a pass over the whole book: the engine's
    book summary takes them once a minute; the board reads that rather than running them per request."""
    params = book.Scenario.current(policy=policy, prices=prices).params()
    live = book.live_sql()
    # 1. Distribution of utilisation and book totals in one pass.
    cases = " ".join(
        f"WHEN v.util * 100 >= {lo}" + (f" AND v.util * 100 < {hi}" if hi is not None else "") + f" THEN {i}"
        for i, (lo, hi) in enumerate(BUCKETS)
    )
    dist = book.fetch(
        f"""SELECT CASE {cases} ELSE 0 END AS bucket, v.band AS band, COUNT(*) AS n, SUM(v.drawn) AS drawn, SUM(v.lv) AS lv,
                   SUM(v.mv) AS mv, SUM(v.sec_mv) AS sec_mv, SUM(v.btc_mv) AS btc_mv, SUM(v.eth_mv) AS eth_mv,
                   SUM(v.sec_lv) AS sec_lv, SUM(v.va_lv) AS va_lv, SUM(v.btc_qty) AS btc_qty, SUM(v.eth_qty) AS eth_qty
            FROM ({live}) v GROUP BY 1, 2""",
        params,
    )
    counts = [0] * len(BUCKETS)
    bands = {b: 0 for b in (book.HEALTHY, book.WATCH, book.MARGIN_CALL, book.CLOSE_OUT)}
    totals = dict.fromkeys(("drawn", "lv", "mv", "sec_mv", "btc_mv", "eth_mv", "sec_lv", "va_lv", "btc_qty", "eth_qty"), Decimal("0"))
    for r in dist:
        counts[int(r["bucket"])] += r["n"]
        bands[r["band"]] = bands.get(r["band"], 0) + r["n"]
        for k in totals:
            totals[k] += Decimal(str(r[k] or 0))
    total_n = sum(counts)
    peak = max(counts) if counts else 0
    histogram = []
    for i, (lo, hi) in enumerate(BUCKETS):
        histogram.append({
            "label": f"{lo}–{hi}%" if hi is not None else f"≥{lo}%", "count": counts[i],
            "height": round(counts[i] / peak * 100, 1) if peak else 0,
            "tone": "ok" if (hi or 999) <= 90 else ("warn" if (hi or 999) <= 100 else "bad"),
        })
    result = {
        "histogram": histogram, "bands": bands, "facilities": total_n,
        "totals": {k: valuation.money(v) for k, v in totals.items()},
        "va_share_market": (totals["btc_mv"] + totals["eth_mv"]) / totals["mv"] if totals["mv"] else Decimal("0"),
        "va_share_lending": totals["va_lv"] / totals["lv"] if totals["lv"] else Decimal("0"),
        "book_utilisation": totals["drawn"] / totals["lv"] if totals["lv"] else Decimal("0"),
    }
    # 2. Nearest their thresholds: highest utilisation first.
    nearest = book.fetch(
        f"""SELECT v.facility_id, v.client_id, u.email, u.full_name, v.drawn, v.lv, v.util, v.band, v.old_band, v.has_call
            FROM ({live}) v JOIN portal_user u ON u.id = v.client_id
            ORDER BY v.util DESC, v.facility_id LIMIT %(limit)s OFFSET %(offset)s""",
        params | {"limit": nearest_limit, "offset": nearest_offset},
    )
    for r in nearest:
        r["util"] = Decimal(str(r["util"])).quantize(Decimal("0.0001"))
        r["drawn"], r["lv"] = Decimal(str(r["drawn"] or 0)), Decimal(str(r["lv"] or 0))
        r["headroom"] = (policy.margin_call_level - r["util"]) if r["util"] <= policy.margin_call_level else Decimal("0")
        r["reference"] = f"FAC-{r['facility_id']:06d}"
        r["has_call"] = bool(r["has_call"])
    result["nearest"] = nearest
    # 3. Exposure concentration by client: top 10 by drawn balance.
    result["by_client"] = book.fetch(
        f"""SELECT v.client_id, u.email, u.full_name, COUNT(*) AS facilities, SUM(v.drawn) AS drawn, SUM(v.lv) AS lv,
                   SUM(v.btc_mv + v.eth_mv) AS va_mv
            FROM ({live}) v JOIN portal_user u ON u.id = v.client_id
            GROUP BY v.client_id, u.email, u.full_name ORDER BY SUM(v.drawn) DESC, v.client_id LIMIT 10""",
        params,
    )
    for r in result["by_client"]:
        for k in ("drawn", "lv", "va_mv"):
            r[k] = Decimal(str(r[k] or 0))
        r["share"] = r["drawn"] / totals["drawn"] if totals["drawn"] else Decimal("0")
        r["share_pct"] = round(float(r["share"]) * 100, 1)
    # 4. Exposure by collateral asset.
    mv = totals["mv"] or Decimal("1")
    result["by_asset"] = [
        {"asset": "Securities", "market_value": totals["sec_mv"], "share_pct": round(float(totals["sec_mv"] / mv) * 100, 1), "quantity": None},
        {"asset": "BTC", "market_value": totals["btc_mv"], "share_pct": round(float(totals["btc_mv"] / mv) * 100, 1), "quantity": totals["btc_qty"]},
        {"asset": "ETH", "market_value": totals["eth_mv"], "share_pct": round(float(totals["eth_mv"] / mv) * 100, 1), "quantity": totals["eth_qty"]},
    ]
    return result


def summary_encode(data):
    """JSON for the book summary, Decimals kept exact (tagged) so the board reads back what was computed."""
    if isinstance(data, Decimal):
        return {"__d": str(data)}
    if isinstance(data, dict):
        return {k: summary_encode(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [summary_encode(v) for v in data]
    return data


def summary_decode(data):
    if isinstance(data, dict):
        if len(data) == 1 and "__d" in data:
            return Decimal(data["__d"])
        return {k: summary_decode(v) for k, v in data.items()}
    if isinstance(data, list):
        return [summary_decode(v) for v in data]
    return data


def book_summary(*, policy_version: int | None = None):
    """The engine's latest book summary (one row), or None when there is none for ``policy_version``."""
    from .models import BookSummary

    summary = BookSummary.objects.order_by("-taken_at", "-id").first()
    if summary is None or (policy_version is not None and summary.policy_version != policy_version):
        return None
    return summary


def board(*, page: int = 1, page_size: int = 20, now=None) -> dict:
    """Everything on the risk board in a fixed number of queries, none of which grows with the book: the
    whole-book figures come from the engine's book summary (taken after each minute's full revaluation);
    margin calls, alarms and volatility are read live. Before the first summary (a new installation, a new
    policy version) the figures are valued live, a page at a time."""
    now = now or timezone.now()
    policy, prices = _inputs()
    numbers = risk_numbers()
    result = {"policy": policy, "prices": prices, "numbers": numbers, "now": now}
    if policy is None:
        return result | {"empty": True}
    page = max(1, int(page))
    summary = book_summary(policy_version=policy.version)
    if summary is not None:
        data = dict(summary.data)
        kept = data.pop("nearest")
        result.update(summary_decode(data))
        result["nearest"] = summary_decode(kept[(page - 1) * page_size: page * page_size])  # only the rows shown
        result["pages"] = max(1, -(-min(len(kept), result["facilities"]) // page_size))
        result["as_of"] = summary.taken_at
        result["valued_at_prices"] = {"BTC": summary.btc_price, "ETH": summary.eth_price}
    else:
        result.update(book_figures(policy=policy, prices=prices, nearest_limit=page_size, nearest_offset=(page - 1) * page_size))
        result["pages"] = max(1, -(-result["facilities"] // page_size))
        result["concentration"] = None  # the panel values it live
        result["valued_at_prices"] = {"BTC": prices.get("BTC"), "ETH": prices.get("ETH")}
    result["page"] = page
    # 5. Open calls by state and by age (one grouped query) and the oldest few.
    ages = [(0, 1), (1, 2), (2, 5), (5, None)]
    age_cases = " ".join(
        f"WHEN opened_at > %(t{i})s THEN {i}" for i, (lo, _hi) in enumerate(ages[:-1])
    )
    age_params = {f"t{i}": book.dt(now - timedelta(days=hi)) for i, (_lo, hi) in enumerate(ages[:-1])}
    age_counts = dict.fromkeys(range(len(ages)), 0)
    call_states: dict[str, int] = {}
    for r in book.fetch(
        f"SELECT state, CASE {age_cases} ELSE {len(ages) - 1} END AS bucket, COUNT(*) AS n FROM risk_margincall "
        f"WHERE state IN ('{CallState.OPEN}', '{CallState.ESCALATED}') GROUP BY 1, 2",
        age_params,
    ):
        age_counts[int(r["bucket"])] += r["n"]
        call_states[r["state"]] = call_states.get(r["state"], 0) + r["n"]
    result["call_states"] = call_states
    peak_age = max(age_counts.values()) or 1
    result["call_ages"] = [
        {"label": f"{lo}–{hi} d" if hi else f"≥{lo} d", "count": age_counts[i], "width": round(age_counts[i] / peak_age * 100, 1)}
        for i, (lo, hi) in enumerate(ages)
    ]
    result["oldest_calls"] = list(
        MarginCall.objects.filter(state__in=OPEN_CALL_STATES).select_related("client", "facility").order_by("opened_at", "id")[:10]
    )
    # 6. Price alarms and volatility.
    result["alarms"] = list(PriceAlarm.objects.filter(cleared_at__isnull=True).order_by("-raised_at")[:20])
    result["volatility"] = {v.asset: v for v in AssetVolatility.objects.all()}
    return result


# --- Stress tests ----------------------------------------------------------------------------------------


# The shocks as an error names them, in the reader's language.
_SHOCK_NAMES = {"btc": lambda: "BTC", "eth": lambda: "ETH", "securities": lambda: gettext("securities")}


def stress_presets() -> list[dict]:
    """The stress scenarios offered to staff, shocks as fractions (text, as the API gives them). The first,
    ``policy``, is the monthly SMF scenario of the risk policy in force, the one ``services.stress_monthly_report``
    runs (the defaults until a risk policy is approved); then the fixed ones. One query."""
    from .templatetags.risk_tags import shock

    numbers = risk_numbers()
    shocks = {name: str(numbers[f"stress_{name}_shock"]) for name in ("btc", "eth", "securities")}
    named = {name: shock(value) for name, value in shocks.items()}
    if numbers["version"]:
        label = gettext("SMF monthly, risk policy v%(version)s (BTC %(btc)s, ETH %(eth)s, securities %(securities)s)") % (
            named | {"version": numbers["version"]})
    else:
        label = gettext("SMF monthly, default scenario (BTC %(btc)s, ETH %(eth)s, securities %(securities)s)") % named
    return [{"key": "policy", "label": label} | shocks, *FIXED_PRESETS]


def stress_shocks_clean(*, btc, eth, securities, percent: bool = False) -> dict:
    """The three shocks as fractions to 4 places, each between −1 and +1. ``percent``: given as percentages (the
    stress page, like the policy form: -50 is a 50% fall); otherwise as fractions (the API: -0.50)."""
    clean = {}
    for name, value in (("btc", btc), ("eth", eth), ("securities", securities)):
        try:
            number = Decimal(str(value if value not in (None, "") else 0).strip().removesuffix("%").strip() or 0)
        except (InvalidOperation, ValueError):
            example = gettext("Enter a percentage such as -50.") if percent else gettext("Enter a number such as -0.50.")
            raise PortalError("validation_error", gettext("The %(name)s shock must be a number.") % {"name": _SHOCK_NAMES[name]()},
                              {name: [example]}) from None
        if number.is_finite() and percent:
            number = number / 100
        if not number.is_finite() or number < -1 or number > 1:
            raise PortalError("validation_error", gettext("The %(name)s shock must be between −100%% and +100%%.") % {"name": _SHOCK_NAMES[name]()},
                              {name: [gettext("Between -100 and 100.") if percent else gettext("Between -1 and 1.")]})
        clean[name] = number.quantize(Decimal("0.0001"))
    return clean


def shock_as_percent(value) -> str:
    """A shock given as a fraction, written as the stress page takes it: "-0.5000" → "-50", "-0.125" → "-12.5"
    (the stress pages' percentage, ``risk_tags.shock``, without the "%")."""
    from .templatetags.risk_tags import shock

    return shock(value).removesuffix("%")


def stress_test(*, btc: Decimal, eth: Decimal, securities: Decimal, top: int = 20) -> dict:
    """The whole book under shocked prices, set-based (four queries after the inputs)."""
    policy, prices = _inputs()
    if policy is None or not prices:
        raise PortalError("no_prices", gettext("No collateral policy or prices yet; nothing to stress."))
    now_params = book.Scenario.current(policy=policy, prices=prices).params()
    stressed = book.Scenario.current(policy=policy, prices=prices, btc_shock=btc, eth_shock=eth, securities_shock=securities)
    gt = book.greatest()
    # Each facility valued now (n_) and under the scenario (s_), joined on id.
    now_live, stress_live = book.live_sql(), book.live_sql()
    s_params = {f"s_{k}": v for k, v in stressed.params().items()}
    for k in stressed.params():
        stress_live = stress_live.replace(f"%({k})s", f"%(s_{k})s")
    both = f"""
        SELECT s.facility_id, s.client_id, s.drawn, s.lv, s.util, s.band, n.band AS band_now, n.lv AS lv_now,
               s.sec_mv, s.btc_mv, s.eth_mv, s.mv, s.sec_lv, s.va_lv,
               {gt}(s.drawn - s.lv * %(mc)s, 0) AS shortfall
        FROM ({stress_live}) s JOIN ({now_live}) n ON n.facility_id = s.facility_id
    """
    params = now_params | s_params
    summary = book.fetch(
        f"""SELECT COUNT(*) AS facilities,
                   SUM(CASE WHEN band = '{book.MARGIN_CALL}' THEN 1 ELSE 0 END) AS margin_call,
                   SUM(CASE WHEN band = '{book.CLOSE_OUT}' THEN 1 ELSE 0 END) AS close_out,
                   SUM(CASE WHEN band = '{book.WATCH}' THEN 1 ELSE 0 END) AS watch,
                   SUM(CASE WHEN band IN ('{book.MARGIN_CALL}', '{book.CLOSE_OUT}') AND band_now NOT IN ('{book.MARGIN_CALL}', '{book.CLOSE_OUT}') THEN 1 ELSE 0 END) AS newly_in_call,
                   SUM(shortfall) AS shortfall, SUM(drawn) AS drawn, SUM(lv) AS lv, SUM(lv_now) AS lv_now,
                   SUM(sec_mv) AS sec_mv, SUM(btc_mv) AS btc_mv, SUM(eth_mv) AS eth_mv, SUM(sec_lv) AS sec_lv, SUM(va_lv) AS va_lv
            FROM ({both}) x""",
        params,
    )[0]
    summary = {k: (valuation.money(Decimal(str(v))) if v is not None and k not in ("facilities", "margin_call", "close_out", "watch", "newly_in_call") else (v or 0)) for k, v in summary.items()}
    facilities = book.fetch(
        f"""SELECT x.facility_id, x.client_id, u.email, x.drawn, x.lv, x.lv_now, x.util, x.band, x.band_now, x.shortfall
            FROM ({both}) x JOIN portal_user u ON u.id = x.client_id
            WHERE x.band IN ('{book.MARGIN_CALL}', '{book.CLOSE_OUT}')
            ORDER BY x.shortfall DESC, x.facility_id LIMIT %(top)s""",
        params | {"top": top},
    )
    by_client = book.fetch(
        f"""SELECT x.client_id, u.email, COUNT(*) AS facilities, SUM(x.drawn) AS drawn, SUM(x.lv) AS lv, SUM(x.shortfall) AS shortfall,
                   SUM(CASE WHEN x.band IN ('{book.MARGIN_CALL}', '{book.CLOSE_OUT}') THEN 1 ELSE 0 END) AS in_call
            FROM ({both}) x JOIN portal_user u ON u.id = x.client_id
            GROUP BY x.client_id, u.email ORDER BY SUM(x.shortfall) DESC, SUM(x.drawn) DESC, x.client_id LIMIT %(top)s""",
        params | {"top": top},
    )

    def q2(v):
        return valuation.money(Decimal(str(v or 0)))

    for r in facilities:
        r["reference"] = f"FAC-{r['facility_id']:06d}"
        r["util"] = Decimal(str(r["util"])).quantize(Decimal("0.0001"))
        for k in ("drawn", "lv", "lv_now", "shortfall"):
            r[k] = q2(r[k])
    for r in by_client:
        for k in ("drawn", "lv", "shortfall"):
            r[k] = q2(r[k])
    by_asset = [
        {"asset": "securities", "shock": securities, "market_value": summary["sec_mv"], "lending_value": summary["sec_lv"]},
        {"asset": "BTC", "shock": btc, "market_value": summary["btc_mv"], "lending_value": None},
        {"asset": "ETH", "shock": eth, "market_value": summary["eth_mv"], "lending_value": None},
        {"asset": "VA (after cap)", "shock": None, "market_value": q2(Decimal(summary["btc_mv"] or 0) + Decimal(summary["eth_mv"] or 0)), "lending_value": summary["va_lv"]},
    ]
    return {
        "shocks": {"btc": btc, "eth": eth, "securities": securities},
        "prices": {a: p for a, p in prices.items()},
        "stressed_prices": {"BTC": q2(stressed.btc), "ETH": q2(stressed.eth)},
        "policy_version": policy.version,
        "summary": summary,
        "facilities": facilities,
        "by_client": by_client,
        "by_asset": by_asset,
    }


def stress_reports(*, kind: str = "") -> QuerySet[StressReport]:
    qs = StressReport.objects.select_related("created_by").order_by("-created_at", "-id")
    return qs.filter(kind=kind) if kind else qs
