"""Parsing what staff and clients type into lending and risk services: one clear error per bad field."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.utils.translation import gettext_lazy as _

from portal.errors import PortalError


def decimal_input(value, field: str, *, minimum: Decimal | None = None, maximum: Decimal | None = None) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        raise PortalError("validation_error", _("%(field)s must be a number.") % {"field": field}, {field: [_("Enter a number.")]}) from None
    if not number.is_finite():
        raise PortalError("validation_error", _("%(field)s must be a number.") % {"field": field}, {field: [_("Enter a number.")]})
    if minimum is not None and number < minimum:
        raise PortalError("validation_error", _("%(field)s must be at least %(minimum)s.") % {"field": field, "minimum": minimum}, {field: [_("At least %(minimum)s.") % {"minimum": minimum}]})
    if maximum is not None and number > maximum:
        raise PortalError("validation_error", _("%(field)s must be at most %(maximum)s.") % {"field": field, "maximum": maximum}, {field: [_("At most %(maximum)s.") % {"maximum": maximum}]})
    return number


def id_input(value, field: str) -> int:
    """A record id typed or posted back (a positive whole number), with a clear error otherwise."""
    text = str(value if value is not None else "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) < 1:
        raise PortalError("validation_error", _("%(field)s must be a record number.") % {"field": field}, {field: [_("Enter a whole number.")]})
    return int(text)
