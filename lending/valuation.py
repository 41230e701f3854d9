"""Collateral valuation: the one Python implementation of lending value, the VA cap, utilisation and band.

    market value    = Σ quantity × price                (a line booked before the instrument master: its recorded value)
    lending value   = Σ market value × (1 − haircut), the VA part capped so that it provides at most
                      ``va_max_share`` of the total (securities must be the main support)
    utilisation     = drawn ÷ lending value, rounded to 4 places; with no lending value at all it is
                      ``NO_LENDING_VALUE_UTILISATION`` when something is drawn (so it bands as close-out) and 0 when not
    band            = close-out at ≥ close-out level; margin call above the margin-call level; watch at ≥ watch level

``lending.risk.book`` is this module's set-based SQL mirror for the whole book; ``tests/collateral/test_parity.py``
values a grid of facilities both ways and requires the same figures to the cent. Pure: no database access.
Arithmetic runs at 60 significant digits so no intermediate is rounded (as PostgreSQL's NUMERIC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext

from .models import Asset, CollateralKind

ZERO = Decimal("0")
ONE = Decimal("1")
CENT = Decimal("0.01")
RATIO_PLACES = Decimal("0.0001")
PRECISION = 60
# Utilisation of a facility with something drawn and no lending value at all.
NO_LENDING_VALUE_UTILISATION = Decimal("99")

HEALTHY, WATCH, MARGIN_CALL, CLOSE_OUT = "healthy", "watch", "margin_call", "close_out"


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def holding_lending_value(*, market_value: Decimal, haircut: Decimal) -> Decimal:
    """One holding's own lending value, to the cent: its market value less its haircut, before the facility's VA cap
    (what a facility page and the holdings to pledge show beside each line)."""
    with localcontext(prec=PRECISION):
        return money(market_value * (1 - haircut))


def va_counted(securities_lending_value: Decimal, va_lending_value: Decimal, max_share: Decimal) -> Decimal:
    """The VA lending value that may count: VA / (securities + VA) ≤ max_share, i.e. VA ≤ securities × s / (1 − s).

    The comparison is made without dividing (exact); only a binding cap divides.
    """
    with localcontext(prec=PRECISION):
        if max_share >= 1:
            return va_lending_value
        if max_share <= 0:
            return ZERO
        if va_lending_value * (1 - max_share) <= securities_lending_value * max_share:
            return va_lending_value
        return securities_lending_value * max_share / (1 - max_share)


def va_cap(securities_lending_value: Decimal, va_lending_value: Decimal, max_share: Decimal) -> Decimal:
    """Kept for callers of the old name: the VA lending value that may count."""
    return va_counted(securities_lending_value, va_lending_value, max_share)


def lending_value(securities_lending_value: Decimal, va_lending_value: Decimal, max_share: Decimal) -> Decimal:
    with localcontext(prec=PRECISION):
        return money(securities_lending_value + va_counted(securities_lending_value, va_lending_value, max_share))


def utilisation(*, drawn: Decimal, lending_value: Decimal) -> Decimal:
    if lending_value > 0:
        with localcontext(prec=PRECISION):
            return (drawn / lending_value).quantize(RATIO_PLACES, rounding=ROUND_HALF_UP)
    return NO_LENDING_VALUE_UTILISATION if drawn > 0 else ZERO


def band(*, utilisation: Decimal, watch: Decimal, margin_call: Decimal, close_out: Decimal) -> str:
    if utilisation >= close_out:
        return CLOSE_OUT
    if utilisation > margin_call:
        return MARGIN_CALL
    if utilisation >= watch:
        return WATCH
    return HEALTHY


def band_for(*, utilisation: Decimal, policy) -> str:
    return band(utilisation=utilisation, watch=policy.watch_level, margin_call=policy.margin_call_level, close_out=policy.close_out_level)


def warning_level(*, utilisation: Decimal, levels) -> Decimal:
    """The highest early-warning level ``utilisation`` is at or above (0 below them all)."""
    reached = [Decimal(str(v)) for v in levels if utilisation >= Decimal(str(v))]
    return max(reached) if reached else ZERO


def price_falls_to_level(*, securities_lv: Decimal, btc_weight: Decimal, eth_weight: Decimal, btc: Decimal, eth: Decimal,
                         drawn: Decimal, level: Decimal) -> dict:
    """How far BTC, ETH (or both together) can fall before utilisation passes ``level`` (the margin-call level).

    LV = a + min(b·P_btc + c·P_eth, cap). The call comes when LV < drawn / level; solve for each price (the
    cap only binds above the VA part the level needs, so the uncapped sum decides). Returns fractions
    (0.25 = a 25% fall) to 4 places; None when the asset is not held; 1 when even a fall to zero keeps the
    facility out of margin call.
    """
    a, b, c = Decimal(securities_lv), Decimal(btc_weight), Decimal(eth_weight)
    if drawn <= 0:
        return {"BTC": ONE if b else None, "ETH": ONE if c else None, "both": ONE if (b or c) else None}
    with localcontext(prec=PRECISION):
        va_needed = drawn / level - a  # what the VA part must still provide at the level

        def fall(current_part, other_part):
            if not current_part:
                return None
            if va_needed <= other_part:
                return ONE  # not even a fall to zero brings the call
            return max(ZERO, min(ONE, 1 - (va_needed - other_part) / current_part))

        btc_part, eth_part = b * btc, c * eth
        result = {"BTC": fall(btc_part, eth_part), "ETH": fall(eth_part, btc_part)}
        total = btc_part + eth_part
        result["both"] = None if not total else (ONE if va_needed <= 0 else max(ZERO, min(ONE, 1 - va_needed / total)))
    return {k: (v.quantize(RATIO_PLACES) if v is not None else None) for k, v in result.items()}


def available(*, limit: Decimal, lending_value: Decimal, drawn: Decimal) -> Decimal:
    """What may still be drawn: the smaller of limit and lending value, less what is drawn."""
    return max(ZERO, min(limit, lending_value) - drawn)


def shortfall(*, drawn: Decimal, lending_value: Decimal, margin_call: Decimal) -> Decimal:
    """What must be repaid to bring utilisation back to the margin-call level: drawn − lending value × level, at least 0."""
    with localcontext(prec=PRECISION):
        return money(max(ZERO, drawn - lending_value * margin_call))


@dataclass(frozen=True)
class Cure:
    """What cures a margin call: repay ``repay``, or add any one of the collateral amounts instead.

    A VA amount is None when that asset alone cannot cure the call: the VA cap (securities must be the
    main support) stops VA lending value counting beyond ``securities × share / (1 − share)``.
    """

    repay: Decimal
    lending_value_needed: Decimal  # lending value to add with no change to the VA cap
    securities_lending_value: Decimal  # securities lending value to add (it also raises the VA cap)
    btc_quantity: Decimal | None
    eth_quantity: Decimal | None

    @property
    def needed(self) -> bool:
        return self.repay > 0


QUANTITY_PLACES = Decimal("0.00000001")


def cure(*, drawn: Decimal, securities_lending_value: Decimal, va_lending_value_uncapped: Decimal, max_share: Decimal,
         margin_call: Decimal, prices: dict[str, Decimal], haircuts: dict[str, Decimal]) -> Cure:
    """The ways back to the margin-call level at ``prices``: repay, or add securities, BTC or ETH.

    The target is the lending value at which utilisation equals the level (drawn ÷ level); amounts to add
    are rounded up (to the cent, to the satoshi / 10⁻⁸ ETH) so that adding them is always enough.
    """
    from decimal import ROUND_CEILING

    a, v = securities_lending_value, va_lending_value_uncapped
    with localcontext(prec=PRECISION):
        lv = money(a + va_counted(a, v, max_share))
        repay = shortfall(drawn=drawn, lending_value=lv, margin_call=margin_call)
        if repay <= 0 or margin_call <= 0:
            return Cure(repay=ZERO, lending_value_needed=ZERO, securities_lending_value=ZERO, btc_quantity=ZERO, eth_quantity=ZERO)
        target = drawn / margin_call
        up = lambda x: max(ZERO, x).quantize(CENT, rounding=ROUND_CEILING)  # noqa: E731
        if max_share >= 1:
            k = None  # no cap
            securities = target - a - v
        else:
            k = max(ZERO, max_share) / (1 - max(ZERO, max_share))
            # At the target the cap binds when the VA lending value reaches target × k / (1 + k).
            securities = target / (1 + k) - a if v * (1 + k) >= target * k else target - a - v
        va_target = target - a  # what the VA part must provide after adding only VA

        def quantity(asset: str) -> Decimal | None:
            price, haircut = prices.get(asset), haircuts.get(asset)
            if not price or haircut is None or haircut >= 1:
                return None
            if k is not None and va_target > a * k:
                return None
            return (max(ZERO, va_target - v) / (price * (1 - haircut))).quantize(QUANTITY_PLACES, rounding=ROUND_CEILING)

        return Cure(repay=repay, lending_value_needed=up(target - lv), securities_lending_value=up(securities),
                    btc_quantity=quantity("BTC"), eth_quantity=quantity("ETH"))


# --- Facilities (the engine's unit) -------------------------------------------------------------------


@dataclass(frozen=True)
class PositionValueInput:
    """One position as the engine sees it: securities by quantity × price, or a recorded market value."""

    kind: str  # CollateralKind
    haircut: Decimal
    quantity: Decimal | None = None
    price: Decimal | None = None
    market_value: Decimal | None = None  # a line booked before the instrument master (securities only)


@dataclass(frozen=True)
class FacilityValue:
    securities_market_value: Decimal
    securities_lending_value: Decimal
    va_market_value: Decimal
    va_lending_value_uncapped: Decimal
    va_lending_value: Decimal
    market_value: Decimal
    lending_value: Decimal
    utilisation: Decimal
    band: str

    @property
    def va_capped(self) -> bool:
        return self.va_lending_value < self.va_lending_value_uncapped


def value_facility(*, positions, drawn: Decimal, max_share: Decimal, watch: Decimal, margin_call: Decimal, close_out: Decimal,
                   securities_factor: Decimal = ONE) -> FacilityValue:
    """Value one facility's positions (exact sums; money rounded at the end, as the SQL mirror does)."""
    with localcontext(prec=PRECISION):
        sec_mv = sec_lv = va_mv = va_lv = ZERO
        for p in positions:
            if p.kind == CollateralKind.SECURITIES:
                mv = (p.quantity * p.price) if p.price is not None and p.quantity is not None else (p.market_value or ZERO)
                mv *= securities_factor
                sec_mv += mv
                sec_lv += mv * (1 - p.haircut)
            else:
                mv = (p.quantity or ZERO) * (p.price or ZERO)
                va_mv += mv
                va_lv += mv * (1 - p.haircut)
        counted = va_counted(sec_lv, va_lv, max_share)
        lv = money(sec_lv + counted)
        util = utilisation(drawn=drawn, lending_value=lv)
        return FacilityValue(
            securities_market_value=money(sec_mv), securities_lending_value=money(sec_lv), va_market_value=money(va_mv),
            va_lending_value_uncapped=money(va_lv), va_lending_value=money(counted), market_value=money(sec_mv + va_mv),
            lending_value=lv, utilisation=util, band=band(utilisation=util, watch=watch, margin_call=margin_call, close_out=close_out),
        )


# --- Collateral lines (the application form and the credit review) ------------------------------------


@dataclass(frozen=True)
class LineInput:
    kind: str
    asset: str = ""
    haircut_class: str = ""
    market_value: Decimal | None = None
    quantity: Decimal | None = None
    description: str = ""
    instrument_code: str = ""


@dataclass
class LineValue:
    kind: str
    label: str
    market_value: Decimal
    haircut: Decimal
    lending_value: Decimal
    price: Decimal | None = None
    instrument: str = ""
    quantity: Decimal | None = None


@dataclass
class Valuation:
    lines: list[LineValue] = field(default_factory=list)
    securities_market_value: Decimal = ZERO
    securities_lending_value: Decimal = ZERO
    va_market_value: Decimal = ZERO
    va_lending_value_uncapped: Decimal = ZERO
    va_lending_value: Decimal = ZERO
    problems: list[str] = field(default_factory=list)

    @property
    def market_value(self) -> Decimal:
        return self.securities_market_value + self.va_market_value

    @property
    def lending_value(self) -> Decimal:
        return money(self.securities_lending_value + self.va_lending_value)

    @property
    def va_capped(self) -> bool:
        return self.va_lending_value < self.va_lending_value_uncapped

    @property
    def va_share(self) -> Decimal:
        """Share of lending value provided by virtual assets (after the cap)."""
        if not self.lending_value:
            return ZERO
        with localcontext(prec=PRECISION):
            return (self.va_lending_value / self.lending_value).quantize(RATIO_PLACES)

    def as_dict(self) -> dict:
        return {
            "market_value": str(money(self.market_value)),
            "securities_market_value": str(money(self.securities_market_value)),
            "securities_lending_value": str(money(self.securities_lending_value)),
            "va_market_value": str(money(self.va_market_value)),
            "va_lending_value_uncapped": str(money(self.va_lending_value_uncapped)),
            "va_lending_value": str(money(self.va_lending_value)),
            "va_capped": self.va_capped,
            "va_share": str(self.va_share),
            "lending_value": str(self.lending_value),
            "problems": self.problems,
            "lines": [
                {
                    "label": line.label,
                    "instrument": line.instrument,
                    "quantity": str(line.quantity) if line.quantity is not None else None,
                    "market_value": str(money(line.market_value)),
                    "haircut": str(line.haircut),
                    "lending_value": str(money(line.lending_value)),
                    "price": str(line.price) if line.price is not None else None,
                }
                for line in self.lines
            ],
        }


def _line_code(line) -> str:
    code = getattr(line, "instrument_code", "") or ""
    if not code and getattr(line, "instrument_id", None):
        code = line.instrument.code
    return code


def value_collateral(*, lines, policy, prices: dict[str, Decimal], haircuts: dict[str, Decimal] | None = None) -> Valuation:
    """Value ``lines`` (LineInput or CollateralLine) at ``prices`` ({instrument code: HKD}) under ``policy``.

    ``haircuts`` ({instrument code: haircut}, from the marginable list in force) values instrument lines;
    a line without an instrument is a securities line by haircut class with its recorded market value.
    """
    haircuts = haircuts or {}
    result = Valuation()
    with localcontext(prec=PRECISION):
        for line in lines:
            code = _line_code(line) or (line.asset if line.kind == CollateralKind.VIRTUAL_ASSET else "")
            if code:
                price = prices.get(code)
                if price is None:
                    result.problems.append(f"No price for {code}.")
                    continue
                haircut = haircuts.get(code)
                if haircut is None:
                    haircut = policy.va_haircut(code) if line.kind == CollateralKind.VIRTUAL_ASSET else ONE
                qty = line.quantity or ZERO
                mv = qty * price
                lv = mv * (1 - haircut)
                label = code if line.kind == CollateralKind.SECURITIES else (f"{qty} {Asset(code).label}" if code in Asset.values else code)
                value = LineValue(line.kind, getattr(line, "description", "") or label, mv, haircut, lv, price, code, qty)
            else:
                haircut = policy.securities_haircut(line.haircut_class)
                if haircut is None:
                    result.problems.append(f"Unknown securities haircut class {line.haircut_class!r}.")
                    continue
                mv = line.market_value or ZERO
                lv = mv * (1 - haircut)
                value = LineValue(line.kind, line.description or f"Securities class {line.haircut_class}", mv, haircut, lv)
            if line.kind == CollateralKind.SECURITIES:
                result.securities_market_value += value.market_value
                result.securities_lending_value += value.lending_value
            else:
                result.va_market_value += value.market_value
                result.va_lending_value_uncapped += value.lending_value
            result.lines.append(value)
        result.va_lending_value = va_counted(result.securities_lending_value, result.va_lending_value_uncapped, policy.va_max_share)
    return result


def policy_numbers(policy, *, haircuts: dict[str, Decimal] | None = None) -> dict:
    """The numbers the application page embeds to compute lending value live."""
    return {
        "version": policy.version,
        "btc_haircut": str(policy.btc_haircut),
        "eth_haircut": str(policy.eth_haircut),
        "securities_haircuts": {k: str(v) for k, v in policy.securities_haircuts.items()},
        "haircuts": {k: str(v) for k, v in (haircuts or {}).items()},
        "va_max_share": str(policy.va_max_share),
    }
