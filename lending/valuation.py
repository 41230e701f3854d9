"""Collateral valuation: pure arithmetic on collateral lines, a policy and prices.

lending value = Σ market value × (1 − haircut), with the virtual-asset part capped so it
provides at most ``policy.va_max_share`` of the total (securities must be the main support).
The same numbers are embedded in the application page so the client sees them as they type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from .models import Asset, CollateralKind

ZERO = Decimal("0")
CENT = Decimal("0.01")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class LineInput:
    kind: str
    asset: str = ""
    haircut_class: str = ""
    market_value: Decimal | None = None
    quantity: Decimal | None = None
    description: str = ""


@dataclass
class LineValue:
    kind: str
    label: str
    market_value: Decimal
    haircut: Decimal
    lending_value: Decimal
    price: Decimal | None = None


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
        return self.securities_lending_value + self.va_lending_value

    @property
    def va_capped(self) -> bool:
        return self.va_lending_value < self.va_lending_value_uncapped

    @property
    def va_share(self) -> Decimal:
        """Share of lending value provided by virtual assets (after the cap)."""
        if not self.lending_value:
            return ZERO
        return (self.va_lending_value / self.lending_value).quantize(Decimal("0.0001"))

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
            "lending_value": str(money(self.lending_value)),
            "problems": self.problems,
            "lines": [
                {
                    "label": line.label,
                    "market_value": str(money(line.market_value)),
                    "haircut": str(line.haircut),
                    "lending_value": str(money(line.lending_value)),
                    "price": str(line.price) if line.price is not None else None,
                }
                for line in self.lines
            ],
        }


def va_cap(securities_lending_value: Decimal, va_lending_value: Decimal, max_share: Decimal) -> Decimal:
    """The VA lending value that may count: VA / (securities + VA) ≤ max_share."""
    if max_share >= 1:
        return va_lending_value
    if max_share <= 0:
        return ZERO
    allowed = securities_lending_value * max_share / (1 - max_share)
    return min(va_lending_value, allowed)


def value_collateral(*, lines, policy, prices: dict[str, Decimal]) -> Valuation:
    """Value ``lines`` (LineInput or CollateralLine) at ``prices`` ({asset: HKD}) under ``policy``."""
    result = Valuation()
    for line in lines:
        if line.kind == CollateralKind.SECURITIES:
            haircut = policy.securities_haircut(line.haircut_class)
            if haircut is None:
                result.problems.append(f"Unknown securities haircut class {line.haircut_class!r}.")
                continue
            mv = line.market_value or ZERO
            lv = mv * (1 - haircut)
            result.securities_market_value += mv
            result.securities_lending_value += lv
            result.lines.append(LineValue(line.kind, line.description or f"Securities class {line.haircut_class}", mv, haircut, lv))
        else:
            price = prices.get(line.asset)
            if price is None:
                result.problems.append(f"No price for {line.asset}.")
                continue
            haircut = policy.va_haircut(line.asset)
            mv = (line.quantity or ZERO) * price
            lv = mv * (1 - haircut)
            result.va_market_value += mv
            result.va_lending_value_uncapped += lv
            label = f"{line.quantity} {Asset(line.asset).label}" if line.asset in Asset.values else line.asset
            result.lines.append(LineValue(line.kind, label, mv, haircut, lv, price))
    result.va_lending_value = va_cap(result.securities_lending_value, result.va_lending_value_uncapped, policy.va_max_share)
    return result


def policy_numbers(policy) -> dict:
    """The numbers the application page embeds to compute lending value live."""
    return {
        "version": policy.version,
        "btc_haircut": str(policy.btc_haircut),
        "eth_haircut": str(policy.eth_haircut),
        "securities_haircuts": {k: str(v) for k, v in policy.securities_haircuts.items()},
        "va_max_share": str(policy.va_max_share),
    }
