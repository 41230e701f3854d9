"""Writes for lending: the only place lending state changes."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import timedelta
from decimal import Decimal

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from lending import locks
from lending.inputs import MONEY_MAX, date_text, decimal_input, money_input, quantity_input
from lending.ledger import ledger_post
from lending.servicing.authorise import money_movement_authorised
from portal.access import ensure_four_eyes, ensure_not_own_record, ensure_staff_permission
from portal.audit import SYSTEM, audit_log, snapshot
from portal.errors import ConflictError, ForbiddenError, NotFoundError, PortalError
from portal.permissions import Perm

from . import selectors
from .models import (
    STAFF_STATE_LABELS,
    STEP_ORDER,
    VA_HAIRCUT_FLOOR,
    AppState,
    Asset,
    CollateralKind,
    CollateralLine,
    CollateralPolicy,
    CollateralPosition,
    DeclineReason,
    Facility,
    FacilityApplication,
    FacilityState,
    FacilityTransaction,
    MakerCheckerPolicy,
    PolicyStatus,
    Recommendation,
    ReviewStep,
    ScreeningStatus,
    StepCode,
    StepOutcome,
    StepStatus,
    TxnKind,
    WatchListCategory,
    WatchListEntry,
)
from .review import STEPS, ReviewContext, TransientReviewError
from .valuation import ZERO, money, value_collateral

logger = logging.getLogger(__name__)


APPLICATION_FIELDS = (
    "state", "requested_limit", "purpose", "review_run", "recommendation", "recommended_limit", "approved_limit",
    "conditions", "decided_by", "second_approver", "decline_reasons", "questions", "policy", "decision_policy",
)
FACILITY_FIELDS = ("state", "limit", "drawn_balance", "lending_value", "suspended_reason")


# --- Collateral policy (maker-checker) ------------------------------------------------


def _validate_policy_numbers(numbers: dict) -> dict:
    """Check a proposed policy against the regulatory floors and internal consistency."""
    clean: dict = {}
    for asset in ("btc", "eth"):
        key = f"{asset}_haircut"
        value = decimal_input(numbers.get(key), key, maximum=Decimal("1"))
        if value < VA_HAIRCUT_FLOOR:
            raise PortalError(
                "va_haircut_below_floor",
                _("The haircut on %(upper)s collateral must be at least 60%% (SFC circular 26EC5 of 11 Feb 2026: VA collateral for margin financing carries a haircut of at least 60%%); %(value)s was proposed.") % {"upper": asset.upper(), "value": f"{(value * 100).normalize():f}%"},
                {key: [_("At least 0.60 (60%): the SFC's floor for virtual-asset collateral.")]},
            )
        clean[key] = value
    classes = numbers.get("securities_haircuts") or {}
    if not isinstance(classes, dict) or not classes:
        raise PortalError("validation_error", _("At least one securities haircut class is required."), {"securities_haircuts": [_("Required.")]})
    clean["securities_haircuts"] = {
        str(k)[:8]: str(decimal_input(v, f"securities haircut class {k}", minimum=ZERO, maximum=Decimal("1"))) for k, v in classes.items()
    }
    clean["va_max_share"] = decimal_input(numbers.get("va_max_share"), "va_max_share", minimum=ZERO, maximum=Decimal("0.5"))
    clean["price_max_age_minutes"] = int(decimal_input(numbers.get("price_max_age_minutes"), "price_max_age_minutes", minimum=Decimal("1"), maximum=Decimal("1440")))
    clean["officer_authority_default"] = decimal_input(numbers.get("officer_authority_default"), "officer_authority_default", minimum=ZERO)
    clean["watch_level"] = decimal_input(numbers.get("watch_level"), "watch_level", minimum=Decimal("0.5"))
    clean["margin_call_level"] = decimal_input(numbers.get("margin_call_level"), "margin_call_level", minimum=Decimal("0.5"))
    clean["close_out_level"] = decimal_input(numbers.get("close_out_level"), "close_out_level", minimum=Decimal("0.5"), maximum=Decimal("10"))
    if not clean["watch_level"] < clean["margin_call_level"] < clean["close_out_level"]:
        raise PortalError(
            "validation_error",
            _("Monitoring levels must rise: watch < margin call < close-out."),
            {"margin_call_level": [_("Between the watch and close-out levels.")]},
        )
    clean["warning_levels"] = _clean_warning_levels(numbers.get("warning_levels"), margin_call=clean["margin_call_level"])
    clean["cure_days"] = int(decimal_input(numbers.get("cure_days"), "cure_days", minimum=Decimal("1"), maximum=Decimal("10")))
    clean["client_exposure_limit"] = decimal_input(numbers.get("client_exposure_limit"), "client_exposure_limit", minimum=Decimal("1"))
    clean["firm_exposure_limit"] = decimal_input(numbers.get("firm_exposure_limit"), "firm_exposure_limit", minimum=Decimal("1"))
    if clean["client_exposure_limit"] > clean["firm_exposure_limit"]:
        raise PortalError("validation_error", _("The client limit cannot exceed the firm-wide limit."), {"client_exposure_limit": [_("Above the firm limit.")]})
    clean["client_concentration_max"] = decimal_input(numbers.get("client_concentration_max"), "client_concentration_max", minimum=Decimal("0.001"), maximum=Decimal("1"))
    return clean


def _clean_warning_levels(raw, *, margin_call: Decimal) -> list[str]:
    """Early-warning levels: up to four utilisation levels, each below the margin-call level (a list or
    "0.80, 0.90"). Not given: the default levels (80%, 90%) that lie below the margin-call level."""
    from .models import DEFAULT_WARNING_LEVELS, MAX_WARNING_LEVELS

    if raw is None:
        return [v for v in DEFAULT_WARNING_LEVELS if Decimal(v) < margin_call]
    items = [p for p in (raw.split(",") if isinstance(raw, str) else list(raw)) if str(p).strip()]
    levels = sorted({decimal_input(v, "warning_levels", minimum=Decimal("0.05"), maximum=Decimal("1")).quantize(Decimal("0.0001")) for v in items})
    if len(levels) > MAX_WARNING_LEVELS:
        raise PortalError("validation_error", _("At most %(n)s early-warning levels.") % {"n": MAX_WARNING_LEVELS},
                          {"warning_levels": [_("Too many levels.")]})
    if levels and levels[-1] >= margin_call:
        raise PortalError(
            "validation_error",
            _("Early-warning levels must be below the margin-call level of %(mc)s; %(level)s was proposed.") % {"mc": f"{margin_call:.0%}", "level": f"{levels[-1]:.0%}"},
            {"warning_levels": [_("Below the margin-call level.")]},
        )
    return [str(v) for v in levels]


@transaction.atomic
def policy_propose(*, actor, numbers: dict, reason: str, effective_from=None) -> CollateralPolicy:
    """Propose a new policy version. It takes effect only when a different credit manager approves it, and not
    before ``effective_from`` (a Hong Kong day) when one is given."""
    ensure_staff_permission(actor=actor, perm=Perm.POLICY_PROPOSE)
    if not (reason or "").strip():
        raise PortalError("validation_error", _("Give the reason for the change."), {"reason": [_("Required.")]})
    clean = _validate_policy_numbers(numbers)
    clean["effective_from"] = effective_from_input(effective_from)
    current = selectors.policy_current()
    policy = maker_checker_create(CollateralPolicy, actor=actor, reason=reason.strip(), numbers=clean)
    from lending.collateral import selectors as collateral_selectors
    from lending.collateral import services as collateral_services

    listed = collateral_services.marginable_list_create(policy=policy, data=numbers.get("marginable"), current=current)
    previous = collateral_selectors.marginable_list(policy=current) if current else None
    audit_log(
        actor=actor, action="lending.policy.proposed", obj=policy,
        before=snapshot(current, CollateralPolicy.NUMBERS) | {"version": current.version} | (
            {"marginable": collateral_services.marginable_snapshot(previous)} if previous else {}) if current else None,
        after=snapshot(policy, CollateralPolicy.NUMBERS) | {"version": policy.version, "reason": policy.reason, "effective_from": policy.effective_from,
                                                            "marginable": collateral_services.marginable_snapshot(listed)},
    )
    return policy


def maker_checker_create(model, *, actor, reason: str, numbers: dict) -> MakerCheckerPolicy:
    """Store a proposal as the next version of ``model`` (collateral, risk, servicing, recovery); two
    proposals at once get a conflict, not the same number. Re-read, so callers audit the stored numbers."""
    version = (model.objects.aggregate(v=Max("version"))["v"] or 0) + 1
    try:
        with transaction.atomic():
            policy = model.objects.create(version=version, proposed_by=actor, reason=reason, **numbers)
    except IntegrityError:
        raise ConflictError("policy_version_conflict", _("Another proposal was made at the same moment; reload and try again.")) from None
    return model.objects.get(pk=policy.pk)


def maker_checker_decide(policy, *, actor, approve: bool, note: str, not_awaiting) -> MakerCheckerPolicy | None:
    """Decide a locked policy proposal (collateral or risk): four-eyes, only from proposed, and on
    approval the version in force is superseded. Returns the superseded version, for the audit row.

    ``not_awaiting`` is the translated message (with %(version)s and %(status)s) for a proposal
    that was already decided. Callers check ``Perm.POLICY_APPROVE`` before they load the proposal.
    """
    ensure_four_eyes(maker=policy.proposed_by, checker=actor)
    if policy.status != PolicyStatus.PROPOSED:
        raise ConflictError("invalid_state", not_awaiting % {"version": policy.version, "status": policy.get_status_display()})
    superseded = None
    if approve and policy.effective_from and policy.effective_from > timezone.localdate():
        policy.schedule(by=actor, at=timezone.now(), note=note)  # in force from its day (maker_checker_take_effect)
    elif approve:
        superseded = type(policy).objects.select_for_update(no_key=True).filter(status=PolicyStatus.APPROVED).first()
        if superseded:
            superseded.supersede()
            superseded.save()
        policy.approve(by=actor, at=timezone.now(), note=note)
    else:
        policy.reject(by=actor, at=timezone.now(), note=note)
    policy.save()
    return superseded


def effective_from_input(value):
    """A proposal's effective date: empty (from its approval), or today or later (Hong Kong day)."""
    from datetime import date

    if value in (None, ""):
        return None
    day = value if isinstance(value, date) else date_text(value)
    if day is None:
        raise PortalError("validation_error", _("Give the effective date as a date (YYYY-MM-DD)."), {"effective_from": [_("A date.")]})
    if day < timezone.localdate():
        raise PortalError("validation_error", _("The effective date cannot be in the past."), {"effective_from": [_("Today or later.")]})
    return day


def maker_checker_take_effect(model, *, today=None) -> list[tuple]:
    """Put in force every approved version of ``model`` whose effective day has come (oldest version first), each
    superseding the version then in force. Returns [(policy, superseded)] for the callers' side effects and audit."""
    today = today or timezone.localdate()
    done = []
    for policy in model.objects.select_for_update(no_key=True).filter(status=PolicyStatus.SCHEDULED, effective_from__lte=today).order_by("version"):
        superseded = model.objects.select_for_update(no_key=True).filter(status=PolicyStatus.APPROVED).first()
        if superseded:
            superseded.supersede()
            superseded.save()
        policy.take_effect()
        policy.save()
        done.append((policy, superseded))
    return done


@transaction.atomic
def policies_take_effect(*, today=None) -> int:
    """The take-effect job: collateral, risk, servicing and recovery policy versions approved for a later day come into force
    on that day (the collateral policy reaches the live book at once, as on an approval). Audited per version."""
    from lending.risk.revaluation import policy_apply

    count = 0
    if CollateralPolicy.objects.filter(status=PolicyStatus.SCHEDULED, effective_from__lte=today or timezone.localdate()).exists():
        locks.book()  # the book lock first (lending.locks): the new version revalues the whole book
        for policy, superseded in maker_checker_take_effect(CollateralPolicy, today=today):
            applied = policy_apply(policy=policy)
            audit_log(actor=SYSTEM, action="lending.policy.took_effect", obj=policy,
                      before={"version_in_force": superseded.version if superseded else None},
                      after={"version_in_force": policy.version, "effective_from": policy.effective_from} | applied)
            count += 1
    others = []
    try:
        from lending.risk.models import RiskPolicy

        others.append((RiskPolicy, "risk.policy.took_effect"))
    except ImportError:
        pass
    try:
        from lending.servicing.models import ServicingPolicy

        others.append((ServicingPolicy, "servicing.policy.took_effect"))
    except ImportError:
        pass
    try:
        from lending.recovery.models import RecoveryPolicy

        others.append((RecoveryPolicy, "recovery.policy.took_effect"))
    except ImportError:
        pass
    for model, action in others:
        for policy, superseded in maker_checker_take_effect(model, today=today):
            audit_log(actor=SYSTEM, action=action, obj=policy, before={"version_in_force": superseded.version if superseded else None},
                      after={"version_in_force": policy.version, "effective_from": policy.effective_from})
            count += 1
    return count


def _decide_collateral_policy(*, actor, policy_id: int, approve: bool, note: str):
    ensure_staff_permission(actor=actor, perm=Perm.POLICY_APPROVE)
    policy = CollateralPolicy.objects.select_for_update(no_key=True).filter(pk=policy_id).first()
    if policy is None:
        raise NotFoundError("not_found", _("No such policy version."))
    superseded = maker_checker_decide(
        policy, actor=actor, approve=approve, note=note, not_awaiting=_("Policy v%(version)s is %(status)s, not awaiting approval.")
    )
    return policy, superseded


@transaction.atomic
def policy_approve(*, actor, policy_id: int, note: str = "") -> CollateralPolicy:
    """A credit manager other than the proposer puts the version in force; the old one is superseded."""
    from lending.risk.revaluation import policy_apply

    locks.book()  # the approval revalues the whole book: the book lock first (lending.locks)
    policy, current = _decide_collateral_policy(actor=actor, policy_id=policy_id, approve=True, note=note)
    if policy.status == PolicyStatus.SCHEDULED:
        audit_log(actor=actor, action="lending.policy.approved", obj=policy, before={"status": "proposed"},
                  after={"status": policy.status, "effective_from": policy.effective_from, "note": note, "proposed_by": policy.proposed_by.email})
        return policy
    # The new version reaches the live book in this transaction: every position at its haircuts, every facility revalued.
    applied = policy_apply(policy=policy)
    audit_log(
        actor=actor, action="lending.policy.approved", obj=policy,
        before={"version_in_force": current.version if current else None},
        after={"version_in_force": policy.version, "note": note, "proposed_by": policy.proposed_by.email} | applied,
    )
    return policy


@transaction.atomic
def policy_reject(*, actor, policy_id: int, note: str) -> CollateralPolicy:
    policy, _superseded = _decide_collateral_policy(actor=actor, policy_id=policy_id, approve=False, note=note)
    audit_log(actor=actor, action="lending.policy.rejected", obj=policy, before={"status": "proposed"}, after={"status": "rejected", "note": note})
    return policy


# --- Watch list ---------------------------------------------------------------------


@transaction.atomic
def watchlist_add(*, actor, name: str, aliases: str = "", category: str = "sanctions", note: str = "") -> WatchListEntry:
    ensure_staff_permission(actor=actor, perm=Perm.WATCHLIST_MANAGE)
    if not (name or "").strip():
        raise PortalError("validation_error", _("A name is required."), {"name": [_("Required.")]})
    category = category or WatchListCategory.SANCTIONS
    if category not in WatchListCategory.values:
        raise PortalError("validation_error", _("Choose the list the name comes from."),
                          {"category": [_("One of: %(codes)s.") % {"codes": ", ".join(WatchListCategory.values)}]})
    entry = WatchListEntry.objects.create(name=name.strip()[:200], aliases=aliases.strip(), category=category, note=note, added_by=actor)
    audit_log(actor=actor, action="lending.watchlist.added", obj=entry, after=snapshot(entry, ("name", "aliases", "category", "note")))
    return entry


@transaction.atomic
def watchlist_deactivate(*, actor, entry_id: int, reason: str = "") -> WatchListEntry:
    ensure_staff_permission(actor=actor, perm=Perm.WATCHLIST_MANAGE)
    entry = WatchListEntry.objects.select_for_update(no_key=True).filter(pk=entry_id).first()
    if entry is None:
        raise NotFoundError("not_found", _("No such watch-list entry."))
    if entry.active:
        entry.active = False
        entry.save(update_fields=["active"])
        audit_log(actor=actor, action="lending.watchlist.deactivated", obj=entry, before={"active": True}, after={"active": False, "reason": reason})
    return entry


# --- Applications ---------------------------------------------------------------------


def _clean_lines(lines: list[dict], policy, user) -> list[CollateralLine]:
    """Collateral lines as the client chose them from their holdings: an instrument and a quantity.

    Securities come from the client's securities margin account and BTC/ETH from their custody balance
    (the back office's figures, ``lending.collateral``); at most what is free may be offered. The client
    never types a market value: the price and haircut come from the book when the lines are valued.
    """
    from lending.collateral import selectors as collateral

    if not lines:
        raise PortalError("validation_error", _("Add at least one collateral line."), {"lines": [_("Required.")]})
    if len(lines) > 50:
        raise PortalError("validation_error", _("At most 50 collateral lines."), {"lines": [_("Too many.")]})
    free = {h.instrument.code: h for h in collateral.custody_for_client(user=user)}
    instruments = collateral.instruments_by_code(codes={_line_code(line) for line in lines})
    clean, offered = [], {}
    for number, line in enumerate(lines, start=1):
        kind = line.get("kind")
        field = f"lines[{number}]"
        if kind not in (CollateralKind.SECURITIES, CollateralKind.VIRTUAL_ASSET):
            raise PortalError("validation_error", _("Line %(number)s: kind must be securities or virtual_asset.") % {"number": number}, {field: [_("Unknown kind.")]})
        code = _line_code(line)
        if kind == CollateralKind.VIRTUAL_ASSET and code not in Asset.values:
            raise PortalError(
                "validation_error", _("Line %(number)s: only bitcoin (BTC) and ether (ETH) are accepted as VA collateral.") % {"number": number},
                {field: [_("BTC or ETH.")]},
            )
        if kind == CollateralKind.SECURITIES and not code:
            raise PortalError(
                "validation_error",
                _("Line %(number)s: securities are pledged from the holdings of your margin account; choose a holding and a quantity.") % {"number": number},
                {field: [_("Choose a holding.")]},
            )
        instrument = instruments.get(code)
        if instrument is None or not instrument.active or (instrument.kind == "virtual_asset") != (kind == CollateralKind.VIRTUAL_ASSET):
            raise PortalError("validation_error", _("Line %(number)s: %(code)s is not an instrument we accept.") % {"number": number, "code": code},
                              {field: [_("Unknown instrument.")]})
        if kind == CollateralKind.VIRTUAL_ASSET:
            quantity = quantity_input(line.get("quantity"), field, asset=code, label=_("Line %(number)s quantity") % {"number": number})
        else:
            quantity = decimal_input(line.get("quantity"), field, minimum=Decimal("1"), maximum=Decimal("1e15"),
                                     label=_("Line %(number)s quantity") % {"number": number}).quantize(Decimal("0.00000001"))
        if kind == CollateralKind.SECURITIES and quantity != quantity.to_integral_value():
            raise PortalError("validation_error", _("Line %(number)s: a whole number of shares.") % {"number": number}, {field: [_("Whole shares.")]})
        offered[code] = offered.get(code, ZERO) + quantity
        holding = free.get(code)
        available = holding.free if holding else ZERO
        if offered[code] > available:
            raise PortalError(
                "above_free",
                _("Line %(number)s: you have %(free)s %(code)s free to pledge; %(qty)s was offered.") % {
                    "number": number, "free": f"{available.normalize():,f}", "code": code, "qty": f"{offered[code].normalize():,f}"},
                {field: [_("At most %(free)s.") % {"free": f"{available.normalize():,f}"}]},
            )
        clean.append(CollateralLine(
            kind=kind, instrument=instrument, asset=code if kind == CollateralKind.VIRTUAL_ASSET else "", quantity=quantity,
            description=(instrument.name_en if kind == CollateralKind.SECURITIES else str(line.get("description") or ""))[:200],
            custody_reference=str(line.get("custody_reference") or "").strip()[:100],
        ))
    _ensure_total_recordable(clean)
    return clean


def _ensure_total_recordable(lines: list[CollateralLine]) -> None:
    """The collateral's total market value at current prices must fit the HKD figures the review records."""
    prices = selectors.prices_current()
    total = sum(((line.quantity or ZERO) * (prices[line.instrument.code].price_hkd if line.instrument.code in prices else ZERO) for line in lines), ZERO)
    if total > MONEY_MAX:
        raise PortalError("validation_error", _("The collateral's total market value (HK$%(total)s) is beyond what a facility can record (HK$%(max)s).") % {"total": f"{money(total):,}", "max": f"{MONEY_MAX:,}"},
                          {"lines": [_("Total too large.")]})


def _line_code(line: dict) -> str:
    from lending.collateral.models import normalise_code

    return normalise_code(line.get("instrument") or (line.get("asset") if line.get("kind") == CollateralKind.VIRTUAL_ASSET else ""))


def _client_only(user) -> None:
    if not (user.is_authenticated and user.is_client):
        raise ForbiddenError("permission_denied", _("Only clients can apply for a facility."))


@transaction.atomic
def application_create(*, user, requested_limit, purpose: str, lines: list[dict]) -> FacilityApplication:
    _client_only(user)
    limit = money_input(requested_limit, "requested_limit", minimum=Decimal("1"))
    if not (purpose or "").strip():
        raise PortalError("validation_error", _("Tell us what the facility is for."), {"purpose": [_("Required.")]})
    clean = _clean_lines(lines, selectors.policy_current(), user)
    application = FacilityApplication.objects.create(client=user, requested_limit=limit, purpose=purpose.strip())
    for line in clean:
        line.application = application
    CollateralLine.objects.bulk_create(clean)
    audit_log(actor=user, action="lending.application.created", obj=application, after=snapshot(application, ("requested_limit", "purpose")) | {"lines": len(clean)})
    return application


def _lock_client_application(user, application_id: int) -> FacilityApplication:
    try:
        return locks.application(application_id, FacilityApplication.objects.filter(client=user))
    except FacilityApplication.DoesNotExist:
        raise NotFoundError("not_found", _("No such application.")) from None


@transaction.atomic
def application_update(*, user, application_id: int, requested_limit=None, purpose: str | None = None, lines: list[dict] | None = None) -> FacilityApplication:
    """Change a draft (or an application returned to the client)."""
    application = _lock_client_application(user, application_id)
    if application.state not in (AppState.DRAFT, AppState.RETURNED):
        raise ConflictError("invalid_state", _("Only a draft or a returned application can be changed."))
    before = snapshot(application, ("requested_limit", "purpose"))
    if requested_limit is not None:
        application.requested_limit = money_input(requested_limit, "requested_limit", minimum=Decimal("1"))
    if purpose is not None:
        if not purpose.strip():
            raise PortalError("validation_error", _("Tell us what the facility is for."), {"purpose": [_("Required.")]})
        application.purpose = purpose.strip()
    application.save(update_fields=["requested_limit", "purpose", "updated_at"])
    if lines is not None:
        clean = _clean_lines(lines, selectors.policy_current(), user)
        application.lines.all().delete()
        for line in clean:
            line.application = application
        CollateralLine.objects.bulk_create(clean)
    audit_log(actor=user, action="lending.application.updated", obj=application, before=before, after=snapshot(application, ("requested_limit", "purpose")))
    return application


def submission_blockers(*, user, eligibility=None) -> list[dict]:
    """Why the client cannot submit yet: unmet eligibility and stale disclosures, each with a link to fix it.
    ``eligibility`` is the client's VA-margin eligibility when the caller already has it."""
    from disclosures.selectors import outstanding_documents
    from onboarding.selectors import product_eligibility
    from portal.products import Product

    blockers = []
    eligibility = eligibility or product_eligibility(user=user, product=Product.VA_MARGIN)
    for req in eligibility.requirements:
        if not req.met:
            blockers.append({"code": req.code, "label": str(req.label), "reason": str(req.reason or ""), "fix_url": req.fix_url or ""})
    codes = {b["code"] for b in blockers}
    # Onboarding's checklist already covers the disclosures unless it says nothing about them.
    covered = any(req.code == "disclosures" for req in eligibility.requirements)
    for doc in [] if covered else outstanding_documents(user=user, product=Product.VA_MARGIN):
        code = f"disclosure:{doc.code}"
        if code not in codes:
            blockers.append({"code": code, "label": str(doc.title), "reason": str(doc.reason), "fix_url": doc.url or ""})
    if selectors.policy_current() is None:
        blockers.append({"code": "no_policy", "label": str(_("Collateral policy")), "reason": str(_("The firm has no collateral policy in force yet.")), "fix_url": ""})
    return blockers


def requirements_text(items: list[dict]) -> str:
    """Unmet requirements as one sentence: "Label — reason; Label — reason." (each reason's own full stop
    dropped, so the list never reads "account number.; Complete profile")."""
    parts = []
    for item in items:
        label, reason = str(item.get("label") or "").strip(), str(item.get("reason") or "").strip().rstrip(".;。 ")
        parts.append(f"{label} — {reason}" if reason and label else (label or reason))
    return "; ".join(p for p in parts if p) + "."


def _begin_review(application: FacilityApplication) -> None:
    """Create the run's step rows (so progress shows at once) and enqueue the review after commit."""
    from .tasks import credit_review

    ReviewStep.objects.bulk_create(
        [ReviewStep(application=application, run=application.review_run, code=code, position=i) for i, code in enumerate(STEP_ORDER)],
        ignore_conflicts=True,
    )
    credit_review.delay_on_commit(application.pk, application.review_run)


@transaction.atomic
def application_submit(*, user, application_id: int, confirm_terms: bool) -> FacilityApplication:
    """Submit for credit review. Refused, with reasons and links, while the client is not eligible."""
    application = _lock_client_application(user, application_id)
    if application.state != AppState.DRAFT:
        raise ConflictError("invalid_state", _("This application is %(state)s; only a draft can be submitted.") % {"state": application.get_state_display()})
    if not confirm_terms:
        raise PortalError("terms_not_confirmed", _("Confirm that you have read the facility terms."), {"confirm_terms": [_("Required.")]})
    blockers = submission_blockers(user=user)
    if blockers:
        raise PortalError(
            "not_eligible",
            _("You cannot submit yet: %(missing)s") % {"missing": requirements_text(blockers)},
            {"requirements": blockers},
        )
    if not application.lines.exists():
        raise PortalError("validation_error", _("Add at least one collateral line."), {"lines": [_("Required.")]})
    now = timezone.now()
    application.terms_confirmed_at = now
    application.submit(at=now)
    application.save()
    audit_log(actor=user, action="lending.application.submitted", obj=application, before={"state": AppState.DRAFT}, after={"state": application.state, "run": application.review_run})
    _begin_review(application)
    return application


@transaction.atomic
def application_respond(*, user, application_id: int, response: str) -> FacilityApplication:
    """Answer the officer's questions; the application goes back through the credit review."""
    application = _lock_client_application(user, application_id)
    if application.state != AppState.RETURNED:
        raise ConflictError("invalid_state", _("Only an application returned to you can be answered."))
    if not (response or "").strip():
        raise PortalError("validation_error", _("Answer the officer's questions."), {"response": [_("Required.")]})
    blockers = submission_blockers(user=user)
    if blockers:
        raise PortalError("not_eligible", _("You cannot resubmit yet: %(missing)s") % {"missing": requirements_text(blockers)}, {"requirements": blockers})
    application.client_response = response.strip()
    application.submit(at=timezone.now())
    application.save()
    audit_log(actor=user, action="lending.application.resubmitted", obj=application, before={"state": AppState.RETURNED}, after={"state": application.state, "response": application.client_response, "run": application.review_run})
    _begin_review(application)
    return application


@transaction.atomic
def application_withdraw(*, user, application_id: int) -> FacilityApplication:
    application = _lock_client_application(user, application_id)
    before = application.state
    try:
        application.withdraw(at=timezone.now())
    except TransitionNotAllowed:
        raise ConflictError("invalid_state", _("An application that is %(state)s can no longer be withdrawn.") % {"state": application.get_state_display()}) from None
    application.save()
    audit_log(actor=user, action="lending.application.withdrawn", obj=application, before={"state": before}, after={"state": application.state})
    return application


# --- The credit review ------------------------------------------------------------------

# A claim older than this is from a worker that died mid-step; the step may be taken over.
STEP_CLAIM_TIMEOUT = timedelta(seconds=120)
MAX_STEP_ATTEMPTS = 5
TRANSIENT_ERRORS = (TransientReviewError, DatabaseError)


def _review_claim_start(application_id: int, run: int) -> FacilityApplication | None:
    """submitted → in_review, once. The application (with its client), or None when the run is over or superseded."""
    with transaction.atomic():
        application = locks.rows(locks.Level.APPLICATION, FacilityApplication.objects.select_related("client"), [application_id])
        application = application[0] if application else None
        if application is None or application.review_run != run:
            return None
        if application.state == AppState.SUBMITTED:
            application.start_review()
            application.save(update_fields=["state", "updated_at"])
            audit_log(actor=SYSTEM, action="lending.application.review_started", obj=application,
                      before={"state": AppState.SUBMITTED}, after={"state": application.state, "run": run})
        return application if application.state == AppState.IN_REVIEW else None


def _claimable(now) -> Q:
    return Q(status__in=[StepStatus.PENDING, StepStatus.RETRYING]) | Q(status=StepStatus.RUNNING, claimed_at__lt=now - STEP_CLAIM_TIMEOUT)


def _step_claim(step: ReviewStep, now) -> bool:
    """Take the step with a conditional UPDATE: a redelivered task finds it taken or done and skips it."""
    return bool(
        ReviewStep.objects.filter(_claimable(now), pk=step.pk)
        .update(status=StepStatus.RUNNING, attempts=F("attempts") + 1, claimed_at=now, started_at=now)
    )


def _done_values(outcome, elapsed_ms: int) -> dict:
    return {
        "status": StepStatus.DONE, "outcome": outcome.outcome, "reasons": outcome.reasons, "reason_codes": outcome.codes, "inputs": outcome.inputs,
        "result": outcome.result, "finished_at": timezone.now(), "duration_ms": elapsed_ms, "last_error": "",
    }


_FINISH_COLUMNS = ("outcome", "reasons", "reason_codes", "inputs", "result", "finished_at", "duration_ms", "last_error")


def _step_finish_and_claim_next(step: ReviewStep, claimed_at, done: dict, nxt: ReviewStep, now) -> tuple[bool, bool]:
    """Store ``step``'s result and claim ``nxt`` in ONE conditional UPDATE (one statement, one commit).

    The finish keeps its guard (still ours: running with our claim time) and the claim keeps its
    own (pending, retrying or abandoned), so each row changes exactly as the two separate UPDATEs
    would have. Plain SQL: the same statement built with Case/When costs more Python than the
    two UPDATEs it replaces. Returns (finished, claimed_next).
    """
    from django.db import connection

    opts, q = ReviewStep._meta, connection.ops.quote_name

    def prep(name, value):
        return opts.get_field(name).get_db_prep_value(value, connection, prepared=False)

    sets = [f"{q('status')} = CASE WHEN {q('id')} = %s THEN %s ELSE %s END"]
    params: list = [step.pk, StepStatus.DONE.value, StepStatus.RUNNING.value]
    for name in _FINISH_COLUMNS:
        sets.append(f"{q(name)} = CASE WHEN {q('id')} = %s THEN %s ELSE {q(name)} END")
        params += [step.pk, prep(name, done[name])]
    sets.append(f"{q('attempts')} = CASE WHEN {q('id')} = %s THEN {q('attempts')} + 1 ELSE {q('attempts')} END")
    params.append(nxt.pk)
    for name in ("claimed_at", "started_at"):
        sets.append(f"{q(name)} = CASE WHEN {q('id')} = %s THEN %s ELSE {q(name)} END")
        params += [nxt.pk, prep(name, now)]
    where = (
        f"({q('id')} = %s AND {q('status')} = %s AND {q('claimed_at')} = %s)"
        f" OR ({q('id')} = %s AND ({q('status')} IN (%s, %s) OR ({q('status')} = %s AND {q('claimed_at')} < %s)))"
    )
    params += [step.pk, StepStatus.RUNNING.value, prep("claimed_at", claimed_at),
               nxt.pk, StepStatus.PENDING.value, StepStatus.RETRYING.value, StepStatus.RUNNING.value, prep("claimed_at", now - STEP_CLAIM_TIMEOUT)]
    with connection.cursor() as cursor:
        # Only quoted identifiers are interpolated; every value is a bound parameter.
        cursor.execute(f"UPDATE {q(opts.db_table)} SET {', '.join(sets)} WHERE {where}", params)  # noqa: S608
        changed = cursor.rowcount
    if changed != 1:
        return changed == 2, changed == 2
    # Rare: only one of the two rows changed. Find out which; never keep a claim we cannot use.
    claimed_next = ReviewStep.objects.filter(pk=nxt.pk, status=StepStatus.RUNNING, claimed_at=now).exists()
    if claimed_next:  # our claim on ``step`` was taken over: give the next step back untouched
        ReviewStep.objects.filter(pk=nxt.pk, status=StepStatus.RUNNING, claimed_at=now).update(
            status=StepStatus.PENDING, attempts=F("attempts") - 1, claimed_at=None, started_at=None
        )
    return not claimed_next, False


def review_run(*, application_id: int, run: int) -> bool:
    """Run (or resume) one review run; see _review_run."""
    from django.db import connection

    relaxed = connection.vendor == "postgresql" and not connection.in_atomic_block
    if relaxed:
        # Step-progress commits need not wait for the WAL flush: if the database crashed
        # in the next few milliseconds the step would simply run again (the task is
        # acks_late and every step is claimed idempotently). The final transition to
        # awaiting_decision and its audit row commit durably (review_finish sets it back on).
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
    try:
        return _review_run(application_id=application_id, run=run)
    finally:
        if relaxed:
            with connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO on")


def _review_run(*, application_id: int, run: int) -> bool:
    """Run (or resume) one review run: every unfinished step in order, then the recommendation.

    Each step's row commits on its own (its result together with the claim of the next step), so
    the client watches progress live and a retry resumes at the first unfinished step. The client's
    onboarding facts and disclosure status are loaded once and shared by the steps that need them.
    Returns True when the run reached awaiting_decision (now or before).
    """
    application = _review_claim_start(application_id, run)
    if application is None:
        app = FacilityApplication.objects.filter(pk=application_id).values("state", "review_run").first()
        return bool(app and app["review_run"] == run and app["state"] not in (AppState.SUBMITTED, AppState.IN_REVIEW))
    steps = {s.code: s for s in ReviewStep.objects.filter(application_id=application_id, run=run)}
    missing = [code for code in STEP_ORDER if code not in steps]
    if missing:
        ReviewStep.objects.bulk_create(
            [ReviewStep(application=application, run=run, code=c, position=STEP_ORDER.index(c)) for c in missing], ignore_conflicts=True
        )
        steps = {s.code: s for s in ReviewStep.objects.filter(application_id=application_id, run=run)}
    policy = selectors.policy_current()
    if policy is None:
        raise TransientReviewError("No collateral policy in force.")
    ctx = ReviewContext(
        application=application,
        lines=list(application.lines.select_related("instrument")),
        policy=policy,
        prices=selectors.prices_current(max_age_minutes=policy.price_max_age_minutes),
        earlier={code: s.result for code, s in steps.items() if s.status == StepStatus.DONE},
    )
    todo = [steps[code] for code in STEP_ORDER if steps[code].status != StepStatus.DONE]
    if not todo:
        return review_finish(application_id=application_id, run=run, steps=list(steps.values()), policy=policy)
    now = timezone.now()
    if not _step_claim(todo[0], now):
        return False  # another delivery of this task holds the step: leave the run to it
    for i, step in enumerate(todo):
        started = time.perf_counter()
        try:
            outcome = STEPS[step.code](ctx)
        except TRANSIENT_ERRORS as exc:
            attempts = ReviewStep.objects.filter(pk=step.pk).values_list("attempts", flat=True).get()
            if attempts < MAX_STEP_ATTEMPTS:
                ReviewStep.objects.filter(pk=step.pk, claimed_at=now).update(status=StepStatus.RETRYING, last_error=f"{type(exc).__name__}: {exc}"[:2000])
                raise
            outcome = _step_error_outcome(exc, attempts)
        except Exception as exc:  # a bug must not strand the application: refer it to the officer
            logger.exception("Review step %s failed for application %s", step.code, application_id)
            outcome = _step_error_outcome(exc, None)
        done = _done_values(outcome, int((time.perf_counter() - started) * 1000))
        nxt = todo[i + 1] if i + 1 < len(todo) else None
        if nxt is None:
            finished = bool(ReviewStep.objects.filter(pk=step.pk, status=StepStatus.RUNNING, claimed_at=now).update(**done))
            claimed_next = False
        else:
            next_now = timezone.now()
            finished, claimed_next = _step_finish_and_claim_next(step, now, done, nxt, next_now)
            now = next_now
        if not finished or (nxt is not None and not claimed_next):
            return False  # the step or the next one is held by another delivery: leave the run to it
        for name, value in done.items():
            setattr(step, name, value)
        ctx.earlier[step.code] = outcome.result
    return review_finish(application_id=application_id, run=run, steps=list(steps.values()), policy=policy)


@transaction.atomic
def review_give_up(*, application_id: int, run: int, reason: str) -> bool:
    """The review run failed for good (retries spent, or an error outside the steps): every unfinished
    step is recorded as not completed and the application goes to the officer with a referral, so it
    never stays in review for ever. Idempotent (a finished run is left alone)."""
    from .review import StepResult

    application = locks.application(application_id)
    if application.review_run != run or application.state not in (AppState.SUBMITTED, AppState.IN_REVIEW):
        return False
    if application.state == AppState.SUBMITTED:
        application.start_review()
        application.save(update_fields=["state", "updated_at"])
    existing = {s.code: s for s in ReviewStep.objects.filter(application_id=application_id, run=run)}
    missing = [ReviewStep(application=application, run=run, code=c, position=i) for i, c in enumerate(STEP_ORDER) if c not in existing]
    ReviewStep.objects.bulk_create(missing, ignore_conflicts=True)
    outcome = StepResult(StepOutcome.REFER, [f"This check could not be completed ({reason[:300]}); the officer must check it by hand."])
    ReviewStep.objects.filter(application_id=application_id, run=run).exclude(status=StepStatus.DONE).update(
        **_done_values(outcome, 0) | {"last_error": reason[:2000]})
    steps = list(ReviewStep.objects.filter(application_id=application_id, run=run))
    audit_log(actor=SYSTEM, action="lending.application.review_failed", obj=application, after={"run": run, "reason": reason[:500]})
    return review_finish(application_id=application_id, run=run, steps=steps)


def _step_error_outcome(exc, attempts):
    from .review import StepResult

    detail = f"{type(exc).__name__}: {exc}"[:500]
    why = f"after {attempts} attempts" if attempts else "because of an unexpected error"
    return StepResult(StepOutcome.REFER, [f"This check could not be completed {why} ({detail}); the officer must check it by hand."])


@transaction.atomic
def review_finish(*, application_id: int, run: int, steps: list[ReviewStep] | None = None, policy: CollateralPolicy | None = None) -> bool:
    """in_review → awaiting_decision with the recommendation, once every step of the run is done.

    ``steps`` are the run's rows as the caller just finished them (done rows never change again),
    saving a re-read; ``policy`` is the policy the run loaded. The application records the policy
    version the valuation step actually used.
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO on")
    application = locks.application(application_id)
    if application.review_run != run or application.state != AppState.IN_REVIEW:
        return application.review_run == run and application.state not in (AppState.SUBMITTED,)
    if steps is None:
        steps = list(ReviewStep.objects.filter(application_id=application_id, run=run))
    steps = sorted(steps, key=lambda s: s.position)
    if len(steps) != len(STEP_ORDER) or any(s.status != StepStatus.DONE for s in steps):
        return False
    by_code = {s.code: s for s in steps}
    outcomes = {s.outcome for s in steps}
    recommendation = (
        Recommendation.DECLINE if StepOutcome.FAIL in outcomes else Recommendation.REFER if StepOutcome.REFER in outcomes else Recommendation.APPROVE
    )
    valuation = by_code[StepCode.VALUATION].result or {}
    score = by_code[StepCode.SCORECARD].result or {}
    exposure = by_code[StepCode.EXPOSURE].result or {}
    lending_value = Decimal(valuation.get("lending_value") or "0")
    recommended = Decimal(exposure.get("recommended_limit") or score.get("recommended_limit") or "0")
    market_value = Decimal(valuation.get("market_value") or "0")
    if max(lending_value, recommended, market_value) > MONEY_MAX:
        # Figures no facility can record (collateral entered before the bounds on entry): end the review
        # with a visible decline recommendation rather than fail storing them on every retry.
        recommendation = Recommendation.DECLINE
        lending_value = recommended = market_value = ZERO
        valuation = {"va_share": "0"}
        from .review import say

        beyond = say("valuation.beyond_bounds")
        by_code[StepCode.VALUATION].reasons, by_code[StepCode.VALUATION].reason_codes = [beyond.text], [beyond.coded()]
        by_code[StepCode.VALUATION].outcome = StepOutcome.FAIL
    used_version = (by_code[StepCode.VALUATION].inputs or {}).get("policy_version")
    if policy is None or (used_version is not None and policy.version != used_version):
        policy = CollateralPolicy.objects.filter(version=used_version).first() if used_version is not None else selectors.policy_current()
    application.policy = policy
    application.market_value = market_value
    application.lending_value = lending_value
    application.va_share = Decimal(valuation.get("va_share") or "0")
    application.score = score.get("score")
    application.recommendation = recommendation
    application.recommended_limit = min(recommended, lending_value) if recommendation != Recommendation.DECLINE else ZERO
    application.recommendation_reasons = [
        f"{s.get_code_display()}: {s.reasons[0]}" for s in steps if s.outcome != StepOutcome.PASS and s.reasons
    ]
    screening = by_code[StepCode.SCREENING]
    if screening.outcome != StepOutcome.PASS:
        # A possible match (or a screening that could not complete) blocks approval until compliance decides.
        application.screening_status = ScreeningStatus.PENDING
    application.complete_review(at=timezone.now())
    application.save()
    audit_log(
        actor=SYSTEM, action="lending.application.review_completed", obj=application,
        before={"state": AppState.IN_REVIEW},
        after={"state": application.state, "run": run, "recommendation": recommendation, "recommended_limit": application.recommended_limit,
               "lending_value": lending_value, "policy_version": application.policy.version if application.policy else None,
               "screening_status": application.screening_status},
    )
    return True


# --- Officer decisions --------------------------------------------------------------------


def _lock_for_decision(*, actor, application_id: int, expected: tuple) -> FacilityApplication:
    """Lock the row, then check it is still where the officer saw it: the loser of a race gets 409."""
    try:
        application = locks.application(application_id, FacilityApplication.objects.select_related("client"))
    except FacilityApplication.DoesNotExist:
        raise NotFoundError("not_found", _("No such application.")) from None
    ensure_not_own_record(actor=actor, client_user=application.client)
    if application.state not in expected:
        decider = application.second_approver if application.second_approver_id else application.decided_by
        who = _(" (decided by %(person)s)") % {"person": decider} if decider is not None else ""
        raise ConflictError(
            "decision_conflict",
            _("Another decision was recorded first: the application is now %(state)s%(who)s. Yours was not recorded; reload the page.")
            % {"state": STAFF_STATE_LABELS[application.state], "who": who},
        )
    return application


def _save_transition(application) -> None:
    try:
        application.save()
    except ConcurrentTransition:
        raise ConflictError("decision_conflict", _("Another decision was recorded at the same moment; yours was not. Reload the page.")) from None


SECOND_APPROVAL_NEEDS_A_CREDIT_MANAGER = _("Only a credit manager can decide an application awaiting its second approval; ask a credit manager to review it.")
SECOND_APPROVAL_BY_ANOTHER = _("You gave the first approval: a different credit manager must give the second.")


def officer_authority(*, actor, policy) -> Decimal:
    """The officer's own authority limit, or the policy default when none is set."""
    if actor.authority_limit:
        return actor.authority_limit
    return policy.officer_authority_default if policy else ZERO


def _letter(application: FacilityApplication, policy: CollateralPolicy) -> str:
    # Servicing writes the letter (in the client's language) with the servicing terms it offers here;
    # the text is what the client accepts by its hash.
    from lending.servicing import letter
    from lending.servicing import services as servicing

    return letter.letter_compose(application=application, policy=policy, terms=servicing.terms_offer(application=application))


def _finalise_approval(application: FacilityApplication, policy: CollateralPolicy) -> None:
    # The letter states the rate, how it is computed, when it is charged, fees and the review
    # date (servicing terms, fixed here and attached to the facility when the client accepts).
    application.letter_text = _letter(application, policy)
    application.letter_sha256 = hashlib.sha256(application.letter_text.encode()).hexdigest()


def _ensure_screening_allows_approval(application: FacilityApplication) -> None:
    """A name-screening match blocks approval until compliance clears it; a confirmed match never approves."""
    if application.screening_status == ScreeningStatus.PENDING:
        raise ConflictError("screening_pending", _("Name screening found a possible watch-list match. Approval is blocked until compliance clears it or confirms it (Screening hits page)."))
    if application.screening_status == ScreeningStatus.CONFIRMED:
        raise ConflictError("screening_confirmed", _("Compliance confirmed the watch-list match: this application cannot be approved; decline it."))


def _check_hard_limits(application: FacilityApplication, limit: Decimal, policy: CollateralPolicy) -> None:
    if application.lending_value is not None and limit > application.lending_value:
        raise PortalError(
            "above_lending_value",
            _("A limit of HK$%(limit)s is above the lending value of HK$%(lending_value)s; lending value caps the facility.") % {"limit": f"{limit:,}", "lending_value": f"{application.lending_value:,}"},
            {"limit": [_("At most the lending value.")]},
        )
    existing = selectors.client_exposure(user=application.client, exclude_application_id=application.pk)
    if existing + limit > policy.client_exposure_limit:
        raise PortalError(
            "client_exposure_limit",
            _("The client would hold HK$%(total)s of limits, above the policy's HK$%(client_exposure_limit)s per client.") % {"total": f"{existing + limit:,}", "client_exposure_limit": f"{policy.client_exposure_limit:,}"},
            {"limit": [_("Above the client exposure limit.")]},
        )
    if selectors.firm_exposure() + limit > policy.firm_exposure_limit:
        raise PortalError("firm_exposure_limit", _("This limit would take the firm above its total facility limit."), {"limit": [_("Above the firm limit.")]})


@transaction.atomic
def application_approve(*, actor, application_id: int, limit, conditions: str = "") -> FacilityApplication:
    """Approve within authority, or refer for a credit manager's second approval.

    A second approval is needed above the officer's authority limit, or when the officer
    overrides the review's recommendation (recommendation not 'approve', or a limit above
    the recommended one).
    """
    ensure_staff_permission(actor=actor, perm=Perm.APPLICATION_DECIDE)
    application = _lock_for_decision(actor=actor, application_id=application_id, expected=(AppState.AWAITING_DECISION,))
    _ensure_screening_allows_approval(application)
    policy = selectors.policy_current()
    if policy is None:
        raise PortalError("no_policy", _("No collateral policy is in force."))
    limit = money_input(limit, "limit", minimum=Decimal("1"))
    _check_hard_limits(application, limit, policy)
    reasons = []
    authority = officer_authority(actor=actor, policy=policy)
    if limit > authority:
        reasons.append(f"limit HK${limit:,} above the officer's authority of HK${authority:,}")
    if application.recommendation != Recommendation.APPROVE:
        reasons.append(f"overrides the review's recommendation to {application.get_recommendation_display().lower()}")
    elif application.recommended_limit is not None and limit > application.recommended_limit:
        reasons.append(f"limit above the recommended HK${application.recommended_limit:,}")
    before = snapshot(application, APPLICATION_FIELDS)
    now = timezone.now()
    application.decided_by, application.decided_at, application.decision_policy = actor, now, policy
    application.approved_limit, application.conditions = limit, (conditions or "").strip()
    application.second_approval_reasons = reasons
    if reasons:
        application.refer_for_second_approval()
    else:
        application.approve()
        _finalise_approval(application, policy)
    _save_transition(application)
    audit_log(actor=actor, action="lending.application.approved" if not reasons else "lending.application.first_approved", obj=application, before=before, after=snapshot(application, APPLICATION_FIELDS) | {"second_approval_reasons": reasons})
    if not reasons:
        _notify_decision(application)
    return application


@transaction.atomic
def application_second_approve(*, actor, application_id: int, note: str = "") -> FacilityApplication:
    """A credit manager, not the first approver, gives the second approval."""
    ensure_staff_permission(actor=actor, perm=Perm.APPLICATION_SECOND_APPROVE, message=SECOND_APPROVAL_NEEDS_A_CREDIT_MANAGER)
    application = _lock_for_decision(actor=actor, application_id=application_id, expected=(AppState.AWAITING_SECOND_APPROVAL,))
    ensure_four_eyes(maker=application.decided_by, checker=actor, message=SECOND_APPROVAL_BY_ANOTHER)
    _ensure_screening_allows_approval(application)
    policy = application.decision_policy or selectors.policy_current()
    _check_hard_limits(application, application.approved_limit, policy)
    before = snapshot(application, APPLICATION_FIELDS)
    application.second_approver, application.second_decided_at = actor, timezone.now()
    if note:
        application.decision_note = note.strip()
    application.second_approve()
    _finalise_approval(application, policy)
    _save_transition(application)
    audit_log(actor=actor, action="lending.application.second_approved", obj=application, before=before, after=snapshot(application, APPLICATION_FIELDS))
    _notify_decision(application)
    return application


@transaction.atomic
def application_decline(*, actor, application_id: int, reason_codes: list[str], note: str = "") -> FacilityApplication:
    """Decline at the first decision (officer) or at the second approval (credit manager, not the first approver)."""
    ensure_staff_permission(actor=actor, perm=Perm.APPLICATION_DECIDE)
    codes = [c for c in (reason_codes or []) if c in DeclineReason.values]
    if not codes or len(codes) != len(reason_codes or []):
        raise PortalError("validation_error", _("Choose at least one valid decline reason."), {"reason_codes": [_("From: %(items)s.") % {"items": ', '.join(DeclineReason.values)}]})
    application = _lock_for_decision(actor=actor, application_id=application_id, expected=(AppState.AWAITING_DECISION, AppState.AWAITING_SECOND_APPROVAL))
    before = snapshot(application, APPLICATION_FIELDS)
    now = timezone.now()
    if application.state == AppState.AWAITING_SECOND_APPROVAL:
        ensure_staff_permission(actor=actor, perm=Perm.APPLICATION_SECOND_APPROVE, message=SECOND_APPROVAL_NEEDS_A_CREDIT_MANAGER)
        ensure_four_eyes(maker=application.decided_by, checker=actor, message=SECOND_APPROVAL_BY_ANOTHER)
        application.second_approver, application.second_decided_at = actor, now
    else:
        application.decided_by, application.decided_at = actor, now
        application.decision_policy = selectors.policy_current()
    application.decline_reasons, application.decision_note = codes, (note or "").strip()
    application.decline()
    _save_transition(application)
    audit_log(actor=actor, action="lending.application.declined", obj=application, before=before, after=snapshot(application, APPLICATION_FIELDS))
    _notify_decision(application)
    return application


@transaction.atomic
def application_return(*, actor, application_id: int, questions: str) -> FacilityApplication:
    ensure_staff_permission(actor=actor, perm=Perm.APPLICATION_DECIDE)
    if not (questions or "").strip():
        raise PortalError("validation_error", _("Write the questions for the client."), {"questions": [_("Required.")]})
    application = _lock_for_decision(actor=actor, application_id=application_id, expected=(AppState.AWAITING_DECISION,))
    before = snapshot(application, APPLICATION_FIELDS)
    application.questions = questions.strip()
    application.decided_by, application.decided_at = actor, timezone.now()
    application.return_to_client()
    _save_transition(application)
    audit_log(actor=actor, action="lending.application.returned", obj=application, before=before, after=snapshot(application, APPLICATION_FIELDS))
    _notify_decision(application)
    return application


@transaction.atomic
def application_screening_decide(*, actor, application_id: int, confirmed: bool, note: str) -> FacilityApplication:
    """Compliance decides a name-screening match: cleared (not the listed person: the officer may approve)
    or confirmed (the listed person: the application can only be declined). Recorded and audited."""
    ensure_staff_permission(actor=actor, perm=Perm.SCREENING_REVIEW)
    if not (note or "").strip():
        raise PortalError("validation_error", _("Record how the match was checked (identifiers compared, sources)."), {"note": [_("Required.")]})
    application = _lock_for_decision(actor=actor, application_id=application_id, expected=(AppState.AWAITING_DECISION, AppState.AWAITING_SECOND_APPROVAL))
    if application.screening_status != ScreeningStatus.PENDING:
        raise ConflictError("invalid_state", _("Application %(ref)s has no screening match awaiting compliance.") % {"ref": application.reference})
    before = snapshot(application, ("screening_status",))
    application.screening_status = ScreeningStatus.CONFIRMED if confirmed else ScreeningStatus.CLEARED
    application.screening_decided_by, application.screening_decided_at = actor, timezone.now()
    application.screening_note = note.strip()[:5000]
    application.save(update_fields=["screening_status", "screening_decided_by", "screening_decided_at", "screening_note", "updated_at"])
    audit_log(actor=actor, action=f"lending.application.screening_{application.screening_status}", obj=application, before=before,
              after=snapshot(application, ("screening_status", "screening_decided_by", "screening_note")))
    officer = application.decided_by
    if officer is not None:
        from portal.notifications import notify

        notify(user=officer, kind="lending.application.screening_decided", title=_("Screening decided on %(ref)s"),
               body=_("Compliance recorded the name-screening match: %(outcome)s."),
               params={"ref": application.reference, "outcome": application.screening_status}, link=f"/lending/staff/applications/{application.pk}/")
    return application


def _notify_decision(application: FacilityApplication) -> None:
    from portal.notifications import notify

    titles = {
        AppState.APPROVED: _("Your facility application %(ref)s is approved"),
        AppState.DECLINED: _("Your facility application %(ref)s was declined"),
        AppState.RETURNED: _("Questions about your facility application %(ref)s"),
    }
    bodies = {
        AppState.APPROVED: _("Read and accept the facility letter to open your facility."),
        AppState.DECLINED: _("The reasons are on the application page."),
        AppState.RETURNED: _("Your account officer has questions. Answer them to continue the review."),
    }
    notify(
        user=application.client, kind=f"lending.application.{application.state}", title=titles[application.state],
        body=bodies[application.state], params={"ref": application.reference}, link=f"/lending/applications/{application.pk}/",
        task_key=application_task_key(application.pk) if application.state == AppState.APPROVED else "",
    )


def application_task_key(application_id: int) -> str:
    """The client's task once an application is approved: read and accept the facility letter."""
    return f"lending.application.{application_id}.accept"


# --- Facilities ------------------------------------------------------------------------------


def _position_rows(application: FacilityApplication, haircuts: dict[int, Decimal], prices: dict) -> list[CollateralPosition]:
    """The facility's positions from the accepted lines, at the haircuts of the policy in force (by instrument)."""
    rows = []
    for line in application.lines.select_related("instrument"):
        if line.instrument_id:
            price = prices[line.instrument.code].price_hkd if line.instrument.code in prices else ZERO
            rows.append(CollateralPosition(
                kind=line.kind, instrument_id=line.instrument_id, asset=line.asset, quantity=line.quantity,
                market_value=money(line.quantity * price), haircut=haircuts.get(line.instrument_id, Decimal("1")),
                description=line.description, custody_reference=line.custody_reference,
            ))
        else:  # a line written before the instrument master (a recorded market value by haircut class)
            policy = selectors.policy_current()
            if line.kind == CollateralKind.SECURITIES:
                haircut = policy.securities_haircut(line.haircut_class)
                rows.append(CollateralPosition(kind=line.kind, description=line.description, haircut_class=line.haircut_class,
                                               market_value=line.market_value, haircut=Decimal("1") if haircut is None else haircut))
            else:
                rows.append(CollateralPosition(kind=line.kind, asset=line.asset, quantity=line.quantity, market_value=ZERO,
                                               haircut=policy.va_haircut(line.asset), custody_reference=line.custody_reference,
                                               description=line.description))
    return rows


def band_for(*, utilisation: Decimal, policy: CollateralPolicy) -> str:
    """Kept for callers of the old name; ``lending.valuation.band_for`` owns the rule."""
    from .valuation import band_for as _band_for

    return _band_for(utilisation=utilisation, policy=policy)


@transaction.atomic
def application_accept(*, user, application_id: int, letter_sha256: str) -> Facility:
    """The client accepts the facility letter they were shown; the facility opens (and is valued at once)."""
    locks.book()
    application = _lock_client_application(user, application_id)
    if application.state != AppState.APPROVED:
        raise ConflictError("invalid_state", _("This application is %(state)s; only an approved one can be accepted.") % {"state": application.get_state_display()})
    if (letter_sha256 or "").strip().lower() != application.letter_sha256:
        raise PortalError("letter_changed", _("The facility letter you accepted is not the current one; reload the page and read it again."), {"letter_sha256": [_("Does not match.")]})
    from lending.collateral import selectors as collateral_selectors
    from lending.collateral import services as collateral_services
    policy = application.decision_policy or selectors.policy_current()
    in_force = selectors.policy_current() or policy
    prices = selectors.prices_current()
    now = timezone.now()
    application.accept()
    application.save()
    facility = Facility.objects.create(
        client=user, application=application, limit=application.approved_limit, conditions=application.conditions,
        policy=policy, letter_sha256=application.letter_sha256, accepted_at=now,
    )
    positions = _position_rows(application, collateral_selectors.haircuts_for(policy=in_force), prices)
    for p in positions:
        p.facility = facility
    CollateralPosition.objects.bulk_create(positions)
    # The pledges: each moves the quantity from free to pledged in the custody ledger, or refuses the
    # acceptance (rolled back whole) when the holding is no longer free, e.g. sold since the application.
    for p in positions:
        if p.instrument_id:
            collateral_services.custody_pledge(client_id=user.pk, instrument_id=p.instrument_id, quantity=p.quantity,
                                               facility_id=facility.pk, actor=user, reference=facility.reference)
    from lending.servicing.services import terms_activate, terms_snapshot

    terms = terms_activate(facility=facility, actor=user)
    _risk_facility_changed(facility.pk)  # the engine values the new facility and writes its stored valuation
    facility.refresh_from_db()
    from portal.notifications import notifications_resolve

    notifications_resolve(user=user, task_key=application_task_key(application.pk))
    audit_log(actor=user, action="lending.application.accepted", obj=application, before={"state": AppState.APPROVED},
              after={"state": application.state, "letter_sha256": application.letter_sha256, "facility": facility.pk})
    audit_log(actor=user, action="lending.facility.opened", obj=facility,
              after=snapshot(facility, FACILITY_FIELDS) | {"positions": len(positions), "servicing_terms": terms_snapshot(terms)})
    if application.decided_by_id:
        from portal.notifications import notify

        notify(user=application.decided_by, kind="lending.facility.opened", title=_("Facility %(ref)s is now active"),
               body=_("The client accepted the facility letter."), params={"ref": facility.reference}, link=f"/lending/staff/facilities/{facility.pk}/")
    return facility


def _lock_facility(actor, facility_id: int) -> Facility:
    locks.book()  # a change to a facility revalues it: the book first (lending.locks)
    try:
        facility = locks.facility(facility_id, Facility.objects.select_related("client", "policy"))
    except Facility.DoesNotExist:
        raise NotFoundError("not_found", _("No such facility.")) from None
    ensure_not_own_record(actor=actor, client_user=facility.client)
    return facility


def _ensure_prices_fresh(facility: Facility) -> None:
    """Refused while the price of a virtual asset the facility holds is older than the policy's limit."""
    policy = selectors.policy_current() or facility.policy
    prices = selectors.prices_current(max_age_minutes=policy.price_max_age_minutes)
    held = set(facility.positions.filter(kind=CollateralKind.VIRTUAL_ASSET).values_list("asset", flat=True))
    stale = sorted(a for a in held if a not in prices or not prices[a].fresh)
    if stale:
        raise PortalError("stale_price", _("The price of %(items)s is older than the %(price_max_age_minutes)s-minute limit; the collateral cannot be valued.") % {"items": ', '.join(stale), "price_max_age_minutes": policy.price_max_age_minutes})


def _facility_valuation(facility: Facility) -> dict:
    """The facility valued now (read only, through the revaluation engine's SQL); refused on a stale VA price."""
    from lending.risk.revaluation import facility_valuation

    _ensure_prices_fresh(facility)
    return facility_valuation(facility_id=facility.pk)


def facility_revalue(*, facility: Facility) -> Facility:
    """The facility's valuation now, set on ``facility`` in memory only (the engine alone stores it); the caller holds the locks."""
    value = _facility_valuation(facility)
    facility.lending_value, facility.utilisation, facility.band = value["lv"], value["util"], value["band"]
    return facility


@transaction.atomic
def facility_drawdown(*, actor, facility_id: int, amount, reference: str = "", value_date=None, servicing_request=None) -> FacilityTransaction:
    """Record a drawdown. Refused above the available amount, when suspended, during a margin call,
    or while a required risk disclosure is outstanding."""
    from disclosures.selectors import clients_with_outstanding
    from portal.products import Product

    from .valuation import available

    if servicing_request is None or actor is not SYSTEM:  # a client's approved request executes as the system
        ensure_staff_permission(actor=actor, perm=Perm.FACILITY_OPERATE)
    amount = money_input(amount, "amount")
    facility = _lock_facility(actor, facility_id)
    if facility.state != FacilityState.ACTIVE:
        raise ConflictError("facility_not_active", _("The facility is %(state)s; no drawdowns.") % {"state": facility.get_state_display().lower()})
    if selectors.facility_has_open_margin_call(facility=facility):
        raise ConflictError("margin_call_open", _("A margin call is open on this facility: further advances stop until it is met."))
    if clients_with_outstanding(product=Product.VA_MARGIN, user_ids=[facility.client_id]):
        raise ConflictError("disclosure_outstanding", _("The client has a required risk disclosure to acknowledge at its current version; no drawdowns until they do."))
    _ensure_still_eligible(facility.client)
    # Valued once to check the amount (the refusals above come first, as users see them); the engine then bands it
    # with the new balance from the same sums (and is the only writer).
    lending_value = _facility_valuation(facility)["lv"]
    can_draw = available(limit=facility.limit, lending_value=lending_value, drawn=facility.drawn_balance)
    if amount > can_draw:
        raise PortalError("above_available", _("HK$%(amount)s is above the available HK$%(available)s (limit HK$%(limit)s, lending value HK$%(lending_value)s, drawn HK$%(drawn_balance)s).") % {"amount": f"{amount:,}", "available": f"{can_draw:,}", "limit": f"{facility.limit:,}", "lending_value": f"{lending_value:,}", "drawn_balance": f"{facility.drawn_balance:,}"}, {"amount": [_("Above the available amount.")]})
    before = snapshot(facility, FACILITY_FIELDS)
    # Four-eyes above the servicing policy's amount; a client's request executes only as approved.
    second = money_movement_authorised(facility=facility, kind=TxnKind.DRAWDOWN, amount=amount, actor=actor, request=servicing_request)
    txn = ledger_post(facility=facility, kind=TxnKind.DRAWDOWN, amount=amount, actor=actor, reference=reference, value_date=value_date, approved_by=second)
    facility.save(update_fields=["drawn_balance"])
    # The engine values and bands it with the new balance (the only writer), from the sums the check just rebuilt.
    _risk_facility_changed(facility.pk, sums_current=True)
    facility.refresh_from_db()
    audit_log(actor=actor, action="lending.facility.drawdown", obj=facility, before=before, after=snapshot(facility, FACILITY_FIELDS) | {"amount": amount, "transaction": txn.pk})
    return txn


@transaction.atomic
def facility_repay(*, actor, facility_id: int, amount, reference: str = "", value_date=None, servicing_request=None) -> FacilityTransaction:
    if servicing_request is None or actor is not SYSTEM:  # a client's approved request executes as the system
        ensure_staff_permission(actor=actor, perm=Perm.FACILITY_OPERATE)
    amount = money_input(amount, "amount")
    facility = _lock_facility(actor, facility_id)
    if facility.state == FacilityState.CLOSED:
        raise ConflictError("facility_closed", _("The facility is closed."))
    if amount > facility.drawn_balance:
        raise PortalError("above_drawn", _("HK$%(amount)s is more than the drawn balance of HK$%(drawn_balance)s.") % {"amount": f"{amount:,}", "drawn_balance": f"{facility.drawn_balance:,}"}, {"amount": [_("Above the drawn balance.")]})
    before = snapshot(facility, FACILITY_FIELDS)
    # Four-eyes above the servicing policy's amount; a client's request executes only as approved.
    second = money_movement_authorised(facility=facility, kind=TxnKind.REPAYMENT, amount=amount, actor=actor, request=servicing_request)
    txn = ledger_post(facility=facility, kind=TxnKind.REPAYMENT, amount=amount, actor=actor, reference=reference, value_date=value_date, approved_by=second)
    facility.save(update_fields=["drawn_balance"])
    _risk_facility_changed(facility.pk)  # the engine values and bands it with the new balance (the only writer)
    facility.refresh_from_db()
    audit_log(actor=actor, action="lending.facility.repayment", obj=facility, before=before, after=snapshot(facility, FACILITY_FIELDS) | {"amount": amount, "transaction": txn.pk})
    return txn


def _ensure_still_eligible(client) -> None:
    """A drawdown re-checks what the product requires (margin account, profile, suitability, knowledge,
    disclosures) through onboarding's eligibility service, the same one the application was checked with."""
    from onboarding.selectors import product_eligibility
    from portal.products import Product

    unmet = product_eligibility(user=client, product=Product.VA_MARGIN).unmet
    if unmet:
        raise ConflictError(
            "client_not_eligible",
            _("The client no longer meets the requirements for VA margin financing: %(missing)s No drawdowns until they do.")
            % {"missing": requirements_text([{"label": r.label, "reason": r.reason} for r in unmet])},
            {"requirements": [{"code": r.code, "label": str(r.label), "reason": str(r.reason or "")} for r in unmet]},
        )


def _risk_facility_changed(facility_id: int, *, sums_current: bool = False) -> None:
    """Tell the risk engine, in this same transaction, that a facility's drawn balance or collateral
    changed: it revalues the facility and meets an open margin call cured by the change at once.
    ``sums_current``: only the drawn balance changed since ``_facility_valuation`` in this transaction."""
    from lending.risk.revaluation import revalue_facility

    revalue_facility(facility_id=facility_id, sums_current=sums_current)


def _facility_transition(actor, facility_id: int, perm: Perm, verb: str, apply) -> Facility:
    ensure_staff_permission(actor=actor, perm=perm)
    facility = _lock_facility(actor, facility_id)
    before = snapshot(facility, FACILITY_FIELDS)
    try:
        apply(facility)
    except TransitionNotAllowed:
        raise ConflictError("invalid_state", _("A facility that is %(state)s cannot be %(verb)s.") % {"state": facility.get_state_display().lower(), "verb": verb}) from None
    try:
        facility.save()
    except ConcurrentTransition:
        raise ConflictError("concurrent_change", _("The facility changed at the same moment; reload and try again.")) from None
    audit_log(actor=actor, action=f"lending.facility.{verb}", obj=facility, before=before, after=snapshot(facility, FACILITY_FIELDS))
    return facility


@transaction.atomic
def facility_suspend(*, actor, facility_id: int, reason: str) -> Facility:
    if not (reason or "").strip():
        raise PortalError("validation_error", _("Give the reason for suspending the facility."), {"reason": [_("Required.")]})
    return _facility_transition(actor, facility_id, Perm.FACILITY_SUSPEND, "suspended", lambda f: f.suspend(reason=reason.strip()))


@transaction.atomic
def facility_reinstate(*, actor, facility_id: int) -> Facility:
    return _facility_transition(actor, facility_id, Perm.FACILITY_SUSPEND, "reinstated", lambda f: f.reinstate())


@transaction.atomic
def facility_close(*, actor, facility_id: int) -> Facility:
    def apply(facility):
        if facility.drawn_balance > 0:
            raise ConflictError("balance_outstanding", _("HK$%(drawn_balance)s is still drawn; it must be repaid before closing.") % {"drawn_balance": f"{facility.drawn_balance:,}"})
        facility.close(at=timezone.now())

    return _facility_transition(actor, facility_id, Perm.FACILITY_SUSPEND, "closed", apply)


def preview_valuation(*, user, lines: list[dict]) -> dict:
    """Lending value of collateral lines as typed, at current prices and the policy in force (no writes)."""
    policy = selectors.policy_current()
    if policy is None:
        raise PortalError("no_policy", _("No collateral policy is in force yet."))
    from lending.collateral import selectors as collateral_selectors

    clean = _clean_lines(lines, policy, user) if lines else []
    prices = selectors.prices_current(max_age_minutes=policy.price_max_age_minutes)
    valuation = value_collateral(lines=clean, policy=policy, prices={a: q.price_hkd for a, q in prices.items()},
                                 haircuts=collateral_selectors.haircuts_by_code(policy=policy))
    return valuation.as_dict() | {"policy_version": policy.version}
