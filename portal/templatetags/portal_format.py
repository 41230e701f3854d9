"""Formatting shared by every app's templates."""

from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()


@register.filter
def percent(value, places: int = 0) -> str:
    """A ratio as a percentage: ``Decimal("0.6500")`` → ``"65%"``; ``0.125|percent:1`` → ``"12.5%"``."""
    if value in (None, ""):
        return ""
    try:
        number = Decimal(str(value)) * 100
    except InvalidOperation:
        return str(value)
    return f"{number:.{int(places)}f}%"
