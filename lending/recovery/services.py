"""Writes for close-out and recovery: the recovery policy, liquidation plans, executions, amendments, debts.

Locks (``lending.locks``): book → facility → margin call → recovery rows (plans, amendments, debts) →
audit chain. Money moves only through ``lending.ledger.ledger_post``; custody only through the collateral
book's custody ledger; stored valuations only through the revaluation engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from lending import locks
from lending.inputs import decimal_input, money_input
from lending.ledger import ledger_post
from lending.models import CollateralKind, CollateralPosition, Facility, TxnKind
from lending.services import maker_checker_create, maker_checker_decide
from lending.valuation import money
from portal.access import ensure_four_eyes, ensure_not_own_record, ensure_staff_permission
from portal.audit import SYSTEM, audit_log, audit_log_many, snapshot
from portal.errors import ConflictError, NotFoundError, PortalError
from portal.permissions import Perm

from . import planning, selectors
from .models import (
    LIQUIDATION_STEPS,
    LIVE_DEBT_STATES,
    Debt,
    DebtState,
    DunningNotice,
    Execution,
    ExecutionStatus,
    LineStatus,
    LiquidationLine,
    LiquidationPlan,
    PlanAmendment,
    PlanState,
    Recovery,
    RecoveryPolicy,
    SecuritiesOrder,
)

ZERO = Decimal("0")
CENT = Decimal("0.01")
QUANTUM = Decimal("0.00000001")
PRICE_MAX = Decimal("1000000000000")
PREPARE_BATCH = 500


def _text(value, field: str) -> str:
    text = (value or "").strip()
    if not text:
        raise PortalError("validation_error", _("Give the %(field)s.") % {"field": field}, {field: [_("Required.")]})
    return text


def _save(obj, what) -> None:
    try:
        if hasattr(obj, "updated_at"):
            obj.updated_at = timezone.now()
        obj.save()
    except ConcurrentTransition:
        raise ConflictError("concurrent_change", _("The %(what)s changed at the same moment; reload and try again.") % {"what": what}) from None


def _transition(obj, apply, label: str) -> None:
    try:
        apply()
    except TransitionNotAllowed:
        raise ConflictError("invalid_state", _("%(ref)s is %(state)s; that is not possible now.") % {
            "ref": label, "state": obj.get_state_display().lower()}) from None


# --- Recovery policy (maker-checker) ----------------------------------------------------------------------


def _validate_numbers(numbers: dict) -> dict:
    from lending import selectors as lending_selectors

    collateral = lending_selectors.policy_current()
    watch = collateral.watch_level if collateral else Decimal("1")
    target = decimal_input(numbers.get("target_utilisation"), "target_utilisation", minimum=Decimal("0.05"), maximum=Decimal("0.99"))
    if target >= watch:
        raise PortalError("target_above_watch", _("The target utilisation must be below the watch level (%(watch)s): a close-out brings the facility back to health.") % {
            "watch": f"{watch:.0%}"}, {"target_utilisation": [_("Below %(watch)s.") % {"watch": f"{watch:.0%}"}]})
    order = numbers.get("liquidation_order")
    if isinstance(order, str):
        order = [s.strip() for s in order.split(",") if s.strip()]
    if not isinstance(order, list) or sorted(order) != sorted(LIQUIDATION_STEPS):
        raise PortalError("validation_error", _("The order of sale names BTC, ETH and securities, each once."),
                          {"liquidation_order": [_("BTC, ETH and securities, each once.")]})
    securities_order = numbers.get("securities_order") or SecuritiesOrder.HAIRCUT
    if securities_order not in SecuritiesOrder.values:
        raise PortalError("validation_error", _("Choose how securities are ordered."), {"securities_order": [", ".join(SecuritiesOrder.values)]})
    increment = decimal_input(numbers.get("va_sale_increment") or "0.0001", "va_sale_increment", minimum=QUANTUM, maximum=Decimal("1"))
    if increment != increment.quantize(QUANTUM):
        raise PortalError("validation_error", _("va_sale_increment has more than 8 decimal places."), {"va_sale_increment": [_("At most 8 decimal places.")]})
    due = int(decimal_input(numbers.get("debt_due_business_days", 2), "debt_due_business_days", minimum=Decimal("0"), maximum=Decimal("30")))
    collections = int(decimal_input(numbers.get("collections_after_days", 7), "collections_after_days", minimum=Decimal("1"), maximum=Decimal("180")))
    days = numbers.get("dunning_days")
    if isinstance(days, str):
        days = [d.strip() for d in days.split(",") if d.strip()]
    try:
        days = sorted({int(str(d)) for d in days or []})
    except ValueError:
        days = []
    if not days or days[0] < 1 or days[-1] > 3650:
        raise PortalError("validation_error", _("Give the days past due at which dunning notices go out (whole numbers from 1)."),
                          {"dunning_days": [_("e.g. 1, 7, 14, 30, 60, 90")]})
    return {"target_utilisation": target, "liquidation_order": order, "securities_order": securities_order, "va_sale_increment": increment,
            "debt_due_business_days": due, "collections_after_days": collections, "dunning_days": days}


@transaction.atomic
def recovery_policy_propose(*, actor, numbers: dict, reason: str, effective_from=None) -> RecoveryPolicy:
    from lending.services import effective_from_input

    ensure_staff_permission(actor=actor, perm=Perm.POLICY_PROPOSE)
    reason = _text(reason, "reason")
    clean = _validate_numbers(numbers)
    clean["effective_from"] = effective_from_input(effective_from)
    current = selectors.recovery_policy_current()
    policy = maker_checker_create(RecoveryPolicy, actor=actor, reason=reason, numbers=clean)
    audit_log(actor=actor, action="recovery.policy.proposed", obj=policy,
              before=snapshot(current, RecoveryPolicy.NUMBERS) | {"version": current.version} if current else None,
              after=snapshot(policy, RecoveryPolicy.NUMBERS) | {"version": policy.version, "reason": reason})
    return policy


@transaction.atomic
def recovery_policy_decide(*, actor, policy_id: int, approve: bool, note: str = "") -> RecoveryPolicy:
    ensure_staff_permission(actor=actor, perm=Perm.POLICY_APPROVE)
    try:
        policy = RecoveryPolicy.objects.select_for_update(no_key=True).get(pk=policy_id)
    except RecoveryPolicy.DoesNotExist:
        raise NotFoundError("not_found", _("No such recovery policy.")) from None
    superseded = maker_checker_decide(policy, actor=actor, approve=approve, note=note,
                                      not_awaiting=_("Recovery policy v%(version)s is %(status)s, not awaiting approval."))
    audit_log(actor=actor, action=f"recovery.policy.{'approved' if approve else 'rejected'}", obj=policy,
              before={"version_in_force": superseded.version} if superseded else None,
              after={"version": policy.version, "status": policy.status, "note": note})
    return policy


def _policy_in_force() -> RecoveryPolicy:
    policy = selectors.recovery_policy_current()
    if policy is None:
        raise ConflictError("no_recovery_policy", _("No recovery policy is in force: a credit manager must approve one before a close-out can be planned."))
    return policy


# --- Liquidation plans ------------------------------------------------------------------------------------


@dataclass
class _Inputs:
    policy: RecoveryPolicy
    levels: planning.Levels
    prices: dict[str, Decimal]


def _inputs() -> _Inputs:
    from lending import selectors as lending_selectors

    policy = _policy_in_force()
    collateral = lending_selectors.policy_current()
    if collateral is None:
        raise ConflictError("no_policy", _("No collateral policy is in force."))
    levels = planning.Levels(max_share=collateral.va_max_share, watch=collateral.watch_level, margin_call=collateral.margin_call_level,
                             close_out=collateral.close_out_level)
    prices = {code: q.price_hkd for code, q in lending_selectors.prices_current().items()}
    return _Inputs(policy=policy, levels=levels, prices=prices)


def _plan_positions(rows, *, prices: dict, increment: Decimal) -> list[planning.PlanPosition]:
    out = []
    for p in rows:
        code = p.instrument.code if p.instrument_id else (p.asset or "")
        price = prices.get(code) if code else None
        if p.kind == CollateralKind.SECURITIES and not p.instrument_id:
            # A line booked before the instrument master: valued at its recorded value, sold outside the plan.
            out.append(planning.PlanPosition(position_id=p.pk, instrument_id=None, code=p.description[:12] or p.haircut_class, kind=p.kind,
                                             quantity=ZERO, price=None, haircut=p.haircut, lot=Decimal(1), sellable=False,
                                             market_value=p.market_value))
            continue
        suspended = bool(p.instrument_id and p.instrument.suspended)
        lot = Decimal(p.instrument.board_lot) if p.kind == CollateralKind.SECURITIES else increment
        out.append(planning.PlanPosition(position_id=p.pk, instrument_id=p.instrument_id, code=code, kind=p.kind, quantity=p.quantity or ZERO,
                                         price=price, haircut=p.haircut, lot=lot, sellable=price is not None and price > 0 and not suspended))
    return out


def _build_plans(calls, *, actor, inputs: _Inputs, now) -> list[LiquidationPlan]:
    """Plans for ``calls`` (with their facilities), in a fixed number of queries for the batch."""
    from lending.servicing.models import FacilityTerms

    facility_ids = [c.facility_id for c in calls]
    positions: dict[int, list] = {}
    for p in CollateralPosition.objects.filter(facility_id__in=facility_ids).select_related("instrument").order_by("id"):
        positions.setdefault(p.facility_id, []).append(p)
    fees = dict(FacilityTerms.objects.filter(facility_id__in=facility_ids).values_list("facility_id", "liquidation_fee_rate"))
    versions = {}
    for row in LiquidationPlan.objects.filter(call_id__in=[c.pk for c in calls]).values("call_id").annotate(v=Max("version")):
        versions[row["call_id"]] = row["v"]
    policy = inputs.policy
    plans, lines_of = [], []
    for call in calls:
        facility = call.facility
        rows = _plan_positions(positions.get(facility.pk, []), prices=inputs.prices, increment=policy.va_sale_increment)
        result = planning.compute(positions=rows, drawn=facility.drawn_balance, levels=inputs.levels, target=policy.target_utilisation,
                                  order=policy.liquidation_order, securities_order=policy.securities_order, fee_rate=fees.get(facility.pk) or ZERO)
        plan = LiquidationPlan(
            call=call, facility=facility, client_id=facility.client_id, version=(versions.get(call.pk) or 0) + 1, policy=policy,
            target_utilisation=policy.target_utilisation, prices={k: str(v) for k, v in inputs.prices.items() if k in {r.code for r in rows}},
            drawn_at_plan=facility.drawn_balance, lending_value_at_plan=result.lending_value_before, utilisation_at_plan=result.utilisation_before,
            expected_proceeds=result.proceeds, expected_fees=result.fees, expected_drawn_after=result.drawn_after,
            expected_lending_value_after=result.lending_value_after, expected_utilisation_after=result.utilisation_after,
            reaches_target=result.reaches_target, expected_shortfall=result.shortfall,
            proposed_by=None if actor is SYSTEM else actor, proposed_at=now,
        )
        plans.append(plan)
        lines_of.append(result.lines)
    LiquidationPlan.objects.bulk_create(plans)
    lines = []
    for plan, planned in zip(plans, lines_of, strict=True):
        for seq, line in enumerate(planned, start=1):
            p = line.position
            lines.append(LiquidationLine(plan=plan, sequence=seq, position_id=p.position_id, instrument_id=p.instrument_id, code=p.code, kind=p.kind,
                                         lot=p.lot, held_at_plan=p.quantity, planned_quantity=line.quantity, price_at_plan=p.price,
                                         haircut=p.haircut, expected_proceeds=line.gross))
    LiquidationLine.objects.bulk_create(lines)
    return plans


def plan_audit_row(plan: LiquidationPlan, action: str) -> dict:
    return {"action": action, "object_type": "recovery.liquidationplan", "object_id": plan.pk, "object_repr": plan.reference,
            "after": snapshot(plan, LiquidationPlan.FIELDS) | {"call": plan.call_id, "facility": plan.facility_id}}


def _withdraw_live_proposals(call_ids: list[int], *, note: str, now) -> list[LiquidationPlan]:
    found = LiquidationPlan.objects.filter(call_id__in=call_ids, state=PlanState.PROPOSED).values_list("pk", flat=True)
    plans = locks.rows(locks.Level.RECOVERY, LiquidationPlan.objects.all(), list(found))
    for plan in plans:
        plan.withdraw(at=now, note=note)
        _save(plan, "liquidation plan")
    return plans


def close_out_proposed(*, actor, call) -> LiquidationPlan:
    """Called by ``lending.risk.services.margin_call_propose`` (in its transaction, the call locked) when a
    close-out is proposed: the plan at current prices, for the credit manager to see before deciding."""
    inputs = _inputs()
    now = timezone.now()
    withdrawn = _withdraw_live_proposals([call.pk], note="replaced by the close-out proposal", now=now)
    call.facility = Facility.objects.get(pk=call.facility_id)
    plan = _build_plans([call], actor=actor, inputs=inputs, now=now)[0]
    audit_log_many(actor=actor, rows=[plan_audit_row(p, "recovery.plan.withdrawn") for p in withdrawn] + [plan_audit_row(plan, "recovery.plan.proposed")])
    return plan


def close_out_decided(*, actor, call, approved: bool) -> LiquidationPlan | None:
    """Called by ``margin_call_decide`` (the facility and call locked): an approved close-out approves its plan
    (the dealing desk may execute it); a rejected proposal or a waiver withdraws it."""
    from lending.risk.models import CallState

    live = list(LiquidationPlan.objects.filter(call_id=call.pk, state=PlanState.PROPOSED).values_list("pk", flat=True))
    plans = locks.rows(locks.Level.RECOVERY, LiquidationPlan.objects.select_related("proposed_by"), live)
    now = timezone.now()
    if approved and call.state == CallState.CLOSED_OUT:
        if not plans:
            raise ConflictError("no_plan", _("Margin call %(ref)s has no liquidation plan to approve; propose the close-out again.") % {"ref": call.reference})
        plan = plans[0]
        plan.approve(by=actor, at=now)
        _save(plan, "liquidation plan")
        audit_log(actor=actor, action="recovery.plan.approved", obj=plan, after=snapshot(plan, LiquidationPlan.FIELDS))
        if not plan.lines.exists():
            plan.complete(at=now)  # the market cured it since: nothing to sell
            _save(plan, "liquidation plan")
            audit_log(actor=actor, action="recovery.plan.completed", obj=plan, after=snapshot(plan, LiquidationPlan.FIELDS))
        return plan
    for plan in plans:
        plan.withdraw(at=now, note="close-out not approved")
        _save(plan, "liquidation plan")
        audit_log(actor=actor, action="recovery.plan.withdrawn", obj=plan, after=snapshot(plan, LiquidationPlan.FIELDS))
    return None


def plans_due(*, call_ids: list[int] | None = None, limit: int = 100_000) -> list[int]:
    """Escalated calls at the close-out level with no close-out proposed and no plan yet, in id order."""
    from lending.risk.models import CallState, MarginCall

    qs = MarginCall.objects.filter(state=CallState.ESCALATED, band="close_out", proposed_resolution="")
    if call_ids is not None:
        qs = qs.filter(pk__in=call_ids)
    live = LiquidationPlan.objects.filter(state__in=[PlanState.PROPOSED, PlanState.APPROVED, PlanState.EXECUTING]).values("call_id")
    return list(qs.exclude(pk__in=live).order_by("id").values_list("pk", flat=True)[:limit])


@transaction.atomic
def plans_prepare(*, call_ids: list[int] | None = None, limit: int = 100_000) -> int:
    """Beat (and after a crash): every escalated call at the close-out level without a plan gets one, computed
    in batches (a fixed number of queries per batch), so the credit manager sees what a close-out would sell.
    ``call_ids`` restricts it to one batch (the task fans a crash out over the workers)."""
    from lending.risk.models import MarginCall

    if selectors.recovery_policy_current() is None:
        return 0
    inputs = _inputs()
    now = timezone.now()
    locks.writes(locks.Level.RECOVERY)
    ids = plans_due(call_ids=call_ids, limit=limit)
    made = 0
    for start in range(0, len(ids), PREPARE_BATCH):
        calls = list(MarginCall.objects.filter(pk__in=ids[start:start + PREPARE_BATCH]).select_related("facility").order_by("id"))
        plans = _build_plans(calls, actor=SYSTEM, inputs=inputs, now=now)
        audit_log_many(actor=SYSTEM, rows=[plan_audit_row(p, "recovery.plan.prepared") for p in plans])
        made += len(plans)
    return made


# --- Executions ------------------------------------------------------------------------------------------


def _quantity(value, field: str = "quantity") -> Decimal:
    qty = decimal_input(value, field, minimum=QUANTUM, maximum=Decimal("1000000000000"))
    if qty != qty.quantize(QUANTUM):
        raise PortalError("validation_error", _("%(field)s has more than 8 decimal places.") % {"field": field}, {field: [_("At most 8 decimal places.")]})
    return qty


def _when(value) -> datetime:
    if value in (None, ""):
        return timezone.now()
    if isinstance(value, str):
        from lending.inputs import datetime_text

        parsed = datetime_text(value)
        if parsed is None:
            raise PortalError("validation_error", _("executed_at must be an ISO date-time."), {"executed_at": [_("An ISO date-time.")]})
        value = parsed
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    if value > timezone.now() + timedelta(minutes=1):
        raise PortalError("validation_error", _("An execution cannot be dated in the future."), {"executed_at": [_("In the future.")]})
    return value


def _lock_plan(actor, plan_id: int, *, facility: bool = True) -> LiquidationPlan:
    facility_id = LiquidationPlan.objects.filter(pk=plan_id).values_list("facility_id", flat=True).first()
    if facility_id is None:
        raise NotFoundError("not_found", _("No such liquidation plan."))
    if facility:
        locks.book()
        locks.facility(facility_id, Facility.objects.select_related("client"))
    plan = locks.rows(locks.Level.RECOVERY, LiquidationPlan.objects.select_related("facility", "client", "call"), [plan_id])[0]
    ensure_not_own_record(actor=actor, client_user=plan.client)
    return plan


def _fee_rate(facility_id: int) -> Decimal:
    from lending.servicing.models import FacilityTerms

    return FacilityTerms.objects.filter(facility_id=facility_id).values_list("liquidation_fee_rate", flat=True).first() or ZERO


def _revalue(facility_id: int) -> None:
    from lending.risk.revaluation import facilities_under_close_out_revalue

    facilities_under_close_out_revalue(facility_ids=[facility_id])


@transaction.atomic
def execution_record(*, actor, plan_id: int, line_id: int | None = None, instrument: str = "", status: str = ExecutionStatus.FILLED,
                     quantity=None, price=None, executed_at=None, venue_reference: str = "", note: str = "") -> Execution:
    """The dealing desk reports a fill, a failed sale or a market halt against a plan line.

    A fill: the liquidation fee and the proceeds go to the ledger, the custody ledger releases exactly what
    was sold and takes it out of the holding, the position shrinks, the engine values the facility in this
    commit, and the client is told the details. A plan whose every line is sold is completed; if no
    collateral is left and something is still owed, the shortfall becomes a debt.
    """
    from lending.collateral.models import normalise_code

    ensure_staff_permission(actor=actor, perm=Perm.FACILITY_OPERATE)
    if status not in ExecutionStatus.values:
        raise PortalError("validation_error", _("status must be filled, failed or halted."), {"status": [", ".join(ExecutionStatus.values)]})
    code = normalise_code(instrument)
    if status == ExecutionStatus.FILLED:
        qty = _quantity(quantity)
        px = decimal_input(price, "price", minimum=Decimal("0.0001"), maximum=PRICE_MAX).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
        venue_reference = _text(venue_reference, "venue_reference")[:100]
    else:
        qty = _quantity(quantity) if quantity not in (None, "") else ZERO
        px = None
        note = _text(note, "note")
    when = _when(executed_at)
    plan = _lock_plan(actor, plan_id)
    if plan.state not in (PlanState.APPROVED, PlanState.EXECUTING):
        raise ConflictError("invalid_state", _("Plan %(ref)s is %(state)s: executions are recorded only against an approved plan.") % {
            "ref": plan.reference, "state": plan.get_state_display().lower()})
    lines = list(plan.lines.select_related("instrument", "position").order_by("sequence"))
    if line_id is not None:
        line = next((x for x in lines if x.pk == int(line_id)), None)
        if line is None:
            raise PortalError("validation_error", _("That line is not part of plan %(ref)s.") % {"ref": plan.reference}, {"line": [_("Not in this plan.")]})
        if code and code != line.code:
            raise PortalError("validation_error", _("Line %(n)s sells %(code)s, not %(other)s.") % {"n": line.sequence, "code": line.code, "other": code},
                              {"instrument": [_("Not this line's instrument.")]})
    else:
        candidates = [x for x in lines if x.code == code and x.is_open]
        if not code or not candidates:
            raise PortalError("unknown_instrument", _("Plan %(ref)s has nothing left to sell in %(code)s.") % {"ref": plan.reference, "code": code or "''"},
                              {"instrument": [_("Not in this plan.")]})
        line = candidates[0]
    if not line.is_open:
        raise ConflictError("line_closed", _("Line %(n)s (%(code)s) is %(status)s.") % {"n": line.sequence, "code": line.code, "status": line.get_status_display().lower()})
    now = timezone.now()
    facility = Facility.objects.select_related("client").get(pk=plan.facility_id)
    before = snapshot(facility, ("drawn_balance", "lending_value", "utilisation", "band"))
    execution = Execution(plan=plan, line=line, instrument_id=line.instrument_id, code=line.code, status=status, quantity=qty, price=px,
                          executed_at=when, venue_reference=venue_reference, note=(note or "").strip(), recorded_by=actor, created_at=now)
    if status == ExecutionStatus.FILLED:
        _apply_fill(plan=plan, line=line, facility=facility, execution=execution, actor=actor)
    else:
        line.status = LineStatus.HALTED if status == ExecutionStatus.HALTED else LineStatus.FAILED
        line.save(update_fields=["status"])
        execution.save()
    if plan.state == PlanState.APPROVED:
        plan.start(at=now)
    completed = all(not x.is_open for x in plan.lines.all())
    if completed:
        plan.complete(at=now)
    _save(plan, "liquidation plan")
    facility.refresh_from_db()
    debt = _debt_open_if_nothing_left(plan=plan, facility=facility) if completed else None
    audit_log(actor=actor, action=f"recovery.execution.{status}", obj=plan, before=before,
              after=snapshot(execution, Execution.FIELDS) | {"execution": execution.pk, "line": line.sequence, "plan_state": plan.state,
                                                              "drawn_balance": facility.drawn_balance, "utilisation": facility.utilisation})
    if debt is not None:
        audit_log(actor=actor, action="recovery.debt.opened", obj=debt, after=snapshot(debt, Debt.FIELDS) | {"facility": facility.pk, "plan": plan.pk})
    _notify_execution(execution=execution, plan=plan, facility=facility, debt=debt)
    return execution


def _apply_fill(*, plan, line, facility, execution, actor) -> None:
    from lending.collateral import services as custody

    qty = execution.quantity
    if qty > line.remaining:
        raise PortalError("above_planned", _("Line %(n)s has %(left)s %(code)s left to sell; %(qty)s is more than planned.") % {
            "n": line.sequence, "left": _fmt(line.remaining), "code": line.code, "qty": _fmt(qty)}, {"quantity": [_("At most %(left)s.") % {"left": _fmt(line.remaining)}]})
    position = CollateralPosition.objects.select_related("instrument").get(pk=line.position_id)
    if qty > (position.quantity or ZERO):
        raise PortalError("above_held", _("Only %(held)s %(code)s is held against the facility.") % {"held": _fmt(position.quantity), "code": line.code},
                          {"quantity": [_("Above the position.")]})
    if line.kind == CollateralKind.SECURITIES and qty % line.lot and qty != position.quantity:
        raise PortalError("not_whole_lots", _("%(code)s trades in board lots of %(lot)s: sell whole lots (or the whole position, odd lot included).") % {
            "code": line.code, "lot": _fmt(line.lot)}, {"quantity": [_("A multiple of %(lot)s.") % {"lot": _fmt(line.lot)}]})
    gross = money(qty * execution.price)
    if gross <= 0:
        raise PortalError("validation_error", _("The proceeds of this fill round to nothing."), {"price": [_("Too small.")]})
    fee = planning.fee_of(gross, _fee_rate(facility.pk))
    reference = f"{plan.reference}/{line.sequence} {execution.venue_reference}"[:100]
    narrative = f"Sale of {_fmt(qty)} {line.code} at HK${execution.price.normalize():,f} ({plan.reference})"[:200]
    if fee > 0:
        execution.fee_entry = ledger_post(facility=facility, kind=TxnKind.FEE, amount=fee, actor=actor, reference=reference,
                                          narrative=f"Liquidation fee on the sale of {_fmt(qty)} {line.code}"[:200])
    applied = min(gross, facility.drawn_balance)
    if applied > 0:
        execution.sale_entry = ledger_post(facility=facility, kind=TxnKind.SALE_PROCEEDS, amount=applied, actor=actor, reference=reference, narrative=narrative)
    facility.save(update_fields=["drawn_balance"])
    execution.gross, execution.fee, execution.applied, execution.surplus = gross, fee, applied, gross - applied
    position.quantity = (position.quantity or ZERO) - qty
    price = execution.price
    position.market_value = money(position.quantity * price)
    position.save(update_fields=["quantity", "market_value"])
    if position.instrument_id:
        custody.custody_dispose(client_id=facility.client_id, instrument_id=position.instrument_id, quantity=qty, facility_id=facility.pk,
                                actor=actor, reference=reference)
    line.filled_quantity += qty
    line.proceeds += gross
    line.status = LineStatus.FILLED if line.filled_quantity == line.planned_quantity else LineStatus.PARTIAL
    line.save(update_fields=["filled_quantity", "proceeds", "status"])
    try:
        with transaction.atomic():
            execution.save()
    except IntegrityError:
        raise ConflictError("duplicate_venue_reference", _("A fill with venue reference %(ref)s is already recorded on this plan.") % {
            "ref": execution.venue_reference}, {"venue_reference": [_("Already recorded.")]}) from None
    _revalue(facility.pk)


def _fmt(value) -> str:
    return f"{Decimal(value or 0).normalize():,f}"


def _notify_execution(*, execution, plan, facility, debt) -> None:
    from portal.notifications import notify

    params = {"plan": plan.reference, "facility": facility.reference, "qty": _fmt(execution.quantity), "code": execution.code,
              "price": _fmt(execution.price) if execution.price is not None else "", "gross": f"{execution.gross:,.2f}",
              "fee": f"{execution.fee:,.2f}", "applied": f"{execution.applied:,.2f}", "drawn": f"{facility.drawn_balance:,.2f}",
              "venue": execution.venue_reference, "when": timezone.localtime(execution.executed_at).strftime("%Y-%m-%d %H:%M")}
    link = f"/recovery/facility/{facility.pk}/"
    if execution.status == ExecutionStatus.FILLED:
        notify(user=plan.client, kind="recovery.execution.filled", title=_("Collateral sold on facility %(facility)s"),
               body=_("Under the close-out of your facility we sold %(qty)s %(code)s at HK$%(price)s on %(when)s (Hong Kong time), venue reference %(venue)s: "
                      "proceeds HK$%(gross)s, liquidation fee HK$%(fee)s, HK$%(applied)s applied to your loan. You now owe HK$%(drawn)s. "
                      "The sale appears on your next statement."), params=params, link=link)
    if debt is not None:
        notify(user=plan.client, kind="recovery.debt.opened", title=_("Amount owing on facility %(facility)s after the sale"),
               body=_("All collateral of your facility has been sold and HK$%(drawn)s is still owed. Please repay it by %(due)s; "
                      "overdue interest accrues after that date. Your account officer will contact you."),
               params=params | {"due": debt.due_on.isoformat()}, link=link)


# --- Amendments (four-eyes) ------------------------------------------------------------------------------


@transaction.atomic
def plan_amend_propose(*, actor, plan_id: int, quantities: dict, reason: str) -> PlanAmendment:
    """Propose new quantities still to sell on the open lines ({line id: quantity}, 0 drops a line), with a reason."""
    ensure_staff_permission(actor=actor, perm=Perm.FACILITY_OPERATE)
    reason = _text(reason, "reason")
    plan = _lock_plan(actor, plan_id, facility=False)
    if plan.state not in (PlanState.APPROVED, PlanState.EXECUTING):
        raise ConflictError("invalid_state", _("Plan %(ref)s is %(state)s: only an approved or executing plan can be amended.") % {
            "ref": plan.reference, "state": plan.get_state_display().lower()})
    open_lines = {x.pk: x for x in plan.lines.select_related("position") if x.is_open}
    clean = []
    for key, value in (quantities or {}).items():
        try:
            line_id = int(str(key))
        except ValueError:
            line_id = None
        line = open_lines.get(line_id)
        if line is None:
            raise PortalError("validation_error", _("Line %(line)s is not an open line of plan %(ref)s.") % {"line": key, "ref": plan.reference}, {"quantities": [_("Not an open line.")]})
        qty = decimal_input(value, "quantity", minimum=ZERO, maximum=line.position.quantity or ZERO)
        if qty != qty.quantize(QUANTUM):
            raise PortalError("validation_error", _("quantity has more than 8 decimal places."), {"quantities": [_("At most 8 decimal places.")]})
        clean.append({"line": line_id, "quantity": str(qty)})
    if not clean:
        raise PortalError("validation_error", _("Give the new quantity of at least one open line."), {"quantities": [_("Required.")]})
    try:
        with transaction.atomic():
            amendment = PlanAmendment.objects.create(plan=plan, reason=reason, quantities=clean, proposed_by=actor)
    except IntegrityError:
        raise ConflictError("amendment_pending", _("An amendment of plan %(ref)s is already awaiting approval.") % {"ref": plan.reference}) from None
    audit_log(actor=actor, action="recovery.plan.amendment_proposed", obj=plan, after={"amendment": amendment.pk, "reason": reason, "quantities": clean})
    return amendment


@transaction.atomic
def plan_amend_decide(*, actor, amendment_id: int, approve: bool, note: str = "") -> PlanAmendment:
    """A credit manager other than the proposer approves (the plan is closed as amended and a new version,
    with what is left to sell, continues) or rejects an amendment."""
    ensure_staff_permission(actor=actor, perm=Perm.MARGIN_CALL_RESOLVE)
    note = _text(note, "note") if approve else (note or "").strip()
    plan_id = PlanAmendment.objects.filter(pk=amendment_id).values_list("plan_id", flat=True).first()
    if plan_id is None:
        raise NotFoundError("not_found", _("No such amendment."))
    plan = _lock_plan(actor, plan_id)
    amendment = PlanAmendment.objects.select_for_update(no_key=True).select_related("proposed_by").get(pk=amendment_id)
    ensure_four_eyes(maker=amendment.proposed_by, checker=actor)
    now = timezone.now()
    if not approve:
        _transition(amendment, lambda: amendment.reject(by=actor, at=now, note=note), _("The amendment"))
        _save(amendment, "amendment")
        audit_log(actor=actor, action="recovery.plan.amendment_rejected", obj=plan, after={"amendment": amendment.pk, "note": note})
        return amendment
    _transition(amendment, lambda: amendment.approve(by=actor, at=now, note=note), _("The amendment"))
    locks.writes(locks.Level.RECOVERY)
    if plan.state not in (PlanState.APPROVED, PlanState.EXECUTING):
        raise ConflictError("invalid_state", _("Plan %(ref)s is %(state)s; it can no longer be amended.") % {"ref": plan.reference, "state": plan.get_state_display().lower()})
    new_qty = {int(x["line"]): Decimal(x["quantity"]) for x in amendment.quantities}
    lines = list(plan.lines.order_by("sequence"))
    _transition(plan, lambda: plan.amend(at=now, note=amendment.reason), plan.reference)
    _save(plan, "liquidation plan")
    successor = LiquidationPlan.objects.create(
        call_id=plan.call_id, facility_id=plan.facility_id, client_id=plan.client_id, version=plan.version + 1, supersedes=plan,
        state=PlanState.APPROVED, policy_id=plan.policy_id, target_utilisation=plan.target_utilisation, prices=plan.prices,
        drawn_at_plan=plan.facility.drawn_balance, lending_value_at_plan=plan.facility.lending_value, utilisation_at_plan=plan.facility.utilisation,
        proposed_by=amendment.proposed_by, proposed_at=amendment.proposed_at, approved_by=actor, approved_at=now, note=amendment.reason,
    )
    carried, seq = [], 0
    for line in lines:
        if not line.is_open:
            continue
        qty = new_qty.get(line.pk, line.remaining)
        if line.pk in new_qty or line.status in (LineStatus.PENDING, LineStatus.PARTIAL, LineStatus.FAILED, LineStatus.HALTED):
            line.status = LineStatus.CANCELLED
            line.save(update_fields=["status"])
        if qty > 0:
            seq += 1
            carried.append(LiquidationLine(plan=successor, sequence=seq, position_id=line.position_id, instrument_id=line.instrument_id, code=line.code,
                                           kind=line.kind, lot=line.lot, held_at_plan=line.held_at_plan - line.filled_quantity, planned_quantity=qty,
                                           price_at_plan=line.price_at_plan, haircut=line.haircut, expected_proceeds=money(qty * line.price_at_plan)))
    LiquidationLine.objects.bulk_create(carried)
    successor.expected_proceeds = sum((x.expected_proceeds for x in carried), ZERO)
    if not carried:
        successor.complete(at=now)
    _save(successor, "liquidation plan")
    amendment.new_plan = successor
    _save(amendment, "amendment")
    debt = _debt_open_if_nothing_left(plan=successor, facility=Facility.objects.get(pk=plan.facility_id)) if not carried else None
    audit_log(actor=actor, action="recovery.plan.amended", obj=plan, after={"amendment": amendment.pk, "new_plan": successor.pk, "note": note,
                                                                           "lines": [{"code": x.code, "quantity": str(x.planned_quantity)} for x in carried]})
    if debt is not None:
        audit_log(actor=actor, action="recovery.debt.opened", obj=debt, after=snapshot(debt, Debt.FIELDS) | {"facility": debt.facility_id, "plan": successor.pk})
    return amendment


# --- Debt after sale -------------------------------------------------------------------------------------


def _business_day_after(day: date, n: int) -> date:
    from lending.risk.revaluation import hk_business_day_after

    return hk_business_day_after(day, n) if n else day


def _debt_open_if_nothing_left(*, plan, facility) -> Debt | None:
    """When a completed plan leaves no collateral and something still owed, that shortfall becomes a debt
    (the caller writes its audit row)."""
    left = CollateralPosition.objects.filter(facility_id=facility.pk).filter(quantity__gt=0).exists() or \
        CollateralPosition.objects.filter(facility_id=facility.pk, instrument__isnull=True, kind=CollateralKind.SECURITIES, market_value__gt=0).exists()
    if left or facility.drawn_balance <= 0 or Debt.objects.filter(facility_id=facility.pk).exists():
        return None
    policy = _policy_in_force()
    today = timezone.localdate()
    locks.writes(locks.Level.RECOVERY)
    debt = Debt.objects.create(facility=facility, client_id=facility.client_id, plan=plan, principal_at_open=facility.drawn_balance,
                               due_on=_business_day_after(today, policy.debt_due_business_days))
    return debt


def _lock_debt(actor, debt_id: int, *, facility: bool = True) -> Debt:
    facility_id = Debt.objects.filter(pk=debt_id).values_list("facility_id", flat=True).first()
    if facility_id is None:
        raise NotFoundError("not_found", _("No such debt."))
    if facility:
        locks.book()
        locks.facility(facility_id, Facility.objects.all())
    debt = locks.rows(locks.Level.RECOVERY, Debt.objects.select_related("facility", "client", "write_off_proposed_by"), [debt_id])[0]
    ensure_not_own_record(actor=actor, client_user=debt.client)
    return debt


@transaction.atomic
def debt_payment_record(*, actor, debt_id: int, amount, reference: str) -> Debt:
    """A payment on a debt (a repayment on the ledger); the debt is repaid when nothing is owed any more."""
    from lending import services as lending_services

    ensure_staff_permission(actor=actor, perm=Perm.FACILITY_OPERATE)
    amount = money_input(amount, "amount")
    reference = _text(reference, "reference")
    # The repayment revalues through the engine, which writes facility and margin-call rows set-based:
    # those levels are taken before the debt's row (lending.locks order).
    locks.book()
    locks.writes(locks.Level.FACILITY)
    locks.writes(locks.Level.MARGIN_CALL)
    debt = _lock_debt(actor, debt_id)
    if not debt.is_live:
        raise ConflictError("invalid_state", _("Debt %(ref)s is %(state)s; payments are recorded only on an open debt.") % {"ref": debt.reference, "state": debt.get_state_display().lower()})
    lending_services.facility_repay(actor=actor, facility_id=debt.facility_id, amount=amount, reference=reference)
    facility = Facility.objects.get(pk=debt.facility_id)
    if facility.drawn_balance == 0:
        before = snapshot(debt, Debt.FIELDS)
        debt.repaid(at=timezone.now())
        _save(debt, "debt")
        audit_log(actor=actor, action="recovery.debt.repaid", obj=debt, before=before, after=snapshot(debt, Debt.FIELDS))
    _revalue(debt.facility_id)
    return debt


@transaction.atomic
def debt_to_collections(*, actor, debt_id: int, note: str = "") -> Debt:
    ensure_staff_permission(actor=actor, perm=Perm.MARGIN_CALL_MANAGE)
    debt = _lock_debt(actor, debt_id, facility=False)
    before = snapshot(debt, Debt.FIELDS)
    _transition(debt, lambda: debt.to_collections(at=timezone.now()), debt.reference)
    _save(debt, "debt")
    audit_log(actor=actor, action="recovery.debt.in_collections", obj=debt, before=before, after=snapshot(debt, Debt.FIELDS) | {"note": (note or "").strip()})
    return debt


@transaction.atomic
def write_off_propose(*, actor, debt_id: int, reason: str) -> Debt:
    """A credit manager proposes writing the debt off, with reasons; a second person must approve."""
    ensure_staff_permission(actor=actor, perm=Perm.MARGIN_CALL_RESOLVE, message=_("Only a credit manager can propose a write-off."))
    reason = _text(reason, "reason")
    debt = _lock_debt(actor, debt_id, facility=False)
    if not debt.is_live:
        raise ConflictError("invalid_state", _("Debt %(ref)s is %(state)s; only an open debt can be written off.") % {"ref": debt.reference, "state": debt.get_state_display().lower()})
    if debt.write_off_proposed_by_id:
        raise ConflictError("already_proposed", _("A write-off of %(ref)s is already awaiting a second approver.") % {"ref": debt.reference})
    before = snapshot(debt, Debt.FIELDS)
    debt.write_off_reason, debt.write_off_proposed_by, debt.write_off_proposed_at = reason, actor, timezone.now()
    _save(debt, "debt")
    audit_log(actor=actor, action="recovery.debt.write_off_proposed", obj=debt, before=before, after=snapshot(debt, Debt.FIELDS))
    return debt


@transaction.atomic
def write_off_decide(*, actor, debt_id: int, approve: bool, note: str = "") -> Debt:
    """The second approver (a credit manager, not the proposer): the whole balance is written off on the ledger,
    or the proposal is sent back."""
    ensure_staff_permission(actor=actor, perm=Perm.MARGIN_CALL_RESOLVE, message=_("Only a credit manager can approve a write-off."))
    note = _text(note, "note") if approve else (note or "").strip()
    debt = _lock_debt(actor, debt_id)
    # The proposal lives on an open debt; once the debt is written off, repaid or recovered the decision is
    # taken (or moot), and sending it back would erase who proposed the write-off and why.
    if not debt.is_live:
        raise ConflictError("invalid_state", _("Debt %(ref)s is %(state)s; no write-off of it awaits a decision.") % {
            "ref": debt.reference, "state": debt.get_state_display().lower()})
    if not debt.write_off_proposed_by_id:
        raise ConflictError("invalid_state", _("No write-off of %(ref)s is awaiting approval.") % {"ref": debt.reference})
    ensure_four_eyes(maker=debt.write_off_proposed_by, checker=actor)
    before = snapshot(debt, Debt.FIELDS)
    if not approve:
        debt.write_off_reason, debt.write_off_proposed_by, debt.write_off_proposed_at = "", None, None
        debt.write_off_note = note
        _save(debt, "debt")
        audit_log(actor=actor, action="recovery.debt.write_off_rejected", obj=debt, before=before, after=snapshot(debt, Debt.FIELDS))
        return debt
    facility = Facility.objects.get(pk=debt.facility_id)
    amount = facility.drawn_balance
    now = timezone.now()
    _transition(debt, lambda: debt.write_off(by=actor, at=now, amount=amount, note=note), debt.reference)
    if amount > 0:
        debt.write_off_entry = ledger_post(facility=facility, kind=TxnKind.WRITE_OFF, amount=amount, actor=debt.write_off_proposed_by,
                                           approved_by=actor, reference=debt.reference, narrative=f"Written off: {debt.write_off_reason}"[:200])
        facility.save(update_fields=["drawn_balance"])
    _save(debt, "debt")
    _revalue(facility.pk)
    audit_log(actor=actor, action="recovery.debt.written_off", obj=debt, before=before, after=snapshot(debt, Debt.FIELDS) | {"amount": amount})
    return debt


@transaction.atomic
def recovery_record(*, actor, debt_id: int, amount, reference: str, note: str = "", final: bool = False) -> Recovery:
    """Cash recovered on a written-off debt: a recovery entry on the ledger (it does not revive the balance).
    The debt is recovered once the amount written off is back, or when the officer says this one is the last."""
    ensure_staff_permission(actor=actor, perm=Perm.FACILITY_OPERATE)
    amount = money_input(amount, "amount")
    reference = _text(reference, "reference")
    debt = _lock_debt(actor, debt_id)
    if debt.state != DebtState.WRITTEN_OFF:
        raise ConflictError("invalid_state", _("Debt %(ref)s is %(state)s; recoveries are recorded after a write-off.") % {"ref": debt.reference, "state": debt.get_state_display().lower()})
    left = debt.written_off_amount - debt.recovered_total
    if amount > left:
        raise PortalError("above_written_off", _("HK$%(amount)s is more than the HK$%(left)s written off and not yet recovered.") % {
            "amount": f"{amount:,}", "left": f"{left:,}"}, {"amount": [_("At most HK$%(left)s.") % {"left": f"{left:,}"}]})
    facility = Facility.objects.get(pk=debt.facility_id)
    entry = ledger_post(facility=facility, kind=TxnKind.RECOVERY, amount=amount, actor=actor, reference=reference,
                        narrative=f"Recovery on written-off debt {debt.reference}"[:200])
    recovery = Recovery.objects.create(debt=debt, amount=amount, reference=reference[:100], note=(note or "").strip(), final=bool(final), entry=entry, recorded_by=actor)
    before = snapshot(debt, Debt.FIELDS)
    debt.recovered_total += amount
    if final or debt.recovered_total >= debt.written_off_amount:
        debt.recovered(at=timezone.now())
    _save(debt, "debt")
    audit_log(actor=actor, action="recovery.debt.recovery_recorded", obj=debt, before=before,
              after=snapshot(debt, Debt.FIELDS) | {"recovery": recovery.pk, "amount": amount, "reference": reference, "final": bool(final)})
    return recovery


@transaction.atomic
def debts_review(*, today: date | None = None) -> dict:
    """Beat (hourly, idempotent): debts whose balance is paid become repaid; debts past the policy's days move
    to collections; each dunning step of the schedule sends one notice (claimed by a conditional UPDATE)."""
    from portal.notifications import notify

    policy = selectors.recovery_policy_current()
    today = today or timezone.localdate()
    done = {"repaid": 0, "collections": 0, "notices": 0}
    if policy is None:
        return done
    locks.writes(locks.Level.RECOVERY)
    live = list(Debt.objects.filter(state__in=LIVE_DEBT_STATES).select_related("facility", "client").order_by("id"))
    audit_rows = []
    now = timezone.now()
    for debt in live:
        dpd = selectors.days_past_due(debt.due_on, today)
        if debt.facility.drawn_balance == 0:
            if Debt.objects.filter(pk=debt.pk, state__in=LIVE_DEBT_STATES).update(state=DebtState.REPAID, repaid_at=now, updated_at=now):
                done["repaid"] += 1
                audit_rows.append({"action": "recovery.debt.repaid", "object_type": "recovery.debt", "object_id": debt.pk, "object_repr": debt.reference,
                                   "before": {"state": debt.state}, "after": {"state": DebtState.REPAID}})
            continue
        moved = debt.state == DebtState.OPEN and dpd >= policy.collections_after_days and Debt.objects.filter(
            pk=debt.pk, state=DebtState.OPEN).update(state=DebtState.IN_COLLECTIONS, collections_at=now, updated_at=now)
        if moved:
            done["collections"] += 1
            audit_rows.append({"action": "recovery.debt.in_collections", "object_type": "recovery.debt", "object_id": debt.pk,
                               "object_repr": debt.reference, "before": {"state": DebtState.OPEN},
                               "after": {"state": DebtState.IN_COLLECTIONS, "days_past_due": dpd}})
        due_steps = [d for d in policy.dunning_days if d <= dpd]
        step = max(due_steps) if due_steps else 0
        if step > debt.dunning_step and Debt.objects.filter(pk=debt.pk, dunning_step=debt.dunning_step).update(dunning_step=step):
            DunningNotice.objects.create(debt=debt, step=step, days_past_due=dpd, amount=debt.facility.drawn_balance, sent_at=now)
            notify(user=debt.client, kind="recovery.debt.dunning", title=_("Reminder: HK$%(amount)s overdue on facility %(facility)s"),
                   body=_("HK$%(amount)s has been owed since %(due)s (%(days)s days past due) after the close-out of your facility, and overdue interest is accruing. "
                          "Please repay it or contact your account officer."),
                   params={"amount": f"{debt.facility.drawn_balance:,.2f}", "facility": debt.facility.reference, "due": debt.due_on.isoformat(), "days": dpd},
                   link=f"/recovery/facility/{debt.facility_id}/")
            done["notices"] += 1
            audit_rows.append({"action": "recovery.debt.dunning_sent", "object_type": "recovery.debt", "object_id": debt.pk, "object_repr": debt.reference,
                               "after": {"step": step, "days_past_due": dpd, "amount": str(debt.facility.drawn_balance)}})
    if audit_rows:
        audit_log_many(actor=SYSTEM, rows=audit_rows)
    return done


__all__ = [
    "close_out_decided", "close_out_proposed", "debt_payment_record", "debt_to_collections", "debts_review", "execution_record",
    "plan_amend_decide", "plan_amend_propose", "plans_prepare", "recovery_policy_decide", "recovery_policy_propose", "recovery_record",
    "write_off_decide", "write_off_propose",
]
