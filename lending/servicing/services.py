"""Writes for servicing: the servicing policy (maker-checker), base-rate fixings (four-eyes), facility terms."""

from __future__ import annotations

import calendar
from datetime import date
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from lending.inputs import decimal_input, places_input
from lending.services import maker_checker_create, maker_checker_decide
from portal.access import ensure_four_eyes, ensure_staff_permission
from portal.audit import audit_log, snapshot
from portal.errors import ConflictError, ForbiddenError, NotFoundError, PortalError
from portal.permissions import Perm

from . import selectors
from .models import ActivityStatementElection, BaseRate, BaseRateFixing, FacilityTerms, FixingStatus, ServicingPolicy

ZERO = Decimal("0")
RATE_STEP = Decimal("0.000001")


def _rate(value, field: str, *, maximum: Decimal = Decimal("0.5")) -> Decimal:
    return places_input(value, field, places=6, minimum=ZERO, maximum=maximum)


def _validate_numbers(numbers: dict) -> dict:
    from lending import selectors as lending_selectors

    clean: dict = {}
    base = numbers.get("base_rate")
    if base not in BaseRate.values:
        raise PortalError("validation_error", _("Choose the base rate: HKD Prime or 1-month HIBOR."), {"base_rate": [_("One of %(items)s.") % {"items": ", ".join(BaseRate.values)}]})
    clean["base_rate"] = base
    tiers = numbers.get("tier_margins") or {}
    if not isinstance(tiers, dict) or not tiers:
        raise PortalError("validation_error", _("Give at least one pricing tier and its margin."), {"tier_margins": [_("Required.")]})
    clean["tier_margins"] = {str(k)[:20]: str(_rate(v, f"margin of tier {k}", maximum=Decimal("0.3"))) for k, v in tiers.items()}
    if numbers.get("default_tier") not in clean["tier_margins"]:
        raise PortalError("validation_error", _("The default tier must be one of the tiers."), {"default_tier": [_("One of %(items)s.") % {"items": ", ".join(clean["tier_margins"])}]})
    clean["default_tier"] = numbers["default_tier"]
    clean["overdue_margin"] = _rate(numbers.get("overdue_margin"), "overdue_margin", maximum=Decimal("0.3"))
    clean["arrangement_fee"] = places_input(numbers.get("arrangement_fee", "0"), "arrangement_fee", places=2, minimum=ZERO)
    clean["liquidation_fee_rate"] = places_input(numbers.get("liquidation_fee_rate", "0"), "liquidation_fee_rate", places=4, minimum=ZERO, maximum=Decimal("0.05"))
    for key in ("client_drawdown_auto_max", "staff_four_eyes_above", "withdrawal_officer_above", "withdrawal_second_above"):
        clean[key] = places_input(numbers.get(key), key, places=2, minimum=ZERO)
    if clean["withdrawal_second_above"] < clean["withdrawal_officer_above"]:
        raise PortalError("validation_error", _("The second-approval tier must be at or above the officer tier."), {"withdrawal_second_above": [_("At least the officer tier.")]})
    level = places_input(numbers.get("release_initial_level"), "release_initial_level", places=4, minimum=Decimal("0.05"), maximum=Decimal("1"))
    collateral = lending_selectors.policy_current()
    if collateral and level >= collateral.watch_level:
        raise PortalError(
            "release_level_not_below_watch",
            _("The initial level for releases must be below the watch level of %(watch)s (26EC5: releases keep the facility clear of the monitoring levels).") % {"watch": f"{collateral.watch_level:.0%}"},
            {"release_initial_level": [_("Below the watch level.")]},
        )
    clean["release_initial_level"] = level
    clean["whitelist_cooling_off_hours"] = int(places_input(numbers.get("whitelist_cooling_off_hours", 24), "whitelist_cooling_off_hours", places=0, minimum=Decimal("1"), maximum=Decimal("720")))
    clean["review_months"] = int(places_input(numbers.get("review_months", 12), "review_months", places=0, minimum=Decimal("1"), maximum=Decimal("12")))
    grace = decimal_input(numbers.get("unpaid_interest_grace_days", 30), "unpaid_interest_grace_days", minimum=Decimal("1"), maximum=Decimal("90"))
    if grace != grace.to_integral_value():
        raise PortalError("validation_error", _("Give the grace period for unpaid interest in whole days."),
                          {"unpaid_interest_grace_days": [_("Whole days.")]})
    clean["unpaid_interest_grace_days"] = int(grace)
    return clean


@transaction.atomic
def servicing_policy_propose(*, actor, numbers: dict, reason: str, effective_from=None) -> ServicingPolicy:
    """Propose servicing terms; in force only once a different credit manager approves them, and not before
    ``effective_from`` when one is given."""
    from lending.services import effective_from_input

    ensure_staff_permission(actor=actor, perm=Perm.POLICY_PROPOSE)
    if not (reason or "").strip():
        raise PortalError("validation_error", _("Give the reason for the change."), {"reason": [_("Required.")]})
    clean = _validate_numbers(numbers)
    clean["effective_from"] = effective_from_input(effective_from)
    current = selectors.servicing_policy_current()
    policy = maker_checker_create(ServicingPolicy, actor=actor, reason=reason.strip(), numbers=clean)
    audit_log(actor=actor, action="servicing.policy.proposed", obj=policy,
              before=snapshot(current, ServicingPolicy.NUMBERS) | {"version": current.version} if current else None,
              after=snapshot(policy, ServicingPolicy.NUMBERS) | {"version": policy.version, "reason": policy.reason})
    return policy


@transaction.atomic
def servicing_policy_decide(*, actor, policy_id: int, approve: bool, note: str = "") -> ServicingPolicy:
    ensure_staff_permission(actor=actor, perm=Perm.POLICY_APPROVE)
    try:
        policy = ServicingPolicy.objects.select_for_update(no_key=True).get(pk=policy_id)
    except ServicingPolicy.DoesNotExist:
        raise NotFoundError("not_found", _("No such servicing policy.")) from None
    superseded = maker_checker_decide(policy, actor=actor, approve=approve, note=note,
                                      not_awaiting=_("Servicing policy v%(version)s is %(status)s, not awaiting approval."))
    audit_log(actor=actor, action=f"servicing.policy.{'approved' if approve else 'rejected'}", obj=policy,
              before={"version_in_force": superseded.version} if superseded else None,
              after={"version": policy.version, "status": policy.status, "note": note})
    return policy


# --- Base-rate fixings -----------------------------------------------------------------------------


@transaction.atomic
def fixing_enter(*, actor, base_rate: str, rate, effective_date: date, source: str) -> BaseRateFixing:
    """Enter a published fixing with its effective date and source; a second person confirms it."""
    ensure_staff_permission(actor=actor, perm=Perm.POLICY_PROPOSE)
    if base_rate not in BaseRate.values:
        raise PortalError("validation_error", _("Choose the base rate: HKD Prime or 1-month HIBOR."), {"base_rate": [_("Required.")]})
    if not (source or "").strip():
        raise PortalError("validation_error", _("Name the source of the fixing (e.g. the bank's announcement or HKAB)."), {"source": [_("Required.")]})
    if not isinstance(effective_date, date):
        raise PortalError("validation_error", _("Give the date the rate is effective from."), {"effective_date": [_("A date.")]})
    value = _rate(rate, "rate", maximum=Decimal("0.3"))
    fixing = BaseRateFixing.objects.create(base_rate=base_rate, rate=value, effective_date=effective_date, source=source.strip()[:200], entered_by=actor)
    audit_log(actor=actor, action="servicing.fixing.entered", obj=fixing,
              after={"base_rate": base_rate, "rate": value, "effective_date": effective_date.isoformat(), "source": fixing.source})
    return fixing


@transaction.atomic
def fixing_decide(*, actor, fixing_id: int, confirm: bool) -> BaseRateFixing:
    """A second person confirms the fixing against its source, or rejects it. A fixing never takes
    effect on a day already accrued; a correction is a new fixing with a later effective date."""
    ensure_staff_permission(actor=actor, perm=Perm.POLICY_PROPOSE)
    try:
        fixing = BaseRateFixing.objects.select_for_update(no_key=True).get(pk=fixing_id)
    except BaseRateFixing.DoesNotExist:
        raise NotFoundError("not_found", _("No such fixing.")) from None
    ensure_four_eyes(maker=fixing.entered_by, checker=actor)
    if fixing.status != FixingStatus.ENTERED:
        raise ConflictError("invalid_state", _("This fixing is already %(status)s.") % {"status": fixing.get_status_display().lower()})
    if confirm and fixing.effective_date <= _last_accrued_day():
        raise ConflictError("already_accrued", _("Interest has already been accrued for %(day)s; a fixing cannot take effect on a day already charged. Enter it with a later effective date.") % {"day": fixing.effective_date.isoformat()})
    fixing.status = FixingStatus.CONFIRMED if confirm else FixingStatus.REJECTED
    fixing.decided_by, fixing.decided_at = actor, timezone.now()
    try:
        with transaction.atomic():
            fixing.save(update_fields=["status", "decided_by", "decided_at"])
    except IntegrityError:
        raise ConflictError("duplicate_fixing", _("A confirmed fixing for that base rate and date exists already.")) from None
    audit_log(actor=actor, action=f"servicing.fixing.{fixing.status}", obj=fixing, before={"status": FixingStatus.ENTERED}, after={"status": fixing.status})
    return fixing


def _last_accrued_day() -> date:
    from .models import AccrualDay

    return AccrualDay.objects.aggregate(d=Max("day"))["d"] or date.min


# --- Facility terms and the letter --------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def terms_offer(*, application, tier: str | None = None) -> FacilityTerms:
    """The servicing terms of an application's facility letter, from the policy in force (called
    when the letter is written, inside the approval's transaction)."""
    policy = selectors.servicing_policy_current()
    if policy is None:
        raise PortalError("no_servicing_policy", _("No servicing policy (rates and fees) is in force; the facility letter cannot state its rate."))
    tier = tier or policy.default_tier
    margin = policy.margin_for(tier)
    if margin is None:
        raise PortalError("validation_error", _("Unknown pricing tier %(tier)s.") % {"tier": tier}, {"tier": [_("One of %(items)s.") % {"items": ", ".join(policy.tier_margins)}]})
    values = {"policy": policy, "base_rate": policy.base_rate, "tier": tier, "margin": margin, "overdue_margin": policy.overdue_margin,
              "arrangement_fee": policy.arrangement_fee, "liquidation_fee_rate": policy.liquidation_fee_rate}
    terms, _created = FacilityTerms.objects.update_or_create(application=application, facility=None, defaults=values)
    return terms


def terms_activate(*, facility, actor) -> FacilityTerms | None:
    """The client accepted the letter: attach its terms to the facility, set the review date and charge
    the arrangement fee to the ledger (inside the acceptance's transaction, facility row locked, before
    the revaluation; the caller's audit row records ``terms_snapshot``)."""
    from lending.ledger import ledger_post
    from lending.models import TxnKind

    terms = FacilityTerms.objects.select_for_update(no_key=True, of=("self",)).filter(application_id=facility.application_id).select_related("policy").first()
    if terms is None:
        return None
    terms.facility = facility
    terms.review_date = add_months(timezone.localdate(), terms.policy.review_months)
    terms.save(update_fields=["facility", "review_date"])
    if terms.arrangement_fee > 0:
        ledger_post(facility=facility, kind=TxnKind.FEE, amount=terms.arrangement_fee, actor=actor,
                    reference=f"FEE-ARR-{facility.pk}", narrative="Arrangement fee")
        facility.save(update_fields=["drawn_balance"])
    return terms


def terms_snapshot(terms: FacilityTerms | None) -> dict | None:
    """The terms as the facility-opening audit row records them (written by lending after its revaluation)."""
    if terms is None:
        return None
    return {"servicing_policy": terms.policy.version, "base_rate": terms.base_rate, "tier": terms.tier, "margin": terms.margin,
            "overdue_margin": terms.overdue_margin, "arrangement_fee": terms.arrangement_fee,
            "review_date": terms.review_date.isoformat() if terms.review_date else None}


def next_business_day(day: date, n: int) -> date:
    """The n-th Hong Kong business day after ``day``, on the risk engine's calendar (the one owner)."""
    from lending.risk.revaluation import hk_business_day_after

    return hk_business_day_after(day, n)


# --- A professional investor's election not to receive activity statements ---------------------------

ELECTION_TEXT = _(
    "I am a professional investor. I elect not to receive activity statements for my margin financing facilities. "
    "I will still receive a monthly statement of account, and I may revoke this election at any time."
)


@transaction.atomic
def activity_statements_elect(*, user, confirm: bool) -> ActivityStatementElection:
    """A client whose professional-investor status is verified and current elects, in writing, not to
    receive activity statements (Cap. 571Q); the statements job then skips them. Monthly statements go on."""
    from onboarding.selectors import client_facts

    from .statements import language_of

    if not (user and user.is_authenticated and user.is_client):
        raise ForbiddenError("permission_denied", _("Only the client can make this election."))
    if not confirm:
        raise PortalError("validation_error", _("Tick the box to confirm the election in writing."), {"confirm": [_("Required.")]})
    facts = client_facts(user=user)
    if facts is None or not facts.pi_valid:
        raise ForbiddenError("not_professional_investor", _("Only a client whose professional-investor status is verified and current may "
                                                            "elect not to receive activity statements."))
    if ActivityStatementElection.objects.select_for_update(no_key=True).filter(client=user, revoked_at__isnull=True).exists():
        raise ConflictError("already_elected", _("You have already elected not to receive activity statements."))
    language = language_of(user)
    with translation.override(language):
        text = str(ELECTION_TEXT)
    election = ActivityStatementElection.objects.create(client=user, text=text, language=language)
    audit_log(actor=user, action="servicing.statements.activity_waived", obj=election,
              after={"text": text, "language": language, "pi_expires_on": facts.verified.expires_on.isoformat()})
    return election


@transaction.atomic
def activity_statements_resume(*, user) -> ActivityStatementElection:
    """Revoke the election: activity statements are issued again from the next event on the account."""
    election = ActivityStatementElection.objects.select_for_update(no_key=True).filter(client=user, revoked_at__isnull=True).first() if user.is_authenticated else None
    if election is None:
        raise NotFoundError("not_found", _("You have no election in force."))
    election.revoked_at = timezone.now()
    election.save(update_fields=["revoked_at"])
    audit_log(actor=user, action="servicing.statements.activity_resumed", obj=election,
              before={"elected_at": election.elected_at.isoformat()}, after={"revoked_at": election.revoked_at.isoformat()})
    return election
