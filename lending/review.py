"""The credit-review steps: each reads what it needs and returns an explainable result.

A step never writes; ``services.review_run`` claims the step's row, calls the step and
stores what it returns. Steps read other apps only through their selectors.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

from .models import CollateralKind, StepCode, StepOutcome
from .valuation import ZERO, money, value_collateral


class TransientReviewError(Exception):
    """A fault worth retrying (a dependency briefly unavailable). The step will run again."""


@dataclass
class StepResult:
    outcome: str
    reasons: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)


@dataclass
class ReviewContext:
    """What every step of one run may read, loaded once per task (not once per step)."""

    application: object
    lines: list
    policy: object
    prices: dict  # asset → PriceQuote
    earlier: dict  # step code → stored result dict of finished steps
    _loaded: dict = field(default_factory=dict)

    @property
    def client(self):
        return self.application.client

    def _once(self, key: str, load):
        if key not in self._loaded:
            self._loaded[key] = load()
        return self._loaded[key]

    def facts(self):
        """Onboarding's facts about the client, loaded once per run and shared by every step."""
        from onboarding.selectors import client_facts

        return self._once("facts", lambda: client_facts(user=self.client))

    def outstanding(self) -> list:
        """The VA-margin disclosures the client has not acknowledged at their current version (one query, once)."""
        from disclosures.selectors import outstanding_documents
        from portal.products import Product

        return self._once("outstanding", lambda: outstanding_documents(user=self.client, product=Product.VA_MARGIN))

    def marginable(self):
        """The collateral-book numbers of the policy version (concentration limits, limit rounding), loaded once per run."""
        from lending.collateral.selectors import marginable_numbers

        return self._once("marginable", lambda: marginable_numbers(policy=self.policy))

    def limit_rounding_unit(self) -> Decimal:
        """The policy's unit recommended limits are rounded down to (e.g. HK$10,000)."""
        from lending.collateral.selectors import DEFAULT_LIMIT_ROUNDING_UNIT

        listed = self.marginable()
        return listed.limit_rounding_unit if listed is not None else DEFAULT_LIMIT_ROUNDING_UNIT

    def snapshot(self) -> dict | None:
        from onboarding.selectors import client_snapshot

        return self._once("snapshot", lambda: client_snapshot(user=self.client, facts=self.facts()))


def _dec(value, default: Decimal = ZERO) -> Decimal:
    if value is None or value == "":
        return default
    return Decimal(str(value))


def _pct(value) -> Decimal | None:
    """A percentage given as 30 or as 0.30 → 0.30."""
    if value is None or value == "":
        return None
    number = _dec(value)
    return number / 100 if number > 1 else number


def step_eligibility(ctx: ReviewContext) -> StepResult:
    from onboarding.selectors import product_eligibility
    from portal.products import Product

    # The disclosure status is computed once per run: the disclosures step reads the same list.
    eligibility = product_eligibility(user=ctx.client, product=Product.VA_MARGIN, facts=ctx.facts(), outstanding=ctx.outstanding())
    requirements = [
        {"code": r.code, "label": str(r.label), "met": bool(r.met), "reason": str(r.reason or "")}
        for r in eligibility.requirements
    ]
    if eligibility.eligible:
        return StepResult(StepOutcome.PASS, ["Every eligibility requirement for VA margin financing is met."], {"requirements": requirements})
    reasons = [f"{r['label']}: {r['reason'] or 'not met'}" for r in requirements if not r["met"]]
    return StepResult(StepOutcome.FAIL, reasons or ["Not eligible for VA margin financing."], {"requirements": requirements})


def step_suitability(ctx: ReviewContext) -> StepResult:
    snap = ctx.snapshot()
    if not snap:
        return StepResult(StepOutcome.FAIL, ["No client profile or suitability assessment on file."])
    inputs = {
        "risk_profile": snap.get("risk_profile"),
        "va_knowledge": bool(snap.get("va_knowledge")),
        "net_worth": str(_dec(snap.get("net_worth"))),
        "va_exposure_limit_pct": str(snap.get("va_exposure_limit_pct") or ""),
    }
    reasons, outcome = [], StepOutcome.PASS
    if not snap.get("va_knowledge"):
        return StepResult(
            StepOutcome.FAIL,
            ["No virtual-asset knowledge on record: the client must complete VA training first (SFC/HKMA joint circular, Dec 2023)."],
            inputs,
        )
    reasons.append("Virtual-asset knowledge assessed and on record.")
    profile = snap.get("risk_profile")
    if profile is None:
        return StepResult(StepOutcome.FAIL, ["No risk profile: the suitability assessment is missing or expired."], inputs)
    if int(profile) <= 2:
        outcome = StepOutcome.REFER
        reasons.append(f"Risk profile {profile} of 5 is conservative for leveraged VA exposure: officer to confirm suitability.")
    else:
        reasons.append(f"Risk profile {profile} of 5.")
    va_mv = sum(
        ((line.quantity or ZERO) * ctx.prices[line.asset].price_hkd)
        for line in ctx.lines
        if line.kind == CollateralKind.VIRTUAL_ASSET and line.asset in ctx.prices
    )
    limit_pct = _pct(snap.get("va_exposure_limit_pct"))
    net_worth = _dec(snap.get("net_worth"))
    inputs["va_market_value"] = str(money(Decimal(va_mv)))
    if limit_pct is not None and net_worth > 0:
        allowed = net_worth * limit_pct
        inputs["va_exposure_allowed"] = str(money(allowed))
        if va_mv > allowed:
            outcome = StepOutcome.REFER
            reasons.append(
                f"VA collateral HK${money(Decimal(va_mv)):,} exceeds the client's VA exposure limit "
                f"({limit_pct:.0%} of net worth = HK${money(allowed):,})."
            )
        else:
            reasons.append(f"VA collateral within the client's VA exposure limit ({limit_pct:.0%} of net worth).")
    return StepResult(outcome, reasons, inputs)


def step_disclosures(ctx: ReviewContext) -> StepResult:
    outstanding = ctx.outstanding()
    if not outstanding:
        return StepResult(StepOutcome.PASS, ["Every required risk disclosure is acknowledged at its current version."])
    docs = [{"code": d.code, "title": str(d.title), "version": d.version_number, "reason": str(d.reason)} for d in outstanding]
    return StepResult(
        StepOutcome.FAIL,
        [f"{d['title']} (version {d['version']}): {d['reason']}" for d in docs],
        {"outstanding": docs},
    )


def step_valuation(ctx: ReviewContext) -> StepResult:
    policy = ctx.policy
    from lending.collateral.selectors import haircuts_by_code

    prices = {asset: q.price_hkd for asset, q in ctx.prices.items()}
    haircuts = haircuts_by_code(policy=policy)
    valuation = value_collateral(lines=ctx.lines, policy=policy, prices=prices, haircuts=haircuts)
    inputs = {
        "policy_version": policy.version,
        "prices": {
            a: {"price_hkd": str(q.price_hkd), "source": q.source, "as_of": q.as_of.isoformat(), "fresh": q.fresh}
            for a, q in ctx.prices.items()
        },
        "haircuts": {"BTC": str(policy.btc_haircut), "ETH": str(policy.eth_haircut), **{f"class {k}": str(v) for k, v in policy.securities_haircuts.items()},
                     **{line.instrument.code: str(haircuts.get(line.instrument.code)) for line in ctx.lines if line.instrument_id}},
        "va_max_share": str(policy.va_max_share),
    }
    result = valuation.as_dict()
    if valuation.problems:
        return StepResult(StepOutcome.FAIL, valuation.problems, inputs, result)
    reasons, outcome = [], StepOutcome.PASS
    used_assets = {line.asset for line in ctx.lines if line.kind == CollateralKind.VIRTUAL_ASSET}
    for asset in sorted(used_assets):
        quote = ctx.prices.get(asset)
        if quote is None:
            continue  # reported by the valuation as a problem
        if not quote.fresh:
            outcome = StepOutcome.REFER
            reasons.append(
                f"The {asset} price ({quote.source}, {quote.as_of:%Y-%m-%d %H:%M}) is older than the "
                f"{policy.price_max_age_minutes}-minute freshness limit: revalue before deciding."
            )
    reasons.append(
        f"Market value HK${money(valuation.market_value):,}; lending value HK${money(valuation.lending_value):,} "
        f"(policy v{policy.version})."
    )
    if valuation.va_capped:
        reasons.append(
            f"VA lending value capped at {policy.va_max_share:.0%} of the total: HK${money(valuation.va_lending_value_uncapped):,} "
            f"offered, HK${money(valuation.va_lending_value):,} counted."
        )
    if valuation.lending_value <= 0:
        return StepResult(StepOutcome.FAIL, [*reasons, "The collateral provides no lending value."], inputs, result)
    if valuation.securities_lending_value <= 0:
        return StepResult(StepOutcome.FAIL, [*reasons, "Securities must be the main support; none were offered."], inputs, result)
    if valuation.lending_value < ctx.application.requested_limit:
        reasons.append("The requested limit is above the lending value; the recommendation will be capped.")
    return StepResult(outcome, reasons, inputs, result)


def round_down_limit(value: Decimal, unit: Decimal) -> Decimal:
    """A limit the review computes (a share of lending value, room under an exposure limit) rounded down to a
    multiple of the policy's unit, so a recommendation reads HK$860,000, not HK$863,302.36. Never negative."""
    if value <= 0:
        return ZERO
    if unit <= 0:
        return money(value)
    return money((value / unit).to_integral_value(rounding=ROUND_FLOOR) * unit)


SCORE_BANDS = [  # (minimum score, share of lending value recommended, outcome)
    (70, Decimal("1.00"), StepOutcome.PASS),
    (50, Decimal("0.75"), StepOutcome.PASS),
    (35, Decimal("0.50"), StepOutcome.REFER),
    (0, Decimal("0.00"), StepOutcome.FAIL),
]


def scorecard(*, snap: dict, requested: Decimal, lending_value: Decimal, securities_lending_value: Decimal) -> tuple[int, list[dict]]:
    """Points with the reason for each; the total is out of 100."""
    points: list[dict] = []

    def add(factor: str, value: str, pts: int) -> None:
        points.append({"factor": factor, "value": value, "points": pts})

    requested = requested or Decimal("1")
    net_worth = _dec(snap.get("net_worth"))
    nw_ratio = net_worth / requested
    add("Net worth ÷ requested limit", f"{nw_ratio:.1f}×", 25 if nw_ratio >= 10 else 18 if nw_ratio >= 5 else 10 if nw_ratio >= 2 else 0)
    liquid = _dec(snap.get("liquid_assets")) / requested
    add("Liquid assets ÷ requested limit", f"{liquid:.1f}×", 15 if liquid >= 3 else 8 if liquid >= 1 else 0)
    income = _dec(snap.get("annual_income")) / requested
    add("Annual income ÷ requested limit", f"{income:.2f}×", 10 if income >= 1 else 5 if income >= Decimal("0.3") else 0)
    profile = int(snap.get("risk_profile") or 1)
    add("Risk profile", f"{profile} of 5", {5: 10, 4: 8, 3: 5, 2: 0}.get(profile, -10))
    add("VA knowledge", "yes" if snap.get("va_knowledge") else "no", 10 if snap.get("va_knowledge") else 0)
    add("Professional investor", "yes" if snap.get("professional_investor") else "no", 5 if snap.get("professional_investor") else 0)
    sec_share = securities_lending_value / lending_value if lending_value else ZERO
    add("Securities share of lending value", f"{sec_share:.0%}", 15 if sec_share >= Decimal("0.8") else 10 if sec_share >= Decimal("0.6") else 0)
    coverage = requested / lending_value if lending_value else Decimal("99")
    add("Requested limit ÷ lending value", f"{coverage:.0%}", 10 if coverage <= Decimal("0.5") else 5 if coverage <= Decimal("0.8") else 0 if coverage <= 1 else -10)
    return max(0, min(100, sum(p["points"] for p in points))), points


def step_scorecard(ctx: ReviewContext) -> StepResult:
    snap = ctx.snapshot() or {}
    valuation = ctx.earlier.get(StepCode.VALUATION) or {}
    lending_value = _dec(valuation.get("lending_value"))
    sec_lv = _dec(valuation.get("securities_lending_value"))
    requested = ctx.application.requested_limit
    score, points = scorecard(snap=snap, requested=requested, lending_value=lending_value, securities_lending_value=sec_lv)
    _, share, outcome = next(band for band in SCORE_BANDS if score >= band[0])
    # The recommended limit is never above the lending value, whatever the score; a share of lending value
    # is rounded down by policy (what the client asked for is kept as asked when it is lower).
    recommended = max(ZERO, min(requested, round_down_limit(min(lending_value * share, lending_value), ctx.limit_rounding_unit())))
    unit = ctx.limit_rounding_unit()
    reasons = [f"Score {score}/100: up to {share:.0%} of lending value may be lent.",
               f"Recommended limit HK${recommended:,}" + (f" (rounded down to a multiple of HK${unit:,.0f})." if recommended < requested else ".")]
    if outcome == StepOutcome.FAIL:
        reasons.insert(0, f"Score {score} is below the policy minimum of 35.")
    elif outcome == StepOutcome.REFER:
        reasons.insert(0, f"Score {score} is in the refer band (35–49).")
    return StepResult(
        outcome,
        reasons,
        {"requested_limit": str(requested), "lending_value": str(lending_value), "limit_rounding_unit": str(unit)},
        {"score": score, "points": points, "share_of_lending_value": str(share), "recommended_limit": str(recommended)},
    )


def step_exposure(ctx: ReviewContext) -> StepResult:
    from .selectors import client_exposure, firm_exposure

    policy = ctx.policy
    recommended = _dec((ctx.earlier.get(StepCode.SCORECARD) or {}).get("recommended_limit"))
    existing = client_exposure(user=ctx.client, exclude_application_id=ctx.application.pk)
    firm = firm_exposure()
    unit = ctx.limit_rounding_unit()
    client_room = round_down_limit(policy.client_exposure_limit - existing, unit)
    firm_room = round_down_limit(policy.firm_exposure_limit - firm, unit)
    capped = min(recommended, client_room, firm_room)
    inputs = {
        "client_existing_limits": str(existing),
        "client_exposure_limit": str(policy.client_exposure_limit),
        "firm_total_limits": str(firm),
        "firm_exposure_limit": str(policy.firm_exposure_limit),
        "client_concentration_max": str(policy.client_concentration_max),
    }
    reasons, outcome = [], StepOutcome.PASS
    if capped < recommended:
        outcome = StepOutcome.REFER
        which = "client" if client_room <= firm_room else "firm-wide"
        reasons.append(f"The {which} exposure limit leaves room for HK${capped:,}; recommendation reduced from HK${recommended:,}.")
    else:
        reasons.append(f"Within the client limit (HK${existing:,} already used of HK${policy.client_exposure_limit:,}) and the firm limit.")
    share = (existing + capped) / policy.firm_exposure_limit if policy.firm_exposure_limit else ZERO
    if share > policy.client_concentration_max:
        outcome = StepOutcome.REFER
        reasons.append(f"This client would hold {share:.1%} of the firm's lending capacity (policy maximum {policy.client_concentration_max:.0%}).")
    found, figures = _collateral_concentration(ctx)
    inputs["concentration"] = figures
    if found:
        outcome = StepOutcome.REFER
        reasons[:0] = [b.reason() for b in found]  # first: the recommendation quotes a step's first reason
    elif figures.get("limits"):
        reasons.append("Collateral concentration by instrument, issuer and sector within the policy's limits"
                       + ("." if figures["firm_limits_apply"] else " (the firm-wide limits apply from a larger book)."))
    return StepResult(outcome, reasons, inputs, {"recommended_limit": str(capped), "client_share": str(share.quantize(Decimal("0.0001"))),
                                                 "concentration_breaches": [b.as_dict() for b in found]})


def _collateral_concentration(ctx: ReviewContext):
    """The collateral concentration limits of the marginable list: the client's whole position and the firm's
    book once this facility's collateral (the valuation step's lending value, by line) is added."""
    from lending.collateral.concentration import Name, review_concentration

    valuation = ctx.earlier.get(StepCode.VALUATION) or {}
    instruments = {line.instrument.code: line.instrument for line in ctx.lines
                   if line.kind == CollateralKind.SECURITIES and line.instrument_id}
    added: dict = {}
    for line in valuation.get("lines") or []:
        item = instruments.get(line.get("instrument") or "")
        if item is not None:
            added[item.pk] = added.get(item.pk, ZERO) + _dec(line.get("lending_value"))
    return review_concentration(
        client_id=ctx.client.pk, listed=ctx.marginable(), policy=ctx.policy, prices={a: q.price_hkd for a, q in ctx.prices.items()},
        added_total=_dec(valuation.get("lending_value")), added=added, added_names={i.pk: Name.of(i) for i in instruments.values()})


def normalise_name(name: str) -> str:
    text = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode() or (name or "")
    return re.sub(r"[^a-z0-9\u4e00-\u9fff ]+", " ", text.lower()).strip()


SCREENING_THRESHOLD = 88


def screen_names(names: list[str], entries) -> list[dict]:
    from rapidfuzz import fuzz

    hits = []
    for entry in entries:
        for listed in entry.all_names():
            target = normalise_name(listed)
            for name in names:
                score = fuzz.token_sort_ratio(normalise_name(name), target)
                if score >= SCREENING_THRESHOLD:
                    hits.append({"entry_id": entry.pk, "listed_name": listed, "category": entry.category, "client_name": name, "score": round(score, 1)})
    hits.sort(key=lambda h: -h["score"])
    return hits


def step_screening(ctx: ReviewContext) -> StepResult:
    from .selectors import watchlist

    snap = ctx.snapshot() or {}
    names = [n for n in [snap.get("legal_name"), ctx.client.full_name, *(snap.get("other_names") or [])] if n]
    names = list(dict.fromkeys(names))
    entries = list(watchlist())
    hits = screen_names(names, entries)
    inputs = {"names_screened": names, "watch_list_entries": len(entries), "threshold": SCREENING_THRESHOLD}
    if hits:
        # A possible match refers the case to the officer; screening never declines by itself.
        return StepResult(
            StepOutcome.REFER,
            [f"Possible match: {h['client_name']} ≈ {h['listed_name']} ({h['category']}, {h['score']}%)." for h in hits[:5]],
            inputs,
            {"hits": hits[:20]},
        )
    return StepResult(StepOutcome.PASS, ["No match on the watch list."], inputs, {"hits": []})


STEPS = {
    StepCode.ELIGIBILITY: step_eligibility,
    StepCode.SUITABILITY: step_suitability,
    StepCode.DISCLOSURES: step_disclosures,
    StepCode.VALUATION: step_valuation,
    StepCode.SCORECARD: step_scorecard,
    StepCode.EXPOSURE: step_exposure,
    StepCode.SCREENING: step_screening,
}
