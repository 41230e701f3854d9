"""Client requests and staff instructions: drawdowns, repayment notices, collateral top-ups and releases
(with the VA withdrawal safeguards of circular 26EC5, part 2).

Money and collateral still move only through the owners' services: lending's ``facility_drawdown``
and ``facility_repay`` (which check the request through ``authorise.money_movement_authorised``),
the risk engine's ``collateral_top_up``, and the custody ledger's ``custody_release``. A request is
checked when it is made and again when it executes (prices move in between).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransition

from lending.inputs import decimal_input, places_input, quantity_input
from portal.access import ensure_four_eyes, ensure_not_own_record, ensure_staff_permission
from portal.audit import SYSTEM, audit_log, snapshot
from portal.errors import ConflictError, ForbiddenError, NotFoundError, PortalError
from portal.mfa import ensure_client_enrolled
from portal.permissions import Perm

from . import selectors
from .models import AddressState, RequestKind, RequestOrigin, RequestState, ServicingRequest, WithdrawalAddress
from .reasons import refusal_render

CENT = Decimal("0.01")
STEPUP_MAX_AGE = timedelta(minutes=5)
ADDRESS_PATTERNS = {
    "BTC": re.compile(r"^(bc1[02-9ac-hj-np-z]{11,71}|[13][1-9A-HJ-NP-Za-km-z]{25,34})$"),
    "ETH": re.compile(r"^0x[0-9a-fA-F]{40}$"),
}


def _policy():
    policy = selectors.servicing_policy_current()
    if policy is None:
        raise PortalError("no_servicing_policy", _("No servicing policy is in force."))
    return policy


def _client_facility(user, facility_id: int):
    from lending.models import Facility, FacilityState

    if not (user and user.is_authenticated and user.is_client):
        raise ForbiddenError("permission_denied", _("Only the client can ask for this."))
    facility = Facility.objects.select_related("policy").filter(pk=facility_id, client=user).first()
    if facility is None:
        raise NotFoundError("not_found", _("No such facility."))
    if facility.state == FacilityState.CLOSED:
        raise ConflictError("facility_closed", _("The facility is closed."))
    return facility


def _money(value, field: str = "amount") -> Decimal:
    return places_input(value, field, places=2, minimum=CENT)


def _notify_client(req: ServicingRequest, title, body="") -> None:
    from portal.notifications import notify

    notify(user=req.client, kind=f"servicing.request.{req.state}", title=title, body=body,
           params={"ref": req.reference, "kind": RequestKind(req.kind).label, "reason": req.refusal},
           link=reverse("lending:facility", args=[req.facility_id]))


def _save(req: ServicingRequest) -> None:
    try:
        req.save()
    except ConcurrentTransition:
        raise ConflictError("concurrent_change", _("The request changed at the same moment; reload and try again.")) from None


# --- Drawdowns ------------------------------------------------------------------------------------


def drawdown_blockers(*, facility) -> list[str]:
    """Why a drawdown cannot be asked for now (empty when it can): open calls, disclosures, eligibility, state."""
    from disclosures.selectors import clients_with_outstanding
    from lending import selectors as lending_selectors
    from lending.models import FacilityState
    from onboarding.selectors import product_eligibility
    from portal.products import Product

    reasons = []
    if facility.state != FacilityState.ACTIVE:
        reasons.append(str(_("The facility is %(state)s.") % {"state": facility.get_state_display().lower()}))
    if lending_selectors.facility_has_open_margin_call(facility=facility):
        reasons.append(str(_("A margin call is open: further advances stop until it is met.")))
    if clients_with_outstanding(product=Product.VA_MARGIN, user_ids=[facility.client_id]):
        reasons.append(str(_("A required risk disclosure must be acknowledged at its current version first.")))
    eligibility = product_eligibility(user=facility.client, product=Product.VA_MARGIN)
    reasons += [str(r.reason or r.label) for r in eligibility.unmet]
    return reasons


@transaction.atomic
def drawdown_request(*, user, facility_id: int, amount) -> ServicingRequest:
    """A client asks to draw. Checked now against available, eligibility, open calls and disclosures;
    executed at once up to the policy amount, otherwise it waits for an account officer."""
    from lending import services as lending_services

    facility = _client_facility(user, facility_id)
    ensure_client_enrolled(user, action=_("a drawdown"))
    amount = _money(amount)
    blockers = drawdown_blockers(facility=facility)
    if blockers:
        raise ConflictError("drawdown_blocked", " ".join(blockers))
    lending_services.facility_revalue(facility=facility)  # available at current prices (not saved; execution re-checks)
    if amount > facility.available:
        raise PortalError("above_available", _("HK$%(amount)s is above the available HK$%(available)s.") % {"amount": f"{amount:,}", "available": f"{facility.available.quantize(CENT):,}"},
                          {"amount": [_("Above the available amount.")]})
    policy = _policy()
    req = ServicingRequest.objects.create(
        facility=facility, client=user, kind=RequestKind.DRAWDOWN, origin=RequestOrigin.CLIENT, amount=amount, requested_by=user,
        needs_officer=amount > policy.client_drawdown_auto_max, needs_second=amount > policy.staff_four_eyes_above,
    )
    if not req.needs_officer:
        txn = lending_services.facility_drawdown(actor=SYSTEM, facility_id=facility.pk, amount=amount, reference=req.reference, servicing_request=req)
        req.ledger_entry_id = txn.pk
        req.execute(at=timezone.now())
        _save(req)
    audit_log(actor=user, action="servicing.request.drawdown", obj=req, after=snapshot(req, ServicingRequest.FIELDS) | {"facility": facility.pk})
    if req.state == RequestState.EXECUTED:
        _notify_client(req, _("Drawdown %(ref)s paid"), _("Your drawdown was executed at once."))
    return req


# --- Repayment notices ----------------------------------------------------------------------------


def payment_instructions(req: ServicingRequest | None = None) -> str:
    from django.utils import translation

    chinese = (translation.get_language() or "").lower().startswith("zh")
    text = settings.SERVICING_PAYMENT_INSTRUCTIONS_ZH_HANT if chinese else settings.SERVICING_PAYMENT_INSTRUCTIONS
    return text.replace("{reference}", req.reference if req else "REQ-…")


@transaction.atomic
def repayment_notice(*, user, facility_id: int, amount, note: str = "") -> ServicingRequest:
    """A client tells us a repayment is on its way; it is matched when the back office confirms receipt."""
    from lending import locks

    facility = _client_facility(user, facility_id)
    amount = _money(amount)
    locks.book()
    facility = locks.facility(facility.pk)  # notices of the same facility one at a time: each sees the others pending
    pending = selectors.pending_repayment_amount(facility_id=facility.pk)
    if pending and amount + pending > facility.drawn_balance:
        raise PortalError("above_drawn", _("HK$%(amount)s and the HK$%(pending)s of repayments still pending are more than the drawn balance of HK$%(drawn)s.")
                          % {"amount": f"{amount:,}", "pending": f"{pending:,}", "drawn": f"{facility.drawn_balance:,}"},
                          {"amount": [_("Above the drawn balance less the pending repayments.")]})
    if amount > facility.drawn_balance:
        raise PortalError("above_drawn", _("HK$%(amount)s is more than the drawn balance of HK$%(drawn)s.") % {"amount": f"{amount:,}", "drawn": f"{facility.drawn_balance:,}"},
                          {"amount": [_("Above the drawn balance.")]})
    policy = _policy()
    req = ServicingRequest.objects.create(
        facility=facility, client=user, kind=RequestKind.REPAYMENT, origin=RequestOrigin.CLIENT, amount=amount, requested_by=user,
        note=(note or "")[:1000], needs_officer=True, needs_second=amount > policy.staff_four_eyes_above,
    )
    audit_log(actor=user, action="servicing.request.repayment_notice", obj=req, after=snapshot(req, ServicingRequest.FIELDS))
    return req


# --- Collateral top-ups -----------------------------------------------------------------------------


@transaction.atomic
def top_up_request(*, user, facility_id: int, collateral_kind: str = "", instrument: str = "", asset: str = "", quantity=None,
                   description: str = "", custody_reference: str = "") -> ServicingRequest:
    """A client asks to pledge more of their holdings (a security of the margin account, BTC or ETH in custody);
    an officer records it through the risk engine's top-up, which pledges it in the custody ledger. The request
    passes that top-up's own checks now (``lending.risk.services.collateral_top_up_check``), so one that could
    never be carried out is refused when it is asked, in the officer's words; and it asks for no more than the
    client has free less what their other pending top-up requests ask for (on any of their facilities)."""
    from lending import locks
    from lending.collateral import selectors as collateral_selectors
    from lending.risk import services as risk_services

    facility = _client_facility(user, facility_id)
    item = collateral_selectors.instrument_by_code(code=instrument or asset)
    if item is None or not item.active:  # in the client's words (the check below names it for an officer)
        raise PortalError("validation_error", _("Choose a holding of your margin account, bitcoin or ether."), {"instrument": [_("Unknown instrument.")]})
    locks.book()  # requests one at a time, each seeing the others pending; the concentration check reads the book

    def within_free(item, qty: Decimal) -> None:
        holding = collateral_selectors.custody_balance(client_id=user.pk, instrument_id=item.pk)
        pending = selectors.pending_top_up_quantity(client_id=user.pk, code=item.code)
        free = max((holding.free if holding else Decimal(0)) - pending, Decimal(0))
        if qty > free:
            message = (_("You have %(free)s %(code)s free to pledge once your pending top-up requests (%(pending)s) are counted.") if pending
                       else _("You have %(free)s %(code)s free to pledge."))
            raise PortalError("above_free", message % {"free": f"{free.normalize():,f}", "code": item.code, "pending": f"{pending.normalize():,f}"},
                              {"quantity": [_("At most %(free)s.") % {"free": f"{free.normalize():,f}"}]})

    checked = risk_services.collateral_top_up_check(facility=facility, instrument=item.code, quantity=quantity, kind=collateral_kind,
                                                    custody_reference=custody_reference, within=within_free)
    req = ServicingRequest.objects.create(
        facility=facility, client=user, kind=RequestKind.TOP_UP, origin=RequestOrigin.CLIENT, requested_by=user, needs_officer=True,
        collateral_kind=checked.kind, asset=item.code, quantity=checked.quantity, description=(description or item.name_en)[:200],
        custody_reference=(custody_reference or "").strip()[:100])
    audit_log(actor=user, action="servicing.request.top_up", obj=req, after=snapshot(req, ServicingRequest.FIELDS))
    return req


# --- Collateral releases and VA withdrawals ---------------------------------------------------------------


def release_utilisation_after(*, facility, position, quantity: Decimal | None) -> tuple[Decimal, Decimal]:
    """(lending value after the release, utilisation after it) at current prices and the haircuts the
    positions carry (those of the policy in force), through ``lending.valuation``, the engine's own rules.
    ``quantity`` None releases the whole line."""
    from lending import selectors as lending_selectors
    from lending.valuation import PositionValueInput, value_facility

    policy = lending_selectors.policy_current() or facility.policy
    prices = {a: p.price_hkd for a, p in lending_selectors.prices_current().items()}
    inputs = []
    for p in facility.positions.select_related("instrument"):
        qty = p.quantity
        if p.pk == position.pk:
            if p.instrument_id is None and p.kind == "securities":
                continue  # a line booked by value before the instrument master is released whole
            qty = (p.quantity or Decimal(0)) - (quantity if quantity is not None else (p.quantity or Decimal(0)))
        code = p.asset if p.kind == "virtual_asset" else (p.instrument.code if p.instrument_id else "")
        inputs.append(PositionValueInput(kind=p.kind, haircut=p.haircut, quantity=qty, price=prices.get(code) if code else None,
                                         market_value=None if p.instrument_id else p.market_value))
    value = value_facility(positions=inputs, drawn=facility.drawn_balance, max_share=policy.va_max_share, watch=policy.watch_level,
                           margin_call=policy.margin_call_level, close_out=policy.close_out_level)
    return value.lending_value, value.utilisation


def _securities_release_quantity(position, quantity) -> Decimal | None:
    """Whole shares, at most what the line holds (default: all of it); None for a line booked by value."""
    if position.instrument_id is None:
        return None
    held = position.quantity or Decimal(0)
    if quantity in (None, ""):
        qty = held
    else:
        qty = decimal_input(quantity, "quantity", minimum=Decimal("1"))
        if qty != qty.to_integral_value():
            raise PortalError("validation_error", _("A securities quantity is a whole number of shares."), {"quantity": [_("Whole shares.")]})
    if qty <= 0 or qty > held:
        raise PortalError("validation_error", _("Only %(q)s is held on this line.") % {"q": f"{held.normalize():,f}"}, {"quantity": [_("Too much.")]})
    return qty.quantize(Decimal("0.00000001"))


def _fresh_stepup(stepup_at: datetime | None) -> bool:
    return stepup_at is not None and timezone.now() - stepup_at <= STEPUP_MAX_AGE


@transaction.atomic
def release_request(*, user, facility_id: int, position_id: int, quantity=None, address_id: int | None = None,
                    stepup_at: datetime | None = None) -> ServicingRequest:
    """A client asks for collateral back. Refused (and kept, refused, with the figures) if utilisation
    after it would exceed the policy's initial level. Virtual assets go only to an active whitelisted
    address, after a fresh MFA step-up, with an officer's and then a second person's approval above the tiers."""
    from lending import selectors as lending_selectors
    from lending.models import CollateralKind, CollateralPosition, FacilityState

    facility = _client_facility(user, facility_id)
    if facility.state == FacilityState.SUSPENDED:  # a suspended facility takes repayments and more collateral only
        raise ConflictError("facility_suspended", _("The facility is suspended: no collateral can be released from it until it is active again. "
                                                    "You can still repay and add collateral."))
    ensure_client_enrolled(user, action=_("a release of collateral"))
    policy = _policy()
    position = CollateralPosition.objects.filter(pk=position_id, facility=facility).first()
    if position is None:
        raise NotFoundError("not_found", _("No such collateral line on this facility."))
    values: dict = {"position_id": position.pk, "collateral_kind": position.kind, "asset": position.asset}
    if position.kind == CollateralKind.VIRTUAL_ASSET:
        qty = quantity_input(quantity, "quantity", asset=position.asset)
        if qty > (position.quantity or 0):
            raise PortalError("validation_error", _("Only %(q)s is held on this line.") % {"q": position.quantity}, {"quantity": [_("Too much.")]})
        if not _fresh_stepup(stepup_at):
            raise ForbiddenError("stepup_required", _("Confirm it is you with your authenticator before a withdrawal: on the facility page, or with the current code as otp_code in an API request."))
        address = address_usable(user=user, address_id=address_id, asset=position.asset)
        price = lending_selectors.prices_current().get(position.asset)
        value = (qty * price.price_hkd).quantize(CENT) if price else Decimal(0)
        values |= {"quantity": qty, "address": address, "value_hkd": value, "stepup_at": stepup_at,
                   "needs_officer": value > policy.withdrawal_officer_above, "needs_second": value > policy.withdrawal_second_above}
    else:
        qty = _securities_release_quantity(position, quantity)
        value = position.market_value
        if qty is not None:
            price = lending_selectors.prices_current().get(position.instrument.code)
            value = (qty * price.price_hkd).quantize(CENT) if price else Decimal(0)
        values |= {"quantity": qty, "asset": position.instrument.code if position.instrument_id else "", "market_value": value,
                   "value_hkd": value, "needs_officer": True, "needs_second": value > policy.staff_four_eyes_above,
                   "description": position.description}
    _lv, util = release_utilisation_after(facility=facility, position=position, quantity=qty)
    req = ServicingRequest.objects.create(facility=facility, client=user, kind=RequestKind.RELEASE, origin=RequestOrigin.CLIENT,
                                          requested_by=user, utilisation_after=util, **values)
    if util > policy.release_initial_level:
        params = {"after": f"{util:.2%}", "level": f"{policy.release_initial_level:.2%}"}
        req.refuse(reason=refusal_render("release.above_initial_level", params, language="en"), at=timezone.now(),
                   code="release.above_initial_level", params=params)
        _save(req)
    elif not req.needs_officer:
        _release_execute(req, actor=SYSTEM)
    audit_log(actor=user, action="servicing.request.release", obj=req, after=snapshot(req, ServicingRequest.FIELDS))
    if req.state == RequestState.REFUSED:
        _notify_client(req, _("Release %(ref)s refused"), _("%(reason)s"))
    elif req.state == RequestState.EXECUTED:
        _notify_client(req, _("Withdrawal %(ref)s approved"), _("It will be sent to your whitelisted address; the transfer reference follows once broadcast."))
    return req


def _release_execute(req: ServicingRequest, *, actor) -> None:
    """Release under the locks (book → facility), re-checking the initial level at current prices; the custody
    ledger frees exactly the quantity released."""
    from lending import locks
    from lending import selectors as lending_selectors
    from lending.collateral import services as custody
    from lending.collateral.models import Instrument
    from lending.models import CollateralPosition, Facility
    from lending.risk.revaluation import revalue_facility

    policy = _policy()
    locks.book()
    facility = locks.facility(req.facility_id, Facility.objects.select_related("policy"))
    position = CollateralPosition.objects.select_for_update(no_key=True).get(pk=req.position_id, facility=facility)
    qty = req.quantity
    _lv, util = release_utilisation_after(facility=facility, position=position, quantity=qty)
    if util > policy.release_initial_level:
        raise ConflictError("release_above_initial_level", _("Utilisation after the release would now be %(after)s, above the initial level of %(level)s.")
                            % {"after": f"{util:.2%}", "level": f"{policy.release_initial_level:.2%}"})
    if position.instrument_id is not None or position.kind == "virtual_asset":
        # The custody ledger frees exactly what leaves the facility (refused above what this facility has pledged).
        instrument = position.instrument if position.instrument_id else Instrument.objects.filter(code=position.asset).first()
        if instrument is None:
            raise ConflictError("no_instrument", _("The custody ledger has no %(asset)s instrument.") % {"asset": position.asset})
        if qty is None or qty > (position.quantity or Decimal(0)):
            raise ConflictError("above_position", _("Only %(q)s is held on this line.") % {"q": f"{(position.quantity or Decimal(0)).normalize():,f}"})
        custody.custody_release(client_id=facility.client_id, instrument_id=instrument.pk, quantity=qty, facility_id=facility.pk,
                                actor=actor, reference=req.reference)
        position.quantity = (position.quantity or Decimal(0)) - qty
        price = lending_selectors.prices_current().get(instrument.code)
        position.market_value = (position.quantity * price.price_hkd).quantize(CENT) if price else Decimal("0.00")
    else:  # a line booked by value before the instrument master (never pledged in the ledger)
        position.market_value = Decimal("0.00")
        position.description = f"{position.description} (released {req.reference})"[:200]
    position.save()
    revalue_facility(facility_id=facility.pk)  # the engine rebuilds its sums and revalues it in this commit
    req.utilisation_after = util
    req.execute(at=timezone.now())
    _save(req)


# --- Staff: approve, execute, refuse -------------------------------------------------------------------


def _lock_request(actor, request_id: int) -> ServicingRequest:
    ensure_staff_permission(actor=actor, perm=Perm.FACILITY_OPERATE)
    req = ServicingRequest.objects.select_for_update(no_key=True, of=("self",)).select_related("client", "facility", "first_by").filter(pk=request_id).first()
    if req is None:
        raise NotFoundError("not_found", _("No such request."))
    ensure_not_own_record(actor=actor, client_user=req.client)
    return req


@transaction.atomic
def request_approve(*, actor, request_id: int, received_reference: str = "", custody_reference: str = "") -> ServicingRequest:
    """An officer approves (first), or a second, different person approves; it executes once it has
    every approval it needs. A repayment is matched to the receipt the back office confirmed; a top-up of
    virtual assets is pledged under the custody reference the officer gives (needed when the request has none)."""
    from lending import services as lending_services
    from lending.risk import services as risk_services

    req = _lock_request(actor, request_id)
    before = snapshot(req, ServicingRequest.FIELDS)
    now = timezone.now()
    if req.state == RequestState.REQUESTED:
        if req.kind == RequestKind.REPAYMENT and not (received_reference or "").strip():
            raise PortalError("validation_error", _("Give the back office's receipt reference to match the repayment."), {"received_reference": [_("Required.")]})
        req.received_reference = (received_reference or "").strip()[:100]
        if req.needs_second:
            req.first_approve(by=actor, at=now)
            _save(req)
            audit_log(actor=actor, action="servicing.request.first_approved", obj=req, before=before, after=snapshot(req, ServicingRequest.FIELDS))
            return req
        req.first_by, req.first_at = actor, now
    elif req.state == RequestState.AWAITING_SECOND:
        ensure_four_eyes(maker=req.first_by, checker=actor)
        req.second_by, req.second_at = actor, now
    else:
        raise ConflictError("invalid_state", _("The request is %(state)s.") % {"state": req.get_state_display().lower()})
    if req.kind == RequestKind.DRAWDOWN:
        req.ledger_entry_id = lending_services.facility_drawdown(actor=actor, facility_id=req.facility_id, amount=req.amount,
                                                                 reference=req.reference, servicing_request=req).pk
    elif req.kind == RequestKind.REPAYMENT:
        req.ledger_entry_id = lending_services.facility_repay(actor=actor, facility_id=req.facility_id, amount=req.amount,
                                                              reference=req.received_reference or req.reference, servicing_request=req).pk
    elif req.kind == RequestKind.TOP_UP:
        if (custody_reference or "").strip():
            req.custody_reference = custody_reference.strip()[:100]
        risk_services.collateral_top_up(actor=actor, facility_id=req.facility_id, instrument=req.asset, quantity=req.quantity,
                                        description=req.description, custody_reference=req.custody_reference, reference=req.reference)
    elif req.kind == RequestKind.RELEASE:
        _release_execute(req, actor=actor)
    if req.state != RequestState.EXECUTED:
        req.execute(at=now)
        _save(req)
    audit_log(actor=actor, action="servicing.request.executed", obj=req, before=before,
              after=snapshot(req, ServicingRequest.FIELDS) | ({"custody_reference": req.custody_reference} if req.kind == RequestKind.TOP_UP else {}))
    _notify_client(req, _("Your request %(ref)s was executed"), _("%(kind)s: done."))
    return req


@transaction.atomic
def request_refuse(*, actor, request_id: int, reason: str) -> ServicingRequest:
    if not (reason or "").strip():
        raise PortalError("validation_error", _("Give the reason."), {"reason": [_("Required.")]})
    req = _lock_request(actor, request_id)
    before = snapshot(req, ServicingRequest.FIELDS)
    if req.state not in (RequestState.REQUESTED, RequestState.AWAITING_SECOND):
        raise ConflictError("invalid_state", _("The request is %(state)s.") % {"state": req.get_state_display().lower()})
    req.refuse(reason=reason.strip(), at=timezone.now())
    _save(req)
    audit_log(actor=actor, action="servicing.request.refused", obj=req, before=before, after=snapshot(req, ServicingRequest.FIELDS))
    _notify_client(req, _("Your request %(ref)s was refused"), _("%(reason)s"))
    return req


@transaction.atomic
def request_cancel(*, user, request_id: int) -> ServicingRequest:
    req = ServicingRequest.objects.select_for_update(no_key=True).filter(pk=request_id, client=user).first()
    if req is None:
        raise NotFoundError("not_found", _("No such request."))
    if req.state != RequestState.REQUESTED:
        raise ConflictError("invalid_state", _("The request is %(state)s and can no longer be cancelled.") % {"state": req.get_state_display().lower()})
    req.cancel(at=timezone.now())
    _save(req)
    audit_log(actor=user, action="servicing.request.cancelled", obj=req, after={"state": req.state})
    return req


@transaction.atomic
def staff_instruction(*, actor, facility_id: int, kind: str, amount, reference: str = "") -> ServicingRequest:
    """Staff record a drawdown or repayment: at once up to the four-eyes amount, above it a second,
    different member of staff approves (``request_approve``) before it executes."""
    from lending import services as lending_services
    from lending.models import Facility

    ensure_staff_permission(actor=actor, perm=Perm.FACILITY_OPERATE)
    if kind not in (RequestKind.DRAWDOWN, RequestKind.REPAYMENT):
        raise PortalError("validation_error", _("A drawdown or a repayment."), {"kind": [_("drawdown or repayment.")]})
    facility = Facility.objects.filter(pk=facility_id).select_related("client").first()
    if facility is None:
        raise NotFoundError("not_found", _("No such facility."))
    ensure_not_own_record(actor=actor, client_user=facility.client)
    amount = _money(amount)
    policy = _policy()
    req = ServicingRequest.objects.create(facility=facility, client=facility.client, kind=kind, origin=RequestOrigin.STAFF, amount=amount,
                                          requested_by=actor, received_reference=(reference or "")[:100], needs_officer=True,
                                          needs_second=amount > policy.staff_four_eyes_above)
    if req.needs_second:
        req.first_approve(by=actor, at=timezone.now())
        _save(req)
    else:
        req.first_by, req.first_at = actor, timezone.now()
        fn = lending_services.facility_drawdown if kind == RequestKind.DRAWDOWN else lending_services.facility_repay
        req.ledger_entry_id = fn(actor=actor, facility_id=facility.pk, amount=amount, reference=reference or req.reference, servicing_request=req).pk
        req.execute(at=timezone.now())
        _save(req)
    audit_log(actor=actor, action="servicing.instruction.recorded", obj=req, after=snapshot(req, ServicingRequest.FIELDS))
    return req


@transaction.atomic
def withdrawal_broadcast(*, actor, request_id: int, transfer_reference: str) -> ServicingRequest:
    """Record the on-chain transfer reference once the withdrawal has been broadcast."""
    req = _lock_request(actor, request_id)
    if req.kind != RequestKind.RELEASE or req.asset == "" or req.state != RequestState.EXECUTED:
        raise ConflictError("invalid_state", _("Only an executed VA withdrawal has a transfer reference."))
    if req.broadcast_reference:
        raise ConflictError("already_recorded", _("The transfer reference is already recorded."))
    ref = (transfer_reference or "").strip()
    if not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", ref):
        raise PortalError("validation_error", _("A transaction hash (64 hexadecimal characters)."), {"transfer_reference": [_("Not a transaction hash.")]})
    ServicingRequest.objects.filter(pk=req.pk).update(broadcast_reference=ref, broadcast_at=timezone.now())
    req.refresh_from_db()
    audit_log(actor=actor, action="servicing.withdrawal.broadcast", obj=req, after={"transfer_reference": ref})
    _notify_client(req, _("Withdrawal %(ref)s sent"), _("The transfer has been broadcast."))
    return req


# --- Whitelisted withdrawal addresses ------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def address_add(*, user, asset: str, address: str, label: str = "") -> tuple[WithdrawalAddress, str]:
    """Register an address; it is confirmed by the emailed link, then cools off for the policy's hours."""
    from portal.notifications import notify

    if not (user and user.is_authenticated and user.is_client):
        raise ForbiddenError("permission_denied", _("Only the client can whitelist an address."))
    asset = (asset or "").upper()
    address = (address or "").strip()
    pattern = ADDRESS_PATTERNS.get(asset)
    if pattern is None:
        raise PortalError("validation_error", _("Bitcoin or ether only."), {"asset": [_("BTC or ETH.")]})
    if not pattern.fullmatch(address):
        raise PortalError("validation_error", _("That is not a valid %(asset)s address.") % {"asset": asset}, {"address": [_("Not a valid address.")]})
    if WithdrawalAddress.objects.filter(client=user, asset=asset, address=address).exclude(state=AddressState.REVOKED).exists():
        raise ConflictError("duplicate_address", _("That address is already on your list."))
    token = secrets.token_urlsafe(32)
    entry = WithdrawalAddress.objects.create(client=user, asset=asset, address=address, label=(label or "")[:80], token_hash=_token_hash(token))
    audit_log(actor=user, action="servicing.address.added", obj=entry, after={"asset": asset, "address": address, "label": entry.label})
    # The link goes by email only: whoever has the session (the inbox) must not be able to confirm without the mailbox.
    notify(user=user, kind="servicing.address.added", title=_("Confirm your new %(asset)s withdrawal address"),
           body=_("We have emailed you a link to confirm the address. If you did not add it, do nothing and tell us."), params={"asset": asset},
           link=reverse("servicing:addresses"), email=False)
    from .tasks import address_confirmation_email

    address_confirmation_email.delay_on_commit(entry.pk, token)
    return entry, token


def address_confirmation_send(*, address_id: int, token: str) -> bool:
    """Email the client the link confirming a new address (the only place the link goes), in their language.
    False when there is nothing to send: the address was confirmed or revoked meanwhile, or the token is not its own."""
    from django.core.mail import EmailMultiAlternatives
    from django.template.loader import render_to_string
    from django.utils import translation

    from portal.notifications import absolute_url

    entry = WithdrawalAddress.objects.select_related("client").filter(pk=address_id, state=AddressState.ADDED, token_hash=_token_hash(token or "")).first()
    if entry is None:
        return False
    user = entry.client
    with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
        title = _("Confirm your new %(asset)s withdrawal address") % {"asset": entry.asset}
        context = {
            "title": title, "link": absolute_url(reverse("servicing:address-confirm", args=[token])), "site_url": absolute_url("/"),
            "preferences_url": absolute_url("/notifications/preferences/"), "language": user.preferred_language,
            "body": _("Open the link to confirm the address %(address)s. If you did not add it, do nothing and tell us.") % {"address": entry.address},
        }
        subject = _("[%(portal)s] %(title)s") % {"portal": _("VA Margin Portal"), "title": title}
        message = EmailMultiAlternatives(subject=" ".join(str(subject).split()), body=render_to_string("portal/email/notification.txt", context),
                                         to=[user.email])
        message.attach_alternative(render_to_string("portal/email/notification.html", context), "text/html")
    message.send()
    return True


@transaction.atomic
def address_confirm(*, user, token: str) -> WithdrawalAddress:
    entry = WithdrawalAddress.objects.select_for_update(no_key=True).filter(client=user, state=AddressState.ADDED, token_hash=_token_hash(token or "")).first()
    if entry is None:
        raise NotFoundError("not_found", _("This confirmation link is not valid (or was used already)."))
    hours = _policy().whitelist_cooling_off_hours
    entry.confirm(at=timezone.now(), hours=hours)
    entry.save()
    audit_log(actor=user, action="servicing.address.confirmed", obj=entry, after={"state": entry.state, "active_from": entry.active_from.isoformat()})
    from portal.notifications import notify

    notify(user=user, kind="servicing.address.cooling_off", title=_("Your new withdrawal address is cooling off"),
           body=_("It can be used from %(when)s (Hong Kong time)."), params={"when": timezone.localtime(entry.active_from).strftime("%Y-%m-%d %H:%M")})
    return entry


@transaction.atomic
def address_revoke(*, user, address_id: int) -> WithdrawalAddress:
    entry = WithdrawalAddress.objects.select_for_update(no_key=True).filter(client=user, pk=address_id).exclude(state=AddressState.REVOKED).first()
    if entry is None:
        raise NotFoundError("not_found", _("No such address."))
    entry.revoke(at=timezone.now())
    entry.save()
    audit_log(actor=user, action="servicing.address.revoked", obj=entry, after={"state": entry.state})
    return entry


def addresses_activate_due(*, now: datetime | None = None) -> int:
    """Cooling-off over: cooling_off → active (conditional UPDATE, idempotent; the periodic job)."""
    now = now or timezone.now()
    count = 0
    for entry in WithdrawalAddress.objects.filter(state=AddressState.COOLING_OFF, active_from__lte=now):
        with transaction.atomic():
            locked = WithdrawalAddress.objects.select_for_update(no_key=True).filter(pk=entry.pk, state=AddressState.COOLING_OFF).first()
            if locked is None:
                continue
            locked.activate(at=now)
            locked.save()
            audit_log(actor=SYSTEM, action="servicing.address.activated", obj=locked, after={"state": locked.state})
            count += 1
    return count


def address_usable(*, user, address_id: int | None, asset: str) -> WithdrawalAddress:
    """The client's active address for ``asset``, or a refusal saying why (cooling off, not confirmed, revoked)."""
    entry = WithdrawalAddress.objects.filter(client=user, pk=address_id or 0).first()
    if entry is None or entry.asset != asset:
        raise PortalError("address_required", _("Choose one of your whitelisted %(asset)s addresses.") % {"asset": asset}, {"address_id": [_("Required.")]})
    now = timezone.now()
    if entry.state == AddressState.COOLING_OFF and entry.active_from and entry.active_from <= now:
        addresses_activate_due(now=now)
        entry.refresh_from_db()
    if entry.state == AddressState.COOLING_OFF:
        raise ConflictError("address_cooling_off", _("This address is cooling off until %(when)s (Hong Kong time).") % {"when": timezone.localtime(entry.active_from).strftime("%Y-%m-%d %H:%M")})
    if entry.state == AddressState.ADDED:
        raise ConflictError("address_unconfirmed", _("Confirm this address with the link we emailed you first."))
    if entry.state != AddressState.ACTIVE:
        raise ConflictError("address_revoked", _("This address was revoked."))
    return entry
