"""The liquidation plan's arithmetic: which collateral to sell, in the policy's order and whole lots, to bring
a facility's utilisation back to the target. Pure (no database); every valuation goes through
``lending.valuation.value_facility``, so a plan's "utilisation after" is the figure the engine will store.

Selling ``q`` of a position at price ``p`` lowers the drawn balance by the proceeds less the liquidation fee
and lending value by ``q·p·(1 − haircut)`` (less while the VA cap binds). For each position in order the
smallest whole number of lots that reaches the target is found: a closed-form first guess, checked by
valuing, then a bisection when the VA cap makes the guess wrong. A position that cannot reach the target
is sold whole (odd lot included) and the next one is looked at.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from lending import valuation
from lending.models import CollateralKind

ZERO = Decimal("0")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class PlanPosition:
    position_id: int
    instrument_id: int | None
    code: str
    kind: str  # CollateralKind
    quantity: Decimal
    price: Decimal | None
    haircut: Decimal
    lot: Decimal  # board lot (securities) or the policy's VA increment
    sellable: bool = True  # False: no price, no instrument, or trading suspended
    market_value: Decimal | None = None  # a line booked before the instrument master (valued, never planned)


@dataclass(frozen=True)
class Levels:
    max_share: Decimal
    watch: Decimal
    margin_call: Decimal
    close_out: Decimal


@dataclass
class PlannedLine:
    position: PlanPosition
    quantity: Decimal

    @property
    def gross(self) -> Decimal:
        return valuation.money(self.quantity * self.position.price)


@dataclass
class Plan:
    lines: list[PlannedLine] = field(default_factory=list)
    drawn_before: Decimal = ZERO
    lending_value_before: Decimal = ZERO
    utilisation_before: Decimal = ZERO
    proceeds: Decimal = ZERO
    fees: Decimal = ZERO
    drawn_after: Decimal = ZERO
    lending_value_after: Decimal = ZERO
    utilisation_after: Decimal = ZERO
    reaches_target: bool = True

    @property
    def shortfall(self) -> Decimal:
        """What is left owing when the plan sells everything and still does not reach the target."""
        return ZERO if self.reaches_target or self.lending_value_after > 0 else self.drawn_after


def fee_of(gross: Decimal, fee_rate: Decimal) -> Decimal:
    return (gross * fee_rate).quantize(CENT, rounding=ROUND_HALF_UP)


def drawn_after_sale(drawn: Decimal, gross: Decimal, fee_rate: Decimal) -> Decimal:
    """The fee is charged, then the proceeds repay what is owed; any surplus goes back to the client."""
    return max(ZERO, drawn + fee_of(gross, fee_rate) - gross)


def order_positions(positions: list[PlanPosition], *, order: list[str], securities_order: str) -> list[PlanPosition]:
    """The sellable positions in the policy's order: each step BTC, ETH or securities (most liquid first:
    lowest haircut, then largest market value; or simply largest market value)."""
    out = []
    for step in order:
        if step == "securities":
            secs = [p for p in positions if p.kind == CollateralKind.SECURITIES and p.sellable]
            if securities_order == "market_value":
                secs.sort(key=lambda p: (-(p.quantity * p.price), p.code, p.position_id))
            else:
                secs.sort(key=lambda p: (p.haircut, -(p.quantity * p.price), p.code, p.position_id))
            out.extend(secs)
        else:
            out.extend(sorted((p for p in positions if p.kind == CollateralKind.VIRTUAL_ASSET and p.code == step and p.sellable),
                              key=lambda p: p.position_id))
    return out


def _value(positions: list[PlanPosition], sold: dict[int, Decimal], drawn: Decimal, levels: Levels) -> valuation.FacilityValue:
    inputs = []
    for p in positions:
        qty = p.quantity - sold.get(p.position_id, ZERO)
        if p.market_value is not None and p.price is None:
            inputs.append(valuation.PositionValueInput(kind=p.kind, haircut=p.haircut, market_value=p.market_value))
        else:
            inputs.append(valuation.PositionValueInput(kind=p.kind, haircut=p.haircut, quantity=qty, price=p.price or ZERO))
    return valuation.value_facility(positions=inputs, drawn=drawn, max_share=levels.max_share, watch=levels.watch,
                                    margin_call=levels.margin_call, close_out=levels.close_out)


def compute(*, positions: list[PlanPosition], drawn: Decimal, levels: Levels, target: Decimal, order: list[str],
            securities_order: str, fee_rate: Decimal = ZERO) -> Plan:
    """The plan for one facility (see the module docstring)."""
    before = _value(positions, {}, drawn, levels)
    plan = Plan(drawn_before=drawn, lending_value_before=before.lending_value, utilisation_before=before.utilisation)
    sold: dict[int, Decimal] = {}
    current_drawn, current = drawn, before
    for p in order_positions(positions, order=order, securities_order=securities_order):
        if current.utilisation <= target or current_drawn <= 0:
            break
        if p.quantity <= 0:
            continue

        def attempt(qty: Decimal, p=p, base_drawn=current_drawn):
            d = drawn_after_sale(base_drawn, valuation.money(qty * p.price), fee_rate)
            return d, _value(positions, sold | {p.position_id: qty}, d, levels)

        lots = (p.quantity / p.lot).to_integral_value(rounding=ROUND_FLOOR)
        whole_d, whole_v = attempt(p.quantity)
        if whole_v.utilisation > target or lots < 1:
            qty, current_drawn, current = p.quantity, whole_d, whole_v  # all of it, odd lot included
        else:
            n = _lots_needed(p, lots=int(lots), target=target, current=current, drawn=current_drawn, fee_rate=fee_rate, attempt=attempt)
            if n is None:
                qty, current_drawn, current = p.quantity, whole_d, whole_v
            else:
                qty = p.lot * n
                current_drawn, current = attempt(qty)
        sold[p.position_id] = qty
        gross = valuation.money(qty * p.price)
        plan.lines.append(PlannedLine(position=p, quantity=qty))
        plan.proceeds += gross
        plan.fees += fee_of(gross, fee_rate)
    plan.drawn_after, plan.lending_value_after, plan.utilisation_after = current_drawn, current.lending_value, current.utilisation
    plan.reaches_target = current.utilisation <= target or current_drawn <= 0
    return plan


def _lots_needed(p: PlanPosition, *, lots: int, target: Decimal, current, drawn: Decimal, fee_rate: Decimal, attempt) -> int | None:
    """The smallest number of whole lots (1 … ``lots``) that brings utilisation to the target, or None."""
    def ok(n: int) -> bool:
        return attempt(p.lot * n)[1].utilisation <= target

    per_lot = p.lot * p.price * ((1 - fee_rate) - target * (1 - p.haircut))
    guess = lots
    if per_lot > 0:
        excess = drawn - target * current.lending_value
        guess = int(max(Decimal(1), min(Decimal(lots), (excess / per_lot).to_integral_value(rounding=ROUND_CEILING))))
    if ok(guess):
        if guess == 1 or not ok(guess - 1):
            return guess
        lo, hi = 1, guess - 1  # the cap made the guess generous
    else:
        if not ok(lots):
            return None
        lo, hi = guess + 1, lots
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def with_quantity(p: PlanPosition, quantity: Decimal) -> PlanPosition:
    return replace(p, quantity=quantity)
