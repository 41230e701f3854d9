"""The credit-review steps: each reads what it needs and returns an explainable result.

A step never writes; ``services.review_run`` claims the step's row, calls the step and
stores what it returns. Steps read other apps only through their selectors.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from .models import CollateralKind, StepCode, StepOutcome, watchlist_category_label
from .valuation import ZERO, money, value_collateral


class TransientReviewError(Exception):
    """A fault worth retrying (a dependency briefly unavailable). The step will run again."""


# Every sentence a review step can give, by code. A step stores the code and its parameters beside the
# English sentence (kept as the record of what was said), and each reader gets it in their own language.
# Figures are stored already formatted (HK$1,234.00, 30%), which reads the same in both languages; a
# parameter that is itself words from another app (a requirement's label, a document's title) is stored
# in every language the portal speaks.
REASON_TEXTS = {
    "eligibility.met": _("Every eligibility requirement for VA margin financing is met."),
    "eligibility.unmet": _("%(label)s: %(reason)s"),
    "eligibility.not_eligible": _("Not eligible for VA margin financing."),
    "suitability.no_profile": _("No client profile or suitability assessment on file."),
    "suitability.no_va_knowledge": _("No virtual-asset knowledge on record: the client must complete VA training first (SFC/HKMA joint circular, Dec 2023)."),
    "suitability.va_knowledge": _("Virtual-asset knowledge assessed and on record."),
    "suitability.no_risk_profile": _("No risk profile: the suitability assessment is missing or expired."),
    "suitability.conservative": _("Risk profile %(profile)s of 5 is conservative for leveraged VA exposure: officer to confirm suitability."),
    "suitability.risk_profile": _("Risk profile %(profile)s of 5."),
    "suitability.va_exposure_exceeded": _("VA collateral HK$%(va)s exceeds the client's VA exposure limit (%(pct)s of net worth = HK$%(allowed)s)."),
    "suitability.va_exposure_within": _("VA collateral within the client's VA exposure limit (%(pct)s of net worth)."),
    "disclosures.acknowledged": _("Every required risk disclosure is acknowledged at its current version."),
    "disclosures.outstanding": _("%(title)s (version %(version)s): %(reason)s"),
    "valuation.no_price": _("No price for %(asset)s."),
    "valuation.unknown_class": _("Unknown securities haircut class %(cls)s."),
    "valuation.stale_price": _("The %(asset)s price (%(source)s, %(as_of)s) is older than the %(minutes)s-minute freshness limit: revalue before deciding."),
    "valuation.values": _("Market value HK$%(market)s; lending value HK$%(lending)s (policy v%(version)s)."),
    "valuation.va_capped": _("VA lending value capped at %(share)s of the total: HK$%(offered)s offered, HK$%(counted)s counted."),
    "valuation.no_lending_value": _("The collateral provides no lending value."),
    "valuation.no_securities": _("Securities must be the main support; none were offered."),
    "valuation.above_lending_value": _("The requested limit is above the lending value; the recommendation will be capped."),
    "valuation.beyond_bounds": _("The collateral's value is beyond what a facility can record; the application cannot be approved as entered."),
    "scorecard.share": _("Score %(score)s/100: up to %(share)s of lending value may be lent."),
    "scorecard.recommended": _("Recommended limit HK$%(limit)s."),
    "scorecard.recommended_rounded": _("Recommended limit HK$%(limit)s (rounded down to a multiple of HK$%(unit)s)."),
    "scorecard.below_minimum": _("Score %(score)s is below the policy minimum of 35."),
    "scorecard.refer_band": _("Score %(score)s is in the refer band (35–49)."),
    "exposure.client_room": _("The client exposure limit leaves room for HK$%(room)s; recommendation reduced from HK$%(recommended)s."),
    "exposure.firm_room": _("The firm-wide exposure limit leaves room for HK$%(room)s; recommendation reduced from HK$%(recommended)s."),
    "exposure.within": _("Within the client limit (HK$%(used)s already used of HK$%(limit)s) and the firm limit."),
    "exposure.client_share": _("This client would hold %(share)s of the firm's lending capacity (policy maximum %(max)s)."),
    "exposure.concentration_within": _("Collateral concentration by instrument, issuer and sector within the policy's limits."),
    "exposure.concentration_within_small_book": _("Collateral concentration by instrument, issuer and sector within the policy's limits (the firm-wide limits apply from a larger book)."),
    "concentration.client.instrument": _("Concentration: %(name)s would be %(share)s of the client's lending value, above the policy maximum of %(limit)s."),
    "concentration.client.issuer": _("Concentration: issuer %(name)s would be %(share)s of the client's lending value, above the policy maximum of %(limit)s."),
    "concentration.client.sector": _("Concentration: sector %(name)s would be %(share)s of the client's lending value, above the policy maximum of %(limit)s."),
    "concentration.firm.instrument": _("Concentration: %(name)s would be %(share)s of the firm's book (lending value), above the policy maximum of %(limit)s."),
    "concentration.firm.issuer": _("Concentration: issuer %(name)s would be %(share)s of the firm's book (lending value), above the policy maximum of %(limit)s."),
    "concentration.firm.sector": _("Concentration: sector %(name)s would be %(share)s of the firm's book (lending value), above the policy maximum of %(limit)s."),
    "screening.possible_match": _("Possible match: %(client)s ≈ %(listed)s (%(category)s, %(score)s%%)."),
    "screening.clear": _("No match on the watch list."),
    "review.incomplete": _("This check could not be completed (%(error)s); the officer must check it by hand."),
    "review.incomplete_attempts": _("This check could not be completed after %(attempts)s attempts (%(error)s); the officer must check it by hand."),
    "review.incomplete_error": _("This check could not be completed because of an unexpected error (%(error)s); the officer must check it by hand."),
}


@dataclass(frozen=True)
class Reason:
    code: str
    params: dict

    @property
    def text(self) -> str:
        """The sentence in English: what the review said, kept with the code."""
        return reason_render({"code": self.code, "params": self.params}, language="en")

    def coded(self) -> dict:
        return {"code": self.code, "params": self.params}


def say(code: str, **params) -> Reason:
    assert code in REASON_TEXTS, code
    return Reason(code, params)


def in_every_language(produce) -> dict:
    """``produce()`` evaluated in each of the portal's languages: words another app writes (a requirement's
    label, a document's title) stored so that each reader gets them in theirs."""
    out = {}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            out[code] = str(produce())
    return out


def _source_words(stored: str) -> dict:
    """A price's stored source (English, as the price authority keeps it) in every language: a reason is read later,
    in its reader's (``lending.risk.reference_source`` owns the wording)."""
    from lending.risk.reference_source import source_text

    return in_every_language(lambda: source_text(stored))


def reason_render(reason, *, language: str | None = None) -> str:
    """One stored reason as a sentence in ``language`` (the active one by default). A reason stored as
    plain text (before reasons had codes, or a sentence no code matched) is shown as it was written."""
    if isinstance(reason, str):
        return reason
    if not isinstance(reason, dict) or reason.get("code") not in REASON_TEXTS:
        return str((reason or {}).get("text", "")) if isinstance(reason, dict) else str(reason)
    language = language or translation.get_language() or settings.LANGUAGE_CODE
    with translation.override(language):
        params = {}
        for key, value in (reason.get("params") or {}).items():
            if isinstance(value, dict):  # words in every language
                value = value.get(language) or value.get(language.split("-")[0]) or value.get(settings.LANGUAGE_CODE) or next(iter(value.values()), "")
            params[key] = value
        try:
            return str(REASON_TEXTS[reason["code"]]) % params
        except (KeyError, TypeError, ValueError):  # a row whose parameters no longer fit the sentence
            return str(reason.get("text") or REASON_TEXTS[reason["code"]])


def step_reasons(step) -> list[str]:
    """A stored step's reasons in the reader's language: the coded ones rendered, the rest as written."""
    codes = list(getattr(step, "reason_codes", None) or [])
    texts = list(step.reasons or [])
    return [reason_render(codes[i]) if i < len(codes) and codes[i] else reason_render(text) for i, text in enumerate(texts)]


def recommendation_reasons(*, application, steps) -> list[str]:
    """The review's recommendation reasons ("Check: its first reason") in the reader's language: each stored
    line is found again among the run's steps by its English wording; a line no step gave is shown as stored."""
    with translation.override("en"):
        by_text = {f"{s.get_code_display()}: {s.reasons[0]}": s for s in steps if s.reasons}
    out = []
    for line in application.recommendation_reasons or []:
        step = by_text.get(str(line))
        out.append(f"{step.get_code_display()}: {step_reasons(step)[0]}" if step is not None else str(line))
    return out


# The sentences the review wrote before reasons had codes, and the ones other modules still hand it as text
# (the valuation's problems): each pattern's groups are the parameters. Sentences quoting another app's words
# (a requirement, a document) are left as text: those words would stay English whatever the reader's language.
_NOT_FROM_TEXT = ("eligibility.unmet", "disclosures.outstanding")


@functools.cache
def _known_sentences() -> list:
    with translation.override("en"):
        texts = [(code, str(text).replace("%%", "%")) for code, text in REASON_TEXTS.items() if code not in _NOT_FROM_TEXT]
    # The sentence with the most fixed words first: "Recommended limit HK$… (rounded down …)." before "Recommended limit HK$…."
    texts.sort(key=lambda item: -len(re.sub(r"%\(\w+\)s", "", item[1])))
    return [(code, re.compile("^" + re.sub(r"%\\\(([a-z_]+)\\\)s", r"(?P<\1>.+?)", re.escape(text)) + "$")) for code, text in texts]


def reason_from_text(text: str) -> dict | None:
    """The code and parameters of an English sentence the review gives, or None when it is not one of them."""
    for code, pattern in _known_sentences():
        match = pattern.match(text or "")
        if match:
            return {"code": code, "params": match.groupdict()}
    return None


@dataclass
class StepResult:
    outcome: str
    reasons: list = field(default_factory=list)  # Reason, or plain text; stored as the English sentences
    inputs: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)
    codes: list = field(default_factory=list)  # beside each English sentence: its code and parameters (or {})

    def __post_init__(self):
        texts, codes = [], []
        for item in self.reasons:
            if isinstance(item, Reason):
                texts.append(item.text)
                codes.append(item.coded())
            else:
                texts.append(str(item))
                codes.append(reason_from_text(str(item)) or {})
        self.reasons, self.codes = texts, codes


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
        return StepResult(StepOutcome.PASS, [say("eligibility.met")], {"requirements": requirements})
    # The unmet requirements' words are onboarding's: asked for in each language the portal speaks.
    words = {}
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            again = product_eligibility(user=ctx.client, product=Product.VA_MARGIN, facts=ctx.facts(), outstanding=ctx.outstanding())
            for r in again.requirements:
                words.setdefault(r.code, {"label": {}, "reason": {}})
                words[r.code]["label"][language] = str(r.label)
                words[r.code]["reason"][language] = str(r.reason or _("not met"))
    reasons = [say("eligibility.unmet", label=words[r["code"]]["label"], reason=words[r["code"]]["reason"])
               for r in requirements if not r["met"] and r["code"] in words]
    return StepResult(StepOutcome.FAIL, reasons or [say("eligibility.not_eligible")], {"requirements": requirements})


def step_suitability(ctx: ReviewContext) -> StepResult:
    snap = ctx.snapshot()
    if not snap:
        return StepResult(StepOutcome.FAIL, [say("suitability.no_profile")])
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
            [say("suitability.no_va_knowledge")],
            inputs,
        )
    reasons.append(say("suitability.va_knowledge"))
    profile = snap.get("risk_profile")
    if profile is None:
        return StepResult(StepOutcome.FAIL, [say("suitability.no_risk_profile")], inputs)
    if int(profile) <= 2:
        outcome = StepOutcome.REFER
        reasons.append(say("suitability.conservative", profile=str(profile)))
    else:
        reasons.append(say("suitability.risk_profile", profile=str(profile)))
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
            reasons.append(say("suitability.va_exposure_exceeded", va=f"{money(Decimal(va_mv)):,}", pct=f"{limit_pct:.0%}", allowed=f"{money(allowed):,}"))
        else:
            reasons.append(say("suitability.va_exposure_within", pct=f"{limit_pct:.0%}"))
    return StepResult(outcome, reasons, inputs)


def step_disclosures(ctx: ReviewContext) -> StepResult:
    outstanding = ctx.outstanding()
    if not outstanding:
        return StepResult(StepOutcome.PASS, [say("disclosures.acknowledged")])
    docs = [{"code": d.code, "title": str(d.title), "version": d.version_number, "reason": str(d.reason)} for d in outstanding]
    # A document's title and why it is outstanding are the disclosures app's words, in each language.
    from disclosures.selectors import outstanding_documents
    from portal.products import Product

    words: dict = {}
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            for d in outstanding_documents(user=ctx.client, product=Product.VA_MARGIN):
                words.setdefault(d.code, {"title": {}, "reason": {}})
                words[d.code]["title"][language], words[d.code]["reason"][language] = str(d.title), str(d.reason)
    return StepResult(
        StepOutcome.FAIL,
        [say("disclosures.outstanding", title=words.get(d["code"], {}).get("title") or d["title"], version=str(d["version"]),
             reason=words.get(d["code"], {}).get("reason") or d["reason"]) for d in docs],
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
            reasons.append(say("valuation.stale_price", asset=asset, source=_source_words(quote.source),
                               as_of=f"{timezone.localtime(quote.as_of):%Y-%m-%d %H:%M}", minutes=str(policy.price_max_age_minutes)))
    reasons.append(say("valuation.values", market=f"{money(valuation.market_value):,}", lending=f"{money(valuation.lending_value):,}",
                       version=str(policy.version)))
    if valuation.va_capped:
        reasons.append(say("valuation.va_capped", share=f"{policy.va_max_share:.0%}", offered=f"{money(valuation.va_lending_value_uncapped):,}",
                           counted=f"{money(valuation.va_lending_value):,}"))
    if valuation.lending_value <= 0:
        return StepResult(StepOutcome.FAIL, [*reasons, say("valuation.no_lending_value")], inputs, result)
    if valuation.securities_lending_value <= 0:
        return StepResult(StepOutcome.FAIL, [*reasons, say("valuation.no_securities")], inputs, result)
    if valuation.lending_value < ctx.application.requested_limit:
        reasons.append(say("valuation.above_lending_value"))
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
    reasons = [say("scorecard.share", score=str(score), share=f"{share:.0%}"),
               say("scorecard.recommended_rounded", limit=f"{recommended:,}", unit=f"{unit:,.0f}") if recommended < requested
               else say("scorecard.recommended", limit=f"{recommended:,}")]
    if outcome == StepOutcome.FAIL:
        reasons.insert(0, say("scorecard.below_minimum", score=str(score)))
    elif outcome == StepOutcome.REFER:
        reasons.insert(0, say("scorecard.refer_band", score=str(score)))
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
        which = "exposure.client_room" if client_room <= firm_room else "exposure.firm_room"
        reasons.append(say(which, room=f"{capped:,}", recommended=f"{recommended:,}"))
    else:
        reasons.append(say("exposure.within", used=f"{existing:,}", limit=f"{policy.client_exposure_limit:,}"))
    share = (existing + capped) / policy.firm_exposure_limit if policy.firm_exposure_limit else ZERO
    if share > policy.client_concentration_max:
        outcome = StepOutcome.REFER
        reasons.append(say("exposure.client_share", share=f"{share:.1%}", max=f"{policy.client_concentration_max:.0%}"))
    found, figures = _collateral_concentration(ctx)
    inputs["concentration"] = figures
    if found:
        outcome = StepOutcome.REFER
        reasons[:0] = [_breach_reason(b) for b in found]  # first: the recommendation quotes a step's first reason
    elif figures.get("limits"):
        reasons.append(say("exposure.concentration_within" if figures["firm_limits_apply"] else "exposure.concentration_within_small_book"))
    return StepResult(outcome, reasons, inputs, {"recommended_limit": str(capped), "client_share": str(share.quantize(Decimal("0.0001"))),
                                                 "concentration_breaches": [b.as_dict() for b in found]})


def _breach_reason(breach) -> Reason:
    """A concentration breach as the review says it (the check's own sentence, with a code)."""
    scope = "client" if breach.scope == "client" else "firm"
    return say(f"concentration.{scope}.{breach.dimension}", name=breach.name, share=f"{breach.share:.1%}", limit=f"{breach.limit:.0%}")


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
            [say("screening.possible_match", client=h["client_name"], listed=h["listed_name"],
                 category=in_every_language(lambda h=h: watchlist_category_label(h["category"])),
                 score=str(h["score"])) for h in hits[:5]],
            inputs,
            {"hits": hits[:20]},
        )
    return StepResult(StepOutcome.PASS, [say("screening.clear")], inputs, {"hits": []})


STEPS = {
    StepCode.ELIGIBILITY: step_eligibility,
    StepCode.SUITABILITY: step_suitability,
    StepCode.DISCLOSURES: step_disclosures,
    StepCode.VALUATION: step_valuation,
    StepCode.SCORECARD: step_scorecard,
    StepCode.EXPOSURE: step_exposure,
    StepCode.SCREENING: step_screening,
}
