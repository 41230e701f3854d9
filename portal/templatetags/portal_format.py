"""Formatting shared by every app's templates."""

from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()


def as_number(value) -> Decimal | None:
    """A template value as a Decimal; None for nothing or for text that is not a number (shown as it is)."""
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


@register.filter
def percent(value, places: int = 0) -> str:
    """A ratio as a percentage: ``Decimal("0.6500")`` → ``"65%"``; ``0.125|percent:1`` → ``"12.5%"``."""
    number = as_number(value)
    if number is None:
        return "" if value in (None, "") else str(value)
    return f"{number * 100:.{int(places)}f}%"


@register.filter
def hkd(value) -> str:
    """An amount of money to the cent, grouped: ``Decimal("1234567.5")`` → ``"1,234,567.50"``, a bare ``0`` →
    ``"0.00"``; nothing (or text that is no number) → ``"—"``. Every page's money goes through here."""
    number = as_number(value)
    return "—" if number is None else f"{number.quantize(Decimal('0.01')):,}"


@register.filter
def quantity(value) -> str:
    """A collateral quantity as people read it: whole shares without decimals (``1000.00000000`` → ``"1,000"``),
    coins to at most their 8 places without trailing zeros (``0.50000000`` → ``"0.5"``)."""
    number = as_number(value)
    if number is None:
        return "" if value in (None, "") else str(value)
    if number == number.to_integral_value():
        return f"{number.quantize(Decimal(1)):,}"
    return f"{number.normalize():,f}"


@register.filter
def price(value) -> str:
    """A price as quoted, grouped: to the cent (``760000`` → ``"760,000.00"``), or to three places for a security
    quoted below the cent (``"0.305"`` → ``"0.305"``)."""
    number = as_number(value)
    if number is None:
        return "" if value in (None, "") else str(value)
    cents = number.quantize(Decimal("0.01"))
    return f"{cents if cents == number.quantize(Decimal('0.001')) else number.quantize(Decimal('0.001')):,}"
