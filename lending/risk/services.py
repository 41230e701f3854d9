"""Writes for the risk engine: price governance, margin calls, collateral top-ups, snapshots, stress reports."""

# ruff: noqa: S608 - SQL text here is built only from constants in this module; every value is a bound parameter.

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from lending import locks
from lending.inputs import MONEY_MAX, datetime_text, decimal_input, file_text_checked, quantity_input
from lending.models import price_quantum
from lending.services import maker_checker_create, maker_checker_decide
from portal.access import ensure_four_eyes, ensure_not_own_record, ensure_staff_permission
from portal.audit import SYSTEM, audit_log, audit_log_many, snapshot
from portal.errors import ConflictError, NotFoundError, PortalError
from portal.permissions import Perm

from . import book, selectors
from .alarms import QUOTE_REFUSALS, alarm_message
from .models import (
    OPEN_CALL_STATES,
    AlarmKind,
    AssetVolatility,
    CallState,
    CollateralTopUp,
    DailyClose,
    MarginCall,
    OverrideStatus,
    PriceAlarm,
    PriceOverride,
    PriceQuote,
    PriceSource,
    Resolution,
    RiskPolicy,
    SourceKind,
    StressReport,
)
from .reference_source import median_source, override_source
from .revaluation import HK, facility_flags_sync, revalue_book

ASSETS = ("BTC", "ETH")
CENT = Decimal("0.01")


def _text(value, field: str) -> str:
    text = (value or "").strip()
    if not text:
        raise PortalError("validation_error", _("Give the %(field)s.") % {"field": field}, {field: [_("Required.")]})
    return text


def _asset(asset: str, *, securities: bool = False) -> str:
    """BTC or ETH; with ``securities`` also an active security of the instrument master (5-digit code)."""
    asset = (asset or "").upper().strip()
    if asset in ASSETS:
        return asset
    if securities:
        from lending.collateral.models import Instrument, normalise_code

        code = normalise_code(asset)
        if Instrument.objects.filter(code=code, kind="security", active=True).exists():
            return code
        raise PortalError("validation_error", _("Unknown asset %(asset)s: quote BTC, ETH or a security of the instrument master.") % {"asset": f"{asset!r}"}, {"asset": [_("BTC, ETH or an instrument code.")]})
    raise PortalError("validation_error", _("Unknown asset %(asset)s: only BTC and ETH are accepted as collateral.") % {"asset": f"{asset!r}"}, {"asset": [_("BTC or ETH.")]})


def _max_age_for(asset: str, max_age) -> timedelta:
    """``max_age`` from ``_max_age()``: BTC and ETH trade around the clock and keep the collateral policy's
    freshness limit in minutes; a listed security's last price stays usable for the policy's number of days
    (across a weekend and a holiday, when the exchange is shut)."""
    va, securities = max_age
    return va if asset in ASSETS else max(va, securities)


# --- Risk policy (maker-checker) ---------------------------------------------------------------


def _validate_risk_numbers(numbers: dict) -> dict:
    clean = {
        "source_deviation_max": decimal_input(numbers.get("source_deviation_max"), "source_deviation_max", minimum=Decimal("0.001"), maximum=Decimal("0.5")),
        "volatility_alarm_level": decimal_input(numbers.get("volatility_alarm_level"), "volatility_alarm_level", minimum=Decimal("0.05"), maximum=Decimal("5")),
    }
    for key, floor in (("stress_btc_shock", "-0.50"), ("stress_eth_shock", "-0.50"), ("stress_securities_shock", "-0.10")):
        value = decimal_input(numbers.get(key), key, minimum=Decimal("-1"), maximum=Decimal("0"))
        # SMF Guidelines: at least monthly stress testing with severe moves (e.g. BTC −50%); no milder preset.
        if value > Decimal(floor):
            raise PortalError("stress_too_mild", _("%(key)s must be a fall of at least %(fall)s.") % {"key": key, "fall": f"{Decimal(floor):.0%}"}, {key: [_("At most %(floor)s.") % {"floor": floor}]})
        clean[key] = value
    current = selectors.risk_numbers()
    # Optional in a proposal (the version in force carries over): the quote band and the deviation
    # above which an override needs a written justification.
    clean["quote_band_max"] = decimal_input(numbers.get("quote_band_max") or current["quote_band_max"], "quote_band_max",
                                            minimum=Decimal("0.01"), maximum=Decimal("0.90"))
    clean["override_justification_level"] = decimal_input(numbers.get("override_justification_level") or current["override_justification_level"],
                                                          "override_justification_level", minimum=Decimal("0.01"), maximum=Decimal("0.50"))
    return clean


@transaction.atomic
def risk_policy_propose(*, actor, numbers: dict, reason: str, effective_from=None) -> RiskPolicy:
    """In force once a credit manager other than the proposer approves it, and not before ``effective_from``."""
    from lending.services import effective_from_input

    ensure_staff_permission(actor=actor, perm=Perm.POLICY_PROPOSE)
    reason = _text(reason, "reason")
    clean = _validate_risk_numbers(numbers)
    clean["effective_from"] = effective_from_input(effective_from)
    current = selectors.risk_policy_current()
    policy = maker_checker_create(RiskPolicy, actor=actor, reason=reason, numbers=clean)
    audit_log(
        actor=actor, action="risk.policy.proposed", obj=policy,
        before=snapshot(current, RiskPolicy.NUMBERS) | {"version": current.version} if current else None,
        after=snapshot(policy, RiskPolicy.NUMBERS) | {"version": policy.version, "reason": reason, "effective_from": policy.effective_from},
    )
    return policy


@transaction.atomic
def risk_policy_decide(*, actor, policy_id: int, approve: bool, note: str = "") -> RiskPolicy:
    """A credit manager other than the proposer approves (superseding the version in force) or rejects."""
    ensure_staff_permission(actor=actor, perm=Perm.POLICY_APPROVE)
    try:
        policy = RiskPolicy.objects.select_for_update(no_key=True).get(pk=policy_id)
    except RiskPolicy.DoesNotExist:
        raise NotFoundError("not_found", _("No such risk policy.")) from None
    superseded = maker_checker_decide(
        policy, actor=actor, approve=approve, note=note, not_awaiting=_("Risk policy v%(version)s is %(status)s, not awaiting approval.")
    )
    before = {"version_in_force": superseded.version} if superseded else None
    audit_log(actor=actor, action=f"risk.policy.{'approved' if approve else 'rejected'}", obj=policy, before=before,
              after={"version": policy.version, "status": policy.status, "note": note})
    return policy


# --- Price governance ----------------------------------------------------------------------------
#
# The one price authority: every price that can become a reference price is a quote from a named,
# active source (a feed, the dealing desk, a price file), bounded on entry, and the reference is the
# weighted median of the fresh quotes (or an approved manual override). Only ``reference_prices_refresh``
# writes lending's reference prices, and it revalues the book in the same transaction.

# A source's clock may run a little ahead of ours; anything later than this is "in the future".
QUOTE_CLOCK_SKEW = timedelta(seconds=60)
PRICE_MAX = Decimal("1000000000000")  # HK$1 trillion per coin: far above any price, far below the column
OVERRIDE_MAX_DAYS = 7
JUSTIFICATION_MIN_CHARS = 20


def _ensure_may_manage_sources(actor) -> None:
    """Credit managers (workbench and API) and administrators (Django admin) maintain price sources."""
    if actor is SYSTEM:
        return
    if actor is not None and actor.is_authenticated and actor.is_portal_staff and actor.has_perm("risk.change_pricesource"):
        return
    ensure_staff_permission(actor=actor, perm=Perm.PRICE_OVERRIDE)


def _weight(value) -> Decimal:
    return decimal_input(value, "weight", minimum=CENT, maximum=Decimal("100")).quantize(CENT, rounding=ROUND_HALF_UP)


def price_source_clean(*, code: str, name: str, kind: str, weight) -> dict:
    """A new source's fields checked (also the Django admin form's validation)."""
    code = (code or "").strip().lower()
    if not code or len(code) > 40 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in code):
        raise PortalError("validation_error", _("A source code is 1 to 40 letters, digits, hyphens or underscores."), {"code": [_("Letters, digits, - and _.")]})
    if kind not in SourceKind.values:
        raise PortalError("validation_error", _("Choose the kind of source."), {"kind": [_("One of %(items)s.") % {"items": ", ".join(SourceKind.values)}]})
    if PriceSource.objects.filter(code=code).exists():
        raise ConflictError("source_exists", _("A price source with the code %(code)s already exists.") % {"code": code}, {"code": [_("Already in use.")]})
    return {"code": code, "name": _text(name, "name")[:100], "kind": kind, "weight": _weight(weight)}


@transaction.atomic
def price_source_create(*, actor, code: str, name: str, kind: str = SourceKind.FEED, weight="1") -> PriceSource:
    """A new price source (audited). Its quotes count in the median from its first fresh quote."""
    _ensure_may_manage_sources(actor)
    clean = price_source_clean(code=code, name=name, kind=kind, weight=weight)
    locks.book()
    source = PriceSource.objects.create(**clean, created_by=None if actor is SYSTEM else actor)
    audit_log(actor=actor, action="risk.price_source.created", obj=source, after=snapshot(source, PriceSource.FIELDS))
    return source


@transaction.atomic
def price_source_update(*, actor, source_id: int, name: str | None = None, weight=None, active: bool | None = None, reason: str = "") -> PriceSource:
    """Rename, reweight, deactivate or reactivate a source (audited); the reference is recomputed at once."""
    _ensure_may_manage_sources(actor)
    locks.book()
    found = locks.rows(locks.Level.PRICES, PriceSource.objects.all(), [source_id])
    if not found:
        raise NotFoundError("not_found", _("No such price source."))
    source = found[0]
    before = snapshot(source, PriceSource.FIELDS)
    if name is not None:
        source.name = _text(name, "name")[:100]
    if weight is not None:
        source.weight = _weight(weight)
    if active is not None:
        source.active = bool(active)
    after = snapshot(source, PriceSource.FIELDS)
    if after == before:
        return source
    source.save(update_fields=["name", "weight", "active"])
    reference_prices_refresh()
    audit_log(actor=actor, action="risk.price_source.updated", obj=source, before=before, after=after | {"reason": (reason or "").strip()})
    return source


@transaction.atomic
def source_ensure(*, code: str, name: str = "", kind: str = SourceKind.FEED) -> PriceSource:
    """The demo's and the fixtures' sources: created (audited, by the system) when missing."""
    source = PriceSource.objects.filter(code=code[:40]).first()
    return source or price_source_create(actor=SYSTEM, code=code[:40], name=name or code, kind=kind)


def _max_age() -> tuple[timedelta, timedelta]:
    """(BTC/ETH, securities) price freshness limits of the collateral policy in force (two queries)."""
    from lending import selectors as lending_selectors
    from lending.collateral.selectors import DEFAULT_SECURITIES_PRICE_MAX_AGE_DAYS, marginable_numbers

    policy = lending_selectors.policy_current()
    listed = marginable_numbers(policy=policy)
    days = listed.securities_price_max_age_days if listed is not None else DEFAULT_SECURITIES_PRICE_MAX_AGE_DAYS
    return timedelta(minutes=policy.price_max_age_minutes if policy else 15), timedelta(days=days)


class QuoteRefused(PortalError):
    """A quote outside the price authority's bounds; ``params`` fill its reason (``alarms.QUOTE_REFUSALS``) again
    in a reader's language."""

    def __init__(self, code: str, message: str, fields: dict | None = None, params: dict | None = None):
        super().__init__(code, message, fields)
        self.params = params


def _refused(code: str, params: dict, fields: dict) -> QuoteRefused:
    return QuoteRefused(code, QUOTE_REFUSALS[code] % params, fields, params)


def _quote_check(*, source: PriceSource, asset: str, price: Decimal, as_of: datetime, now: datetime, max_age: timedelta,
                 reference: dict, band: Decimal) -> None:
    """The bounds every quote meets: a time within the freshness limit and not in the future, and a
    price within the policy band of the governed reference (an approved override moves the reference)."""
    if as_of > now + QUOTE_CLOCK_SKEW:
        raise _refused("quote_in_future", {"as_of": as_of.astimezone(HK).strftime("%Y-%m-%d %H:%M:%S HKT")}, {"as_of": [_("In the future.")]})
    if as_of < now - max_age:
        raise _refused("quote_stale", {"as_of": as_of.astimezone(HK).strftime("%Y-%m-%d %H:%M HKT"), "minutes": int(max_age.total_seconds() // 60)},
                       {"as_of": [_("Too old.")]})
    governed = reference.get(asset)
    if governed is not None and governed.price_hkd:
        deviation = abs(price / governed.price_hkd - 1)
        if deviation > band:
            raise _refused(
                "quote_out_of_band",
                {"source": source.name, "asset": asset, "price": f"{price:,}", "deviation": f"{deviation:.1%}", "governed": f"{governed.price_hkd:,}", "band": f"{band:.0%}"},
                {"price_hkd": [_("Outside the policy band.")]},
            )


def _quote_prepare(*, actor, source_code: str, asset: str, price_hkd, as_of, now, sources: dict, max_age, reference, band) -> PriceQuote:
    asset = _asset(asset, securities=True)
    max_age = _max_age_for(asset, max_age)
    quantum = price_quantum(asset)
    price = decimal_input(price_hkd, "price_hkd", minimum=quantum, maximum=PRICE_MAX).quantize(quantum, rounding=ROUND_HALF_UP)
    as_of = as_of or now
    if isinstance(as_of, str):
        parsed = datetime_text(as_of)
        if parsed is None:
            raise PortalError("validation_error", _("as_of %(as_of)s is not an ISO date-time.") % {"as_of": f"{as_of!r}"}, {"as_of": [_("An ISO date-time.")]})
        as_of = parsed
    if timezone.is_naive(as_of):
        as_of = timezone.make_aware(as_of)
    source = sources.get(source_code)
    if source is None or not source.active:
        raise PortalError("validation_error", _("Unknown or inactive price source %(source_code)s.") % {"source_code": f"{source_code!r}"}, {"source": [_("Unknown source.")]})
    if actor is not SYSTEM and source.kind == SourceKind.FEED:
        raise PortalError("validation_error", _("%(source)s is a market data feed: only the feed itself quotes under its name. Enter desk prices under a desk source.") % {"source": source.name}, {"source": [_("A feed.")]})
    _quote_check(source=source, asset=asset, price=price, as_of=as_of, now=now, max_age=max_age, reference=reference, band=band)
    return PriceQuote(source=source, asset=asset, price_hkd=price, as_of=as_of, received_at=now, entered_by=None if actor is SYSTEM else actor)


@transaction.atomic
def quotes_record(*, actor=SYSTEM, rows: list[dict], strict: bool = False, label: str = "") -> list[PriceQuote]:
    """Record quotes (``source_code``, ``asset``, ``price_hkd``, ``as_of``), then recompute the reference once.

    ``strict`` (staff entry, price files): one bad row refuses them all, with its row number. A feed's
    batch (not strict) stores the good quotes and raises a quote-refused alarm for each one outside the
    bounds, so a market that jumps beyond the band is seen at once and waits for an approved override.
    """
    if actor is not SYSTEM:
        ensure_staff_permission(actor=actor, perm=Perm.PRICE_MANAGE)
    if not rows:
        raise PortalError("invalid_file", _("No prices to record."))
    if len(rows) > 10_000:
        raise PortalError("invalid_file", _("At most 10,000 prices at once."))
    from lending import selectors as lending_selectors

    locks.book()
    now = timezone.now()
    sources = {s.code: s for s in PriceSource.objects.all()}
    max_age, band = _max_age(), selectors.risk_numbers()["quote_band_max"]
    reference = lending_selectors.prices_current()
    prepared, refused = [], []
    for number, row in enumerate(rows, start=1):
        try:
            prepared.append(_quote_prepare(actor=actor, source_code=row.get("source_code", ""), asset=row.get("asset", ""), price_hkd=row.get("price_hkd"),
                                           as_of=row.get("as_of"), now=now, sources=sources, max_age=max_age, reference=reference, band=band))
        except PortalError as exc:
            if strict:
                prefix = _("Row %(number)s: %(message)s") % {"number": number, "message": exc.message} if len(rows) > 1 else exc.message
                refusal = type(exc)(exc.code, prefix, exc.fields)
                # Which row, and its reason on its own, for a caller that reports by its own line numbers (a price file).
                refusal.row, refusal.reason = number, exc.message
                raise refusal from None
            refused.append((row, exc))
    created = PriceQuote.objects.bulk_create(prepared)  # ids come back (RETURNING) on PostgreSQL and SQLite
    reference_prices_refresh(now=now, refused=refused)
    if actor is not SYSTEM:
        audit_log(actor=actor, action="risk.quotes.entered", object_type="risk.pricequote",
                  after={"label": label, "count": len(created), "quotes": [snapshot(q, ("source", "asset", "price_hkd", "as_of")) | {"id": q.pk} for q in created[:100]]})
    return created


@transaction.atomic
def quote_record(*, actor, source_code: str, asset: str, price_hkd, as_of: datetime | None = None) -> PriceQuote:
    """One quote from one source (staff: a desk source; a feed: SYSTEM); the reference is recomputed at once."""
    return quotes_record(actor=actor, rows=[{"source_code": source_code, "asset": asset, "price_hkd": price_hkd, "as_of": as_of}], strict=True)[0]


def quotes_parse(*, content: str, fmt: str = "") -> list[dict]:
    """Rows of source, asset, price_hkd, as_of from CSV (header row) or JSON (a list of objects)."""
    import csv
    import io
    import json

    text = (content or "").strip()
    file_text_checked(text)
    fmt = fmt or ("json" if text.startswith(("[", "{")) else "csv")
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PortalError("invalid_file", _("Not valid JSON: %(exc)s") % {"exc": exc}) from None
        rows = data.get("prices", []) if isinstance(data, dict) else data
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    if not isinstance(rows, list) or not rows:
        raise PortalError("invalid_file", _("The file holds no prices."))
    parsed = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise PortalError("invalid_file", _("Row %(number)s is not an object.") % {"number": number})
        if not str(row.get("as_of") or "").strip():
            raise PortalError("invalid_file", _("Row %(number)s: give the time of the price (as_of, an ISO date-time).") % {"number": number})
        parsed.append({"source_code": str(row.get("source") or "").strip(), "asset": str(row.get("asset", "")).upper().strip(),
                       "price_hkd": row.get("price_hkd"), "as_of": str(row.get("as_of")).strip()})
    return parsed


def _override_preview(*, asset: str, price: Decimal) -> dict:
    """What the book would look like at this price: for BTC or ETH from the stress engine (the other asset
    unchanged); for a security, its holders valued at it (``_security_override_preview``)."""
    from lending import selectors as lending_selectors

    current = lending_selectors.prices_current().get(asset)
    if current is None or not current.price_hkd:
        return {}
    if asset not in ASSETS:
        return _security_override_preview(code=asset, price=price, current=current.price_hkd)
    shock = (price / current.price_hkd - 1).quantize(Decimal("1e-12"))  # the stressed price is the override to the cent
    shock = max(Decimal("-1"), min(Decimal("1"), shock))
    try:
        result = selectors.stress_test(btc=shock if asset == "BTC" else Decimal("0"), eth=shock if asset == "ETH" else Decimal("0"), securities=Decimal("0"), top=5)
    except PortalError:
        return {}
    s = result["summary"]
    return {"shock": str(shock), "from_price": str(current.price_hkd), "facilities": s["facilities"], "margin_call": s["margin_call"],
            "close_out": s["close_out"], "newly_in_call": s["newly_in_call"], "watch": s["watch"], "shortfall": str(s["shortfall"] or Decimal("0.00"))}


def _security_override_preview(*, code: str, price: Decimal, current: Decimal) -> dict:
    """The facilities holding security ``code`` valued at ``price``, by the revaluation engine's own move of their
    sums (``book.securities_moves_apply``) inside a savepoint rolled back at once: exactly the valuation that
    approving the override would give them, and nothing of it kept. Bands are counted among the holders."""
    from lending.collateral.models import BookPrice

    from .revaluation import _ids_where, current_inputs

    held = BookPrice.objects.filter(instrument__code=code).values_list("instrument_id", "price").first()
    policy, prices = current_inputs()
    if held is None or policy is None:
        return {}
    params = book.Scenario.current(policy=policy, prices=prices).params()
    calls = f"('{book.MARGIN_CALL}', '{book.CLOSE_OUT}')"
    savepoint = transaction.savepoint()
    try:
        holders = book.securities_moves_apply(moves=[(held[0], Decimal(held[1]), price)], now=timezone.now())
        where = _ids_where(sorted(set(holders)), params)
        summary = book.fetch(
            f"""SELECT COUNT(*) AS facilities,
                       SUM(CASE WHEN v.band = '{book.MARGIN_CALL}' THEN 1 ELSE 0 END) AS margin_call,
                       SUM(CASE WHEN v.band = '{book.CLOSE_OUT}' THEN 1 ELSE 0 END) AS close_out,
                       SUM(CASE WHEN v.band = '{book.WATCH}' THEN 1 ELSE 0 END) AS watch,
                       SUM(CASE WHEN v.band IN {calls} AND v.old_band NOT IN {calls} THEN 1 ELSE 0 END) AS newly_in_call,
                       SUM(CASE WHEN v.drawn > v.lv * %(mc)s THEN v.drawn - v.lv * %(mc)s ELSE 0 END) AS shortfall
                FROM ({book.live_sql(where)}) v""",
            params,
        )[0]
    finally:
        transaction.savepoint_rollback(savepoint)
    shock = (price / current - 1).quantize(Decimal("1e-12"))
    return {"shock": str(shock), "from_price": str(current), "holders": True, "facilities": summary["facilities"] or 0,
            "margin_call": summary["margin_call"] or 0, "close_out": summary["close_out"] or 0, "newly_in_call": summary["newly_in_call"] or 0,
            "watch": summary["watch"] or 0, "shortfall": str(Decimal(summary["shortfall"] or 0).quantize(CENT, rounding=ROUND_HALF_UP))}


@transaction.atomic
def override_propose(*, actor, asset: str, price_hkd, expires_at: datetime, reason: str, justification: str = "") -> PriceOverride:
    """A credit manager proposes a manual price (price, reason, expiry) for BTC, ETH or a security (one whose
    sources cannot be used: a suspension, a stale or broken feed); a different one must approve it.

    The proposal records the governed price it departs from, the deviation and the stress engine's
    preview of its effect; above the policy's deviation level a written justification is required.
    """
    ensure_staff_permission(actor=actor, perm=Perm.PRICE_OVERRIDE)
    asset = _asset(asset, securities=True)
    quantum = price_quantum(asset)
    price = decimal_input(price_hkd, "price_hkd", minimum=quantum, maximum=PRICE_MAX).quantize(quantum, rounding=ROUND_HALF_UP)
    reason = _text(reason, "reason")
    justification = (justification or "").strip()
    now = timezone.now()
    if timezone.is_naive(expires_at):
        expires_at = timezone.make_aware(expires_at)
    if expires_at <= now:
        raise PortalError("validation_error", _("The override must expire in the future."), {"expires_at": [_("In the past.")]})
    if expires_at > now + timedelta(days=OVERRIDE_MAX_DAYS):
        raise PortalError("validation_error", _("An override may last at most 7 days."), {"expires_at": [_("At most 7 days ahead.")]})
    governed = selectors.governed_prices(now=now).get(asset)
    deviation = abs(price / governed - 1).quantize(Decimal("0.0001")) if governed else None
    level = selectors.risk_numbers()["override_justification_level"]
    if (deviation is None or deviation > level) and len(justification) < JUSTIFICATION_MIN_CHARS:
        why = (_("%(deviation)s from the governed price HK$%(governed)s, beyond %(level)s") % {"deviation": f"{deviation:.1%}", "governed": f"{governed:,}", "level": f"{level:.0%}"}
               if deviation is not None else _("there is no governed price to compare it with"))
        raise PortalError("justification_required",
                          _("This price is %(why)s: write a justification of at least %(n)s characters (what the market shows and why the sources cannot be used).") % {"why": why, "n": JUSTIFICATION_MIN_CHARS},
                          {"justification": [_("Required above the policy deviation.")]})
    override = PriceOverride.objects.create(
        asset=asset, price_hkd=price, reason=reason, justification=justification, governed_price=governed, deviation=deviation,
        preview=_override_preview(asset=asset, price=price), set_by=actor, set_at=now, expires_at=expires_at,
    )
    audit_log(actor=actor, action="risk.price_override.proposed", obj=override, after=snapshot(override, PriceOverride.FIELDS) | {"preview": override.preview})
    return override


def _lock_override(override_id: int) -> PriceOverride:
    locks.book()
    found = locks.rows(locks.Level.PRICES, PriceOverride.objects.select_related("set_by"), [override_id])
    if not found:
        raise NotFoundError("not_found", _("No such override."))
    return found[0]


def _override_save(override: PriceOverride) -> None:
    try:
        override.save()
    except ConcurrentTransition:
        raise ConflictError("concurrent_change", _("The override changed at the same moment; reload and try again.")) from None


@transaction.atomic
def override_decide(*, actor, override_id: int, approve: bool, note: str = "") -> PriceOverride:
    """A second credit manager approves (the price is in force until it expires) or rejects a proposed override."""
    ensure_staff_permission(actor=actor, perm=Perm.PRICE_OVERRIDE)
    override = _lock_override(override_id)
    ensure_four_eyes(maker=override.set_by, checker=actor)
    if override.status != OverrideStatus.PROPOSED:
        raise ConflictError("invalid_state", _("Override %(ref)s is %(status)s, not awaiting approval.") % {"ref": override.reference, "status": override.get_status_display().lower()})
    now = timezone.now()
    note = (note or "").strip()
    before = snapshot(override, PriceOverride.FIELDS)
    if not approve:
        override.reject(by=actor, at=now, note=note)
        _override_save(override)
        audit_log(actor=actor, action="risk.price_override.rejected", obj=override, before=before, after=snapshot(override, PriceOverride.FIELDS))
        return override
    if override.expires_at <= now:
        raise ConflictError("override_expired", _("Override %(ref)s expired before it was approved; propose it again.") % {"ref": override.reference})
    replaced = [o for o in PriceOverride.objects.filter(asset=override.asset, status=OverrideStatus.APPROVED, cancelled_at__isnull=True, expires_at__gt=now)]
    for old in locks.rows(locks.Level.PRICES, PriceOverride.objects.all(), [o.pk for o in replaced]):
        old.cancel(by=actor, at=now)
        _override_save(old)
    override.approve(by=actor, at=now, note=note)
    _override_save(override)
    reference_prices_refresh(now=now)
    audit_log(actor=actor, action="risk.price_override.approved", obj=override, before=before,
              after=snapshot(override, PriceOverride.FIELDS) | {"replaced": [o.pk for o in replaced]})
    return override


@transaction.atomic
def override_cancel(*, actor, override_id: int, reason: str = "") -> PriceOverride:
    """Withdraw a proposal, or end an override in force before it expires (the median applies again at once)."""
    ensure_staff_permission(actor=actor, perm=Perm.PRICE_OVERRIDE)
    override = _lock_override(override_id)
    now = timezone.now()
    was_in_force = override.in_force(now)
    if not (was_in_force or override.status == OverrideStatus.PROPOSED):
        raise ConflictError("invalid_state", _("This override is no longer in force."))
    before = snapshot(override, PriceOverride.FIELDS)
    override.cancel(by=actor, at=now)
    _override_save(override)
    if was_in_force:
        reference_prices_refresh(now=now)
    audit_log(actor=actor, action="risk.price_override.cancelled", obj=override, before=before,
              after=snapshot(override, PriceOverride.FIELDS) | {"reason": (reason or "").strip(), "was_in_force": was_in_force})
    return override


class _Alarms:
    """Raise, keep or clear alarms against the open ones, loaded once."""

    def __init__(self, now):
        self.now = now
        self.open = {a.key: a for a in PriceAlarm.objects.filter(cleared_at__isnull=True)}
        self.seen: set[str] = set()

    def hold(self, *, key: str, asset: str, kind: str, text: dict, details: dict, source=None) -> None:
        """Raise or keep the alarm; ``text`` fills its kind's pattern (``alarms.TEXTS``), kept with it to be put in
        words in each reader's language."""
        self.seen.add(key)
        message, details = alarm_message(kind, text), {**details, "text": text}
        alarm = self.open.get(key)
        if alarm is None:
            PriceAlarm.objects.create(key=key, asset=asset, kind=kind, source=source, message=message, details=details,
                                      raised_at=self.now, updated_at=self.now)
        elif alarm.message != message or alarm.details != details:
            alarm.message, alarm.details, alarm.updated_at = message, details, self.now
            alarm.save(update_fields=["message", "details", "updated_at"])

    def keep(self, prefix: str) -> None:
        """Keep the open alarms under ``prefix`` as they are (their condition is re-checked elsewhere)."""
        self.seen.update(key for key in self.open if key.startswith(prefix))

    def clear_unseen(self, prefixes: tuple[str, ...]) -> None:
        stale = [a.pk for key, a in self.open.items() if key.startswith(prefixes) and key not in self.seen]
        if stale:
            PriceAlarm.objects.filter(pk__in=stale).update(cleared_at=self.now)


def _refusal(exc: PortalError) -> dict:
    """A refused quote's reason as an alarm keeps it: the price authority's refusals by code and parameters; any
    other refusal (an unknown source, a price that is not a number) by its message."""
    if isinstance(exc, QuoteRefused) and exc.params is not None:
        return {"code": exc.code, "params": exc.params}
    return {"code": exc.code, "message": exc.message}


def _reference_write(writes: list[dict], *, now) -> list:
    """Store new reference prices: a history row each and the current row per asset (lending's tables).
    Only ``reference_prices_refresh`` calls this, under the book lock."""
    from lending.models import CurrentPrice, Price

    locks.writes(locks.Level.PRICES)
    rows = Price.objects.bulk_create([Price(asset=w["asset"], price_hkd=w["price_hkd"], source=w["source"][:60], as_of=w["as_of"], created_at=now) for w in writes])
    for row in rows:
        updated = CurrentPrice.objects.filter(asset=row.asset, as_of__lte=row.as_of).update(price_hkd=row.price_hkd, source=row.source, as_of=row.as_of, price=row)
        if not updated and not CurrentPrice.objects.filter(asset=row.asset).exists():
            CurrentPrice.objects.create(asset=row.asset, price_hkd=row.price_hkd, source=row.source, as_of=row.as_of, price=row)
    return rows


@transaction.atomic
def reference_prices_refresh(*, now: datetime | None = None, refused: list | None = None) -> dict[str, dict]:
    """Recompute each asset's reference price and alarms; a changed reference is stored and the book
    revalued at it in this same transaction, whatever set it (a quote, an override, a source change).

    Reference = an approved override in force, else the weighted median of the active sources' fresh
    quotes (fresher than lending's policy limit). With no fresh source the reference is left alone (it
    goes stale, and lending refuses drawdowns on a stale price) and a stale-price alarm is raised.
    ``refused`` are a feed's quotes refused on entry (row, error): each raises a quote-refused alarm.
    """
    from lending import selectors as lending_selectors

    locks.book()
    now = now or timezone.now()
    max_age = _max_age()
    numbers = selectors.risk_numbers()
    current = lending_selectors.prices_current()
    quotes = selectors.latest_quotes(now=now)
    overrides = {o.asset: o for o in PriceOverride.objects.filter(status=OverrideStatus.APPROVED, cancelled_at__isnull=True, approved_at__lte=now,
                                                                   expires_at__gt=now).select_related("set_by", "approved_by").order_by("approved_at")}
    alarms = _Alarms(now)
    result, writes = {}, []
    # BTC and ETH, and every security some source has quoted or an override prices (lending.collateral's
    # instrument master).
    governed = (*ASSETS, *sorted(({q.asset for q in quotes} | set(overrides)) - set(ASSETS)))
    ages = max_age
    for asset in governed:
        max_age = _max_age_for(asset, ages)
        latest = [q for q in quotes if q.asset == asset]
        fresh = [q for q in latest if q.as_of >= now - max_age]
        for q in latest:
            if q not in fresh:
                alarms.hold(key=f"{asset}:source_stale:{q.source.code}", asset=asset, kind=AlarmKind.SOURCE_STALE, source=q.source,
                            text={"source": q.source.name, "asset": asset, "as_of": f"{q.as_of.astimezone(HK):%Y-%m-%d %H:%M} HKT",
                                  "minutes": int(max_age.total_seconds() // 60)},
                            details={"as_of": q.as_of.isoformat()})
        median = selectors.weighted_median([(q.price_hkd, q.source.weight) for q in fresh], quantum=price_quantum(asset)) if fresh else None
        if median:
            for q in fresh:
                deviation = abs(q.price_hkd - median) / median
                if deviation > numbers["source_deviation_max"]:
                    alarms.hold(key=f"{asset}:source_deviation:{q.source.code}", asset=asset, kind=AlarmKind.SOURCE_DEVIATION, source=q.source,
                                text={"source": q.source.name, "asset": asset, "price": f"{q.price_hkd:,}", "deviation": f"{deviation:.1%}",
                                      "median": f"{median:,}", "limit": f"{numbers['source_deviation_max']:.1%}"},
                                details={"price": str(q.price_hkd), "median": str(median), "deviation": str(deviation.quantize(Decimal('0.0001')))})
        override = overrides.get(asset)
        if override:
            price, source, as_of = override.price_hkd, override_source(override.reference), now
            alarms.hold(key=f"{asset}:override", asset=asset, kind=AlarmKind.OVERRIDE,
                        text={"asset": asset, "price": f"{override.price_hkd:,}", "until": f"{override.expires_at.astimezone(HK):%Y-%m-%d %H:%M} HKT",
                              "proposed_by": str(override.set_by), "approved_by": str(override.approved_by)},
                        details={"override": override.pk})
        elif fresh:
            price, source, as_of = median, median_source(len(fresh)), max(q.as_of for q in fresh)
        else:
            price = source = as_of = None
            alarms.hold(key=f"{asset}:stale_price", asset=asset, kind=AlarmKind.STALE_PRICE,
                        text={"asset": asset, "minutes": int(max_age.total_seconds() // 60)},
                        details={"sources": len(latest)})
        result[asset] = {"price": price, "source": source, "as_of": as_of, "fresh_sources": len(fresh), "median": median}
        now_price = current.get(asset)
        if price is not None and now_price is not None and as_of < now_price.as_of and price != now_price.price_hkd:
            as_of = now  # e.g. an override just lapsed: the median replaces it from now on
        # A new price always; the same price again only to keep the reference from going stale.
        changed = now_price is None or now_price.price_hkd != price
        keep_fresh = now_price is not None and as_of is not None and as_of > now_price.as_of and (now - now_price.as_of) > max_age / 3
        if price is not None and (changed or keep_fresh) and (now_price is None or as_of >= now_price.as_of):
            writes.append({"asset": asset, "price_hkd": price, "source": source, "as_of": as_of})
    if refused is None:
        alarms.keep(tuple(f"{a}:quote_refused:" for a in governed))
    for row, exc in refused or []:
        asset, code = str(row.get("asset", "")).upper(), str(row.get("source_code", ""))
        alarms.hold(key=f"{asset}:quote_refused:{code}"[:80], asset=asset[:8], kind=AlarmKind.QUOTE_REFUSED, source=None,
                    text={"source": code, "asset": asset, "price": str(row.get("price_hkd")), "reason": _refusal(exc)}, details={"code": exc.code})
    moved = [w for w in writes if current.get(w["asset"]) is None or current[w["asset"]].price_hkd != w["price_hkd"]]
    if writes:
        _reference_write(writes, now=now)
        _daily_closes_record(writes)
    _volatility_refresh(now=now, alarms=alarms, numbers=numbers)
    alarms.clear_unseen(tuple(f"{a}:" for a in governed))
    if moved:
        revalue_book(trigger="price")
        audit_log(actor=SYSTEM, action="risk.reference_price.changed", object_type="lending.currentprice",
                  before={w["asset"]: str(current[w["asset"]].price_hkd) if w["asset"] in current else None for w in moved},
                  after={w["asset"]: {"price_hkd": str(w["price_hkd"]), "source": w["source"], "as_of": w["as_of"].isoformat()} for w in moved})
    return result


def _daily_closes_record(writes: list[dict]) -> None:
    for w in writes:
        day = w["as_of"].astimezone(HK).date()
        updated = DailyClose.objects.filter(asset=w["asset"], day=day, as_of__lte=w["as_of"]).update(price_hkd=w["price_hkd"], as_of=w["as_of"])
        if not updated and not DailyClose.objects.filter(asset=w["asset"], day=day).exists():
            DailyClose.objects.create(asset=w["asset"], day=day, price_hkd=w["price_hkd"], as_of=w["as_of"])


def realised_volatility(closes: list[Decimal]) -> Decimal | None:
    """Annualised realised volatility of daily closes (crypto trades every day: √365)."""
    returns = [math.log(float(b) / float(a)) for a, b in zip(closes, closes[1:], strict=False) if a and b]
    if len(returns) < 2:
        return None
    return Decimal(statistics.stdev(returns) * math.sqrt(365)).quantize(Decimal("0.0001"))


def _volatility_refresh(*, now, alarms: _Alarms, numbers: dict) -> None:
    since = now.astimezone(HK).date() - timedelta(days=30)
    closes = {a: [] for a in ASSETS}
    for row in DailyClose.objects.filter(day__gte=since).order_by("day").values_list("asset", "price_hkd"):
        closes.setdefault(row[0], []).append(row[1])
    existing = {v.asset: v for v in AssetVolatility.objects.all()}
    for asset in ASSETS:
        vol = realised_volatility(closes[asset])
        row = existing.get(asset)
        if row is None:
            AssetVolatility.objects.create(asset=asset, volatility=vol, observations=len(closes[asset]), computed_at=now)
        elif row.volatility != vol or row.observations != len(closes[asset]):
            row.volatility, row.observations, row.computed_at = vol, len(closes[asset]), now
            row.save(update_fields=["volatility", "observations", "computed_at"])
        if vol is not None and vol > numbers["volatility_alarm_level"]:
            alarms.hold(key=f"{asset}:volatility", asset=asset, kind=AlarmKind.VOLATILITY,
                        text={"asset": asset, "volatility": f"{vol:.0%}", "level": f"{numbers['volatility_alarm_level']:.0%}"},
                        details={"volatility": str(vol)})


# Demo feed: three sources around a shared random walk; now and then a source lags or strays.
DEMO_SOURCES = [("hkvax", "HK VA Exchange (demo)"), ("harbour-otc", "Harbour OTC desk (demo)"), ("index-asia", "Asia VA Index (demo)")]
DEMO_VOL = {"BTC": 0.9, "ETH": 1.1}  # annualised, a little livelier than life so the demo visibly moves
DEMO_START = {"BTC": Decimal("760000"), "ETH": Decimal("27000")}
# Demo time runs fast: each 30-second tick moves the market as much as an hour does, so prices
# visibly push facilities near the levels into watch and margin call within a few minutes.
DEMO_SECONDS_PER_TICK = 3600
DEMO_REVERSION = 0.01


def demo_feed_tick(*, seconds: float = 30, rng=None) -> dict:
    """Demo only: every source quotes around a common random walk; occasional sharp moves, lags and strays."""
    import random

    from lending import selectors as lending_selectors

    rng = rng or random.SystemRandom()
    current = lending_selectors.prices_current()
    now = timezone.now()
    rows = []
    for code, name in DEMO_SOURCES:
        source_ensure(code=code, name=name)
    for asset in ASSETS:
        last = current[asset].price_hkd if asset in current else DEMO_START[asset]
        sigma = DEMO_VOL[asset] * math.sqrt(seconds / (365 * 24 * 3600))
        shock = rng.gauss(0, 1)
        if rng.random() < 0.03:  # a sharp move now and then, mostly down (crypto's fat left tail)
            shock = rng.choice([-4, -3, -2.5, 2.5])
        # Pulled gently back towards the starting level, so a demo left running for days stays
        # in a realistic range (an Ornstein-Uhlenbeck walk in log price; spread about ±7%).
        pull = -DEMO_REVERSION * math.log(float(last) / float(DEMO_START[asset]))
        mid = float(last) * math.exp(pull + sigma * shock)
        for i, (code, _name) in enumerate(DEMO_SOURCES):
            if i == 2 and rng.random() < 0.05:
                continue  # the index source lags: it may go stale
            noise = rng.gauss(0, 0.0005)
            if i == 1 and rng.random() < 0.03:
                noise += rng.choice([-0.035, 0.035])  # the OTC desk strays: a deviation alarm
            rows.append({"source_code": code, "asset": asset, "price_hkd": Decimal(str(round(mid * (1 + noise), 2))), "as_of": now})
    quotes_record(rows=rows)
    return {"quotes": len(rows)}


# --- Margin calls --------------------------------------------------------------------------------


def _lock_call(actor, call_id: int, *, with_facility: bool = False) -> MarginCall:
    """The call locked; ``with_facility`` first takes the book and the call's facility row (lending.locks
    order), for a change that also writes the facility (its call flag, a suspension)."""
    if with_facility:
        facility_id = MarginCall.objects.filter(pk=call_id).values_list("facility_id", flat=True).first()
        if facility_id is not None:
            from lending.models import Facility

            locks.book()
            locks.facility(facility_id, Facility.objects.all())
    try:
        call = locks.margin_call(call_id, MarginCall.objects.select_related("client", "facility"))
    except MarginCall.DoesNotExist:
        raise NotFoundError("not_found", _("No such margin call.")) from None
    ensure_not_own_record(actor=actor, client_user=call.client)
    return call


def _save(call: MarginCall) -> None:
    try:
        call.updated_at = timezone.now()
        call.save()
    except ConcurrentTransition:
        raise ConflictError("concurrent_change", _("The margin call changed at the same moment; reload and try again.")) from None


def _transition(call: MarginCall, apply) -> None:
    try:
        apply()
    except TransitionNotAllowed:
        raise ConflictError("invalid_state", _("Margin call %(reference)s is %(state)s; that is not possible now.") % {"reference": call.reference, "state": call.get_state_display().lower()}) from None


@transaction.atomic
def margin_call_escalate(*, actor, call_id: int, reason: str) -> MarginCall:
    """An officer hands an open call to the credit managers before its deadline."""
    ensure_staff_permission(actor=actor, perm=Perm.MARGIN_CALL_MANAGE)
    reason = _text(reason, "reason")
    call = _lock_call(actor, call_id)
    before = snapshot(call, MarginCall.FIELDS)
    _transition(call, lambda: call.escalate(at=timezone.now(), reason="officer"))
    call.proposal_reason, call.notified_at = reason, None
    _save(call)
    audit_log(actor=actor, action="risk.margin_call.escalated", obj=call, before=before, after=snapshot(call, MarginCall.FIELDS) | {"reason": reason})
    from .tasks import margin_calls_notify

    margin_calls_notify.delay_on_commit(None)
    return call


@transaction.atomic
def margin_calls_escalate_due(*, now: datetime | None = None) -> int:
    """Beat: open calls past their cure deadline, or at the close-out level, go to a credit manager (set-based)."""
    now = now or timezone.now()
    locks.writes(locks.Level.MARGIN_CALL)
    rows = book.fetch(
        f"""
        UPDATE risk_margincall SET state = '{CallState.ESCALATED}', escalated_at = %(now)s, notified_at = NULL,
               escalation_reason = CASE WHEN cure_deadline < %(now)s THEN 'overdue' ELSE 'close_out_level' END
        WHERE state = '{CallState.OPEN}' AND (cure_deadline < %(now)s OR band = '{book.CLOSE_OUT}')
        RETURNING id, facility_id, escalation_reason, cure_deadline
        """,
        {"now": book.dt(now)},
    )
    count = len(rows)
    if count:
        audit_log_many(actor=SYSTEM, rows=[
            {"action": "risk.margin_call.escalated", "object_type": "risk.margincall", "object_id": r["id"], "object_repr": f"MC-{int(r['id']):06d}",
             "before": {"state": CallState.OPEN},
             "after": {"state": CallState.ESCALATED, "escalation_reason": r["escalation_reason"], "facility": r["facility_id"],
                       "cure_deadline": str(r["cure_deadline"]), "at": now.isoformat()}}
            for r in rows
        ])
        from .tasks import margin_calls_notify

        margin_calls_notify.delay_on_commit(None)
    return count


@transaction.atomic
def margin_call_mark_met(*, actor, call_id: int, note: str = "") -> MarginCall:
    """An officer records that a call is met (e.g. after the market recovered): refused unless utilisation is at or under the level now."""
    ensure_staff_permission(actor=actor, perm=Perm.MARGIN_CALL_MANAGE)
    call = _lock_call(actor, call_id, with_facility=True)
    risk = selectors.facility_risk(facility_id=call.facility_id)
    if risk is None or risk["utilisation"] > risk["margin_call_level"]:
        util = f"{risk['utilisation']:.2%}" if risk else "unknown"
        raise ConflictError("still_in_breach", _("Utilisation is %(util)s, above the margin-call level: the call is not met.") % {"util": util})
    before = snapshot(call, MarginCall.FIELDS)
    _transition(call, lambda: call.meet(at=timezone.now(), how="officer"))
    call.shortfall, call.utilisation, call.notified_at = Decimal("0"), risk["utilisation"], None
    call.resolution_note = (note or "").strip()
    _save(call)
    facility_flags_sync(facility_ids=[call.facility_id])
    audit_log(actor=actor, action="risk.margin_call.met", obj=call, before=before, after=snapshot(call, MarginCall.FIELDS))
    from .tasks import margin_calls_notify

    margin_calls_notify.delay_on_commit(None)
    return call


@transaction.atomic
def margin_call_propose(*, actor, call_id: int, resolution: str, reason: str) -> MarginCall:
    """The maker: propose closing out or waiving an escalated call, with reasons. A credit manager decides."""
    ensure_staff_permission(actor=actor, perm=Perm.MARGIN_CALL_MANAGE)
    if resolution not in Resolution.values:
        raise PortalError("validation_error", _("Choose close-out or waiver."), {"resolution": [_("One of %(items)s.") % {"items": ', '.join(Resolution.values)}]})
    reason = _text(reason, "reason")
    call = _lock_call(actor, call_id)
    if call.state != CallState.ESCALATED:
        raise ConflictError("invalid_state", _("Margin call %(reference)s is %(state)s; only an escalated call can be closed out or waived.") % {"reference": call.reference, "state": call.get_state_display().lower()})
    if call.proposed_resolution:
        # Maker-checker: a proposal awaiting its checker is decided (approved or sent back), not replaced by another maker.
        raise ConflictError("already_proposed", _("Margin call %(reference)s already has a proposal awaiting a credit manager's decision (%(resolution)s): "
                                                  "it is approved or sent back before another is proposed.") % {
            "resolution": call.get_proposed_resolution_display(), "reference": call.reference})
    before = snapshot(call, MarginCall.FIELDS)
    call.proposed_resolution, call.proposal_reason, call.proposed_by, call.proposed_at = resolution, reason, actor, timezone.now()
    _save(call)
    # A close-out comes with its liquidation plan, so the credit manager decides on what would be sold.
    from lending.recovery import services as recovery

    if resolution == Resolution.CLOSE_OUT:
        plan = recovery.close_out_proposed(actor=actor, call=call)
        after = snapshot(call, MarginCall.FIELDS) | {"plan": plan.pk, "plan_expected_utilisation": plan.expected_utilisation_after,
                                                      "plan_expected_shortfall": plan.expected_shortfall}
    else:
        recovery.close_out_decided(actor=actor, call=call, approved=False)
        after = snapshot(call, MarginCall.FIELDS)
    audit_log(actor=actor, action="risk.margin_call.resolution_proposed", obj=call, before=before, after=after)
    return call


@transaction.atomic
def margin_call_decide(*, actor, call_id: int, approve: bool, note: str = "") -> MarginCall:
    """The checker: a credit manager, not the proposer, approves the close-out or waiver (or sends it back)."""
    ensure_staff_permission(actor=actor, perm=Perm.MARGIN_CALL_RESOLVE)
    note = _text(note, "note") if approve else (note or "").strip()
    call = _lock_call(actor, call_id, with_facility=True)
    if call.state != CallState.ESCALATED or not call.proposed_resolution:
        raise ConflictError("invalid_state", _("Margin call %(reference)s has no close-out or waiver awaiting approval.") % {"reference": call.reference})
    ensure_four_eyes(maker=call.proposed_by, checker=actor)
    before = snapshot(call, MarginCall.FIELDS)
    now = timezone.now()
    from lending.recovery import services as recovery

    if not approve:
        call.proposed_resolution, call.proposed_by, call.proposed_at = "", None, None
        call.resolution_note = note
        _save(call)
        recovery.close_out_decided(actor=actor, call=call, approved=False)
        audit_log(actor=actor, action="risk.margin_call.resolution_rejected", obj=call, before=before, after=snapshot(call, MarginCall.FIELDS))
        return call
    if call.proposed_resolution == Resolution.CLOSE_OUT:
        _transition(call, lambda: call.close_out(by=actor, at=now, note=note))
    else:
        _transition(call, lambda: call.waive(by=actor, at=now, note=note))
    call.notified_at = None
    _save(call)
    facility_flags_sync(facility_ids=[call.facility_id])
    # The plan the approver saw on the proposal goes to the dealing desk (a waiver withdraws it).
    plan = recovery.close_out_decided(actor=actor, call=call, approved=call.state == CallState.CLOSED_OUT)
    audit_log(actor=actor, action=f"risk.margin_call.{call.state}", obj=call, before=before,
              after=snapshot(call, MarginCall.FIELDS) | ({"plan": plan.pk} if plan else {}))
    if call.state == CallState.CLOSED_OUT:
        # The dealing desk sells by the approved plan; no further advances on the facility meanwhile.
        from lending import services as lending_services
        from lending.models import FacilityState

        if call.facility.state == FacilityState.ACTIVE:
            lending_services.facility_suspend(actor=actor, facility_id=call.facility_id, reason=f"Margin call {call.reference} closed out: {note}")
    from .tasks import margin_calls_notify

    margin_calls_notify.delay_on_commit(None)
    return call


def margin_calls_notify(*, run_id: int | None = None) -> int:
    """Tell the client, the facility's officer and (for escalations) the credit managers. Idempotent:
    each call is claimed with a conditional UPDATE on ``notified_at`` before anyone is told."""
    from portal.models import User
    from portal.notifications import notify, notify_many
    from portal.permissions import Role

    sent = margin_calls_met_by_market_notify()
    pending = MarginCall.objects.filter(notified_at__isnull=True).select_related("client", "facility__application__decided_by")
    if run_id is not None:
        pending = pending.filter(Q(run_id=run_id) | ~Q(state=CallState.OPEN))
    managers = None
    for call in pending.order_by("id")[:2000]:
        with transaction.atomic():
            if not MarginCall.objects.filter(pk=call.pk, notified_at__isnull=True).update(notified_at=timezone.now()):
                continue
            params = {"ref": call.reference, "facility": call.facility.reference, "amount": f"{call.shortfall:,.2f}",
                      "deadline": call.cure_deadline.astimezone(HK).strftime("%Y-%m-%d %H:%M")}
            officer = call.facility.application.decided_by
            staff_link = f"/risk/margin-calls/{call.pk}/"
            if call.state == CallState.OPEN:
                notify(user=call.client, kind="risk.margin_call.opened", title=_("Margin call %(ref)s on facility %(facility)s"),
                       body=_("Your facility's utilisation is above the margin-call level. Repay HK$%(amount)s or add collateral by %(deadline)s (Hong Kong time). No further drawdowns until the call is met."),
                       params=params, link=f"/risk/facility/{call.facility_id}/")
                if officer:
                    notify(user=officer, kind="risk.margin_call.opened", title=_("Margin call %(ref)s opened on %(facility)s"),
                           body=_("Shortfall HK$%(amount)s; cure deadline %(deadline)s (Hong Kong time)."), params=params, link=staff_link)
            elif call.state == CallState.ESCALATED:
                if managers is None:
                    managers = list(User.objects.filter(groups__name=Role.CREDIT_MANAGER, is_active=True))
                recipients = [m for m in managers if m.pk != call.client_id]
                if officer and officer not in recipients:
                    recipients.append(officer)
                notify_many(users=recipients, kind="risk.margin_call.escalated", title=_("Margin call %(ref)s escalated"),
                            body=_("Margin call %(ref)s on %(facility)s (shortfall HK$%(amount)s) needs a credit manager's decision: close-out or waiver."),
                            params=params, link=staff_link)
            elif call.state == CallState.MET:
                notify(user=call.client, kind="risk.margin_call.met", title=_("Margin call %(ref)s is met"),
                       body=_("Thank you. Your facility is back within its margin requirements; drawdowns are possible again."),
                       params=params, link=f"/risk/facility/{call.facility_id}/")
            elif call.state in (CallState.WAIVED, CallState.CLOSED_OUT):
                title = _("Margin call %(ref)s was waived") if call.state == CallState.WAIVED else _("Margin call %(ref)s: collateral is being closed out")
                notify(user=call.client, kind=f"risk.margin_call.{call.state}", title=title,
                       body=_("Your account officer will contact you with the details."), params=params, link=f"/risk/facility/{call.facility_id}/")
            sent += 1
    return sent


def _client_open_call(user, call_id: int) -> MarginCall:
    call = MarginCall.objects.select_related("facility").filter(pk=call_id, client=user).first() if user and user.is_authenticated else None
    if call is None:
        raise NotFoundError("not_found", _("No such margin call."))
    if not call.is_open:
        raise ConflictError("invalid_state", _("Margin call %(reference)s is %(state)s; nothing more is needed.") % {"reference": call.reference, "state": call.get_state_display().lower()})
    return call


@transaction.atomic
def margin_call_repayment_notice(*, user, call_id: int, amount, note: str = ""):
    """The client answers an open call with notice of a repayment: servicing's repayment notice (matched when
    the back office confirms receipt, which then meets the call), recorded on the call's audit trail too."""
    from lending.servicing import requests as servicing_requests

    call = _client_open_call(user, call_id)
    req = servicing_requests.repayment_notice(user=user, facility_id=call.facility_id, amount=amount, note=note)
    audit_log(actor=user, action="risk.margin_call.repayment_notice", obj=call,
              after={"request": req.reference, "amount": str(req.amount), "state": call.state})
    return req


@transaction.atomic
def margin_call_top_up_request(*, user, call_id: int, instrument: str = "", quantity=None, custody_reference: str = ""):
    """The client answers an open call by pledging more of their holdings: servicing's top-up request (an officer
    records it, which pledges it in the custody ledger, revalues the facility and meets the call if cured), on the
    call's trail too."""
    from lending.servicing import requests as servicing_requests

    call = _client_open_call(user, call_id)
    req = servicing_requests.top_up_request(user=user, facility_id=call.facility_id, instrument=instrument, quantity=quantity,
                                            custody_reference=custody_reference)
    audit_log(actor=user, action="risk.margin_call.top_up_requested", obj=call,
              after={"request": req.reference, "instrument": req.asset, "quantity": str(req.quantity) if req.quantity is not None else None})
    return req


@transaction.atomic
def margin_calls_met_by_market_notify(*, now: datetime | None = None) -> int:
    """Tell each client whose call the market cured (set-based: one conditional UPDATE claims the calls,
    one bulk insert tells their clients, each in their own language). Returns the calls claimed."""
    from portal.models import User
    from portal.notifications import notify_many

    from .revaluation import MET_BY_MARKET

    rows = book.fetch(
        f"""
        UPDATE risk_margincall SET notified_at = %(now)s
        WHERE state = '{CallState.MET}' AND met_by = '{MET_BY_MARKET}' AND notified_at IS NULL
        RETURNING id, client_id
        """,
        {"now": book.dt(now or timezone.now())},
    )
    if rows:
        clients = User.objects.filter(pk__in={r["client_id"] for r in rows}).order_by("pk")
        notify_many(users=list(clients), kind="risk.margin_call.met_by_market", title=_("Your margin call is met: prices recovered"),
                    body=_("Prices rose enough to bring your facility back within the margin-call level, so the call is met and "
                           "drawdowns are possible again. Prices can fall again: keep an eye on your utilisation."),
                    link="/")
    return len(rows)


# --- Collateral top-ups ----------------------------------------------------------------------------


def _ensure_recordable(facility, added: Decimal) -> None:
    if facility.market_value + added > MONEY_MAX:
        raise PortalError("validation_error", _("With this collateral the facility's market value would be beyond what can be recorded (HK$%(max)s).") % {"max": f"{MONEY_MAX:,}"},
                          {"quantity": [_("Too large.")], "market_value": [_("Too large.")]})


@dataclass(frozen=True)
class TopUpChecked:
    """What a top-up would pledge, once ``collateral_top_up_check`` has passed it."""

    instrument: object
    kind: str
    quantity: Decimal
    price_hkd: Decimal
    market_value: Decimal
    haircut: Decimal


def collateral_top_up_check(*, facility, instrument: str = "", quantity=None, kind: str = "", asset: str = "",
                            custody_reference: str = "", within=None) -> TopUpChecked:
    """Whether ``quantity`` of ``instrument`` can be pledged to ``facility`` now, or the refusal; it writes nothing.

    The one set of checks of a top-up: an open facility, an active instrument (an HKEX code, BTC or ETH), its kind,
    the quantity (whole shares; BTC/ETH to 8 decimal places within the supply), the custody reference of virtual
    assets, a reference price, a market value that can be recorded and the concentration limits
    (``lending.collateral.concentration``). ``collateral_top_up`` records only what this passes, and a client's
    top-up request asks it when it is made (``lending.servicing.requests.top_up_request``), so a request that could
    never be carried out is refused then, in the same words. ``within(instrument, quantity)``: the caller's own
    limit on the quantity, checked once it is read (a client's request: what they have free less their pending
    requests). Call under the book lock (the concentration check reads the book).
    """
    from lending import selectors as lending_selectors
    from lending.collateral import selectors as collateral_selectors
    from lending.collateral.concentration import ensure_pledge_within_limits
    from lending.models import CollateralKind, FacilityState

    if facility.state == FacilityState.CLOSED:
        raise ConflictError("facility_closed", _("The facility is closed."))
    item = collateral_selectors.instrument_by_code(code=instrument or asset)
    if item is None or not item.active:
        raise PortalError("validation_error", _("Name the instrument to pledge from the client's holdings (an HKEX stock code, BTC or ETH)."),
                          {"instrument" if instrument or not asset else "asset": [_("An instrument the client holds.")]})
    position_kind = CollateralKind.VIRTUAL_ASSET if item.is_virtual_asset else CollateralKind.SECURITIES
    if kind and kind != position_kind:
        raise PortalError("validation_error", _("%(code)s is not %(kind)s collateral.") % {"code": item.code, "kind": kind}, {"kind": [_("Does not match the instrument.")]})
    if item.is_virtual_asset:
        qty = quantity_input(quantity, "quantity", asset=item.code)
    else:
        qty = decimal_input(quantity, "quantity", minimum=Decimal("1"), maximum=Decimal("1e15"))
        if qty != qty.to_integral_value():
            raise PortalError("validation_error", _("A securities quantity is a whole number of shares."), {"quantity": [_("Whole shares.")]})
    qty = qty.quantize(Decimal("0.00000001"))
    if within is not None:
        within(item, qty)
    if item.is_virtual_asset and not (custody_reference or "").strip():
        raise PortalError("validation_error", _("Give the custody reference of the virtual assets."), {"custody_reference": [_("Required.")]})
    prices = lending_selectors.prices_current()
    price = prices.get(item.code)
    if price is None:
        raise ConflictError("no_price", _("%(code)s has no reference price yet; it cannot be valued as collateral.") % {"code": item.code})
    mv = (qty * price.price_hkd).quantize(CENT)
    _ensure_recordable(facility, mv)
    policy = lending_selectors.policy_current() or facility.policy
    haircut = collateral_selectors.haircuts_for(policy=policy, instrument_ids=[item.pk])[item.pk]
    ensure_pledge_within_limits(client_id=facility.client_id, instrument=item, lending_value=mv * (1 - haircut), policy=policy,
                                prices={a: q.price_hkd for a, q in prices.items()})
    return TopUpChecked(instrument=item, kind=position_kind, quantity=qty, price_hkd=price.price_hkd, market_value=mv, haircut=haircut)


@transaction.atomic
def collateral_top_up(*, actor, facility_id: int, instrument: str = "", quantity=None, kind: str = "", asset: str = "",
                      description: str = "", custody_reference: str = "", reference: str = "") -> CollateralTopUp:
    """Pledge more of the client's holdings to a facility: ``quantity`` of ``instrument`` (an HKEX code, BTC or ETH;
    ``asset`` is accepted for BTC/ETH) moves from free to pledged in the custody ledger, or the top-up is refused.

    Securities come from the margin account the back office reports and BTC/ETH from the client's custody
    balance; nobody types a market value. The position is valued at the price authority's reference price and
    the haircut of the policy in force; the facility is revalued at once and an open call met if cured.
    """
    from lending.collateral import custody
    from lending.models import CollateralPosition, Facility

    ensure_staff_permission(actor=actor, perm=Perm.FACILITY_OPERATE)
    locks.book()
    try:
        facility = locks.facility(facility_id, Facility.objects.select_related("client"))
    except Facility.DoesNotExist:
        raise NotFoundError("not_found", _("No such facility.")) from None
    ensure_not_own_record(actor=actor, client_user=facility.client)
    checked = collateral_top_up_check(facility=facility, instrument=instrument, quantity=quantity, kind=kind, asset=asset,
                                      custody_reference=custody_reference)
    item, position_kind, qty, price_hkd, mv, haircut = (checked.instrument, checked.kind, checked.quantity, checked.price_hkd,
                                                       checked.market_value, checked.haircut)
    position = CollateralPosition.objects.select_for_update(no_key=True).filter(facility=facility, instrument=item).order_by("id").first()
    if position is None:
        position = CollateralPosition.objects.create(
            facility=facility, kind=position_kind, instrument=item, asset=item.code if item.is_virtual_asset else "", quantity=qty,
            market_value=mv, haircut=haircut, custody_reference=(custody_reference or "").strip()[:100],
            description=(description or item.name_en)[:200])
    else:
        position.quantity = (position.quantity or Decimal("0")) + qty
        position.market_value = (position.quantity * price_hkd).quantize(CENT)
        position.haircut = haircut
        position.save(update_fields=["quantity", "market_value", "haircut"])
    top_up = CollateralTopUp.objects.create(facility=facility, position_id=position.pk, kind=position_kind, asset=item.code,
                                            quantity=qty, market_value=mv, reference=(reference or "")[:100], recorded_by=actor)
    # The pledge itself: refused (and the whole top-up rolled back) above what the client has free.
    custody.custody_pledge(client_id=facility.client_id, instrument_id=item.pk, quantity=qty, facility_id=facility.pk,
                           actor=actor, reference=top_up.reference or f"TOPUP-{top_up.pk}")
    book.coefficients_refresh(now=timezone.now(), facility_ids=[facility.pk])
    revalue_book(trigger="top_up", facility_ids=[facility.pk])
    audit_log(actor=actor, action="risk.collateral.topped_up", obj=facility, after={
        "top_up": top_up.pk, "position": position.pk, "kind": position_kind, "instrument": item.code, "quantity": qty,
        "price": price_hkd, "market_value": mv, "haircut": haircut, "reference": top_up.reference})
    return top_up


def facility_changed(*, facility_id: int) -> None:
    """The engine's ``revalue_facility`` (kept for callers of this name)."""
    from .revaluation import revalue_facility

    revalue_facility(facility_id=facility_id)


# --- Snapshots and stress reports ----------------------------------------------------------------------


@transaction.atomic
def snapshots_take(*, day=None, now=None) -> int:
    """End-of-day valuation per facility and collateral type: INSERT … SELECT, once per day (ON CONFLICT DO NOTHING)."""
    from .revaluation import current_inputs

    now = now or timezone.now()
    day = day or now.astimezone(HK).date()
    policy, prices = current_inputs()
    if policy is None or not prices:
        return 0
    from django.db import connection

    params = book.Scenario.current(policy=policy, prices=prices).params() | {
        "day": connection.ops.adapt_datefield_value(day), "now": book.dt(now)}
    # (type, quantity, price, market value, lending value before the VA cap, drawn, utilisation, band, which rows)
    null = "CAST(NULL AS NUMERIC)"
    parts = [
        ("securities", null, null, "v.sec_mv", "v.sec_lv", null, null, "''", "v.sec_mv <> 0"),
        ("BTC", "v.btc_qty", "%(btc)s", "v.btc_mv", "v.btc_w * %(btc)s", null, null, "''", "v.btc_qty <> 0"),
        ("ETH", "v.eth_qty", "%(eth)s", "v.eth_mv", "v.eth_w * %(eth)s", null, null, "''", "v.eth_qty <> 0"),
        ("total", null, null, "v.mv", "v.lv", "v.drawn", "v.util", "v.band", "1 = 1"),
    ]
    selects = " UNION ALL ".join(
        f"SELECT %(day)s, v.facility_id, v.client_id, '{ctype}', {qty}, {price}, ROUND({mv}, 2), ROUND({lv}, 2), "
        f"{drawn}, {util}, {band}, %(now)s FROM v WHERE {cond}"
        for ctype, qty, price, mv, lv, drawn, util, band, cond in parts
    )
    sql = (
        "INSERT INTO risk_valuationsnapshot (day, facility_id, client_id, collateral_type, quantity, price_hkd, market_value, "
        f"lending_value, drawn_balance, utilisation, band, created_at) WITH v AS ({book.live_sql()}) {selects} "
        "ON CONFLICT (day, facility_id, collateral_type) DO NOTHING"
    )
    return book.execute(sql, params)


@transaction.atomic
def book_summary_take(*, now=None):
    """Take the risk board's whole-book figures once (after the minute's full revaluation) and keep them in the
    one summary row: the board then costs the same for any book size and any number of viewers. Derived
    figures only (nothing regulated changes), so no audit row."""
    import time

    from lending.collateral.selectors import concentration

    from .models import BookSummary
    from .revaluation import current_inputs

    started = time.perf_counter()
    policy, prices = current_inputs()
    if policy is None or not prices:
        return None
    figures = selectors.book_figures(policy=policy, prices=prices, nearest_limit=selectors.NEAREST_KEPT)
    figures["concentration"] = concentration()
    summary, _created = BookSummary.objects.update_or_create(pk=1, defaults={
        "taken_at": now or timezone.now(), "policy_version": policy.version, "btc_price": prices.get("BTC"), "eth_price": prices.get("ETH"),
        "data": selectors.summary_encode(figures), "took_ms": int((time.perf_counter() - started) * 1000),
    })
    return summary


@transaction.atomic
def stress_report_store(*, actor, btc_shock, eth_shock, securities_shock, kind: str = StressReport.Kind.AD_HOC, period: str = "") -> StressReport:
    """Run a stress scenario over the whole book and keep the result on record."""
    if actor is not SYSTEM:
        ensure_staff_permission(actor=actor, perm=Perm.STRESS_TEST_RUN)
    shocks = selectors.stress_shocks_clean(btc=btc_shock, eth=eth_shock, securities=securities_shock)
    result = selectors.stress_test(**shocks)
    report = StressReport(
        kind=kind, period=period, btc_shock=shocks["btc"], eth_shock=shocks["eth"], securities_shock=shocks["securities"],
        btc_price=result["prices"].get("BTC"), eth_price=result["prices"].get("ETH"), policy_version=result["policy_version"],
        result=selectors.jsonable(result), created_by=None if actor is SYSTEM else actor,
    )
    try:
        with transaction.atomic():
            report.save()
    except IntegrityError:
        raise ConflictError("already_reported", _("The %(period)s monthly stress report is already stored.") % {"period": period}) from None
    audit_log(actor=actor, action="risk.stress_report.stored", obj=report,
              after={"kind": kind, "period": period, "shocks": {k: str(v) for k, v in shocks.items()},
                     "margin_call": result["summary"]["margin_call"], "close_out": result["summary"]["close_out"],
                     "shortfall": result["summary"]["shortfall"]})
    return report


def stress_monthly_report(*, now=None) -> StressReport | None:
    """Beat: the month's standard stress report (policy presets), stored once per month."""
    now = now or timezone.now()
    period = now.astimezone(HK).strftime("%Y-%m")
    if StressReport.objects.filter(kind=StressReport.Kind.MONTHLY, period=period).exists():
        return None
    numbers = selectors.risk_numbers()
    try:
        return stress_report_store(actor=SYSTEM, btc_shock=numbers["stress_btc_shock"], eth_shock=numbers["stress_eth_shock"],
                                   securities_shock=numbers["stress_securities_shock"], kind=StressReport.Kind.MONTHLY, period=period)
    except ConflictError:
        return None


__all__ = [
    "OPEN_CALL_STATES", "collateral_top_up", "facility_changed", "margin_call_decide", "margin_call_escalate", "margin_call_mark_met",
    "margin_call_propose", "margin_calls_escalate_due", "override_cancel", "override_decide", "override_propose", "price_source_create",
    "price_source_update", "quote_record", "quotes_parse", "quotes_record", "reference_prices_refresh",
    "risk_policy_decide", "risk_policy_propose", "snapshots_take", "stress_report_store",
]
