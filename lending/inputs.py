"""Parsing what staff and clients type into lending and risk services: one clear error per bad field."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.utils.translation import gettext_lazy as _

from portal.errors import PortalError


def decimal_input(value, field: str, *, minimum: Decimal | None = None, maximum: Decimal | None = None, label: str | None = None) -> Decimal:
    """A number typed or sent, within ``minimum`` and ``maximum``. Without them, within what the widest column
    holds (``MONEY_MAX`` either way): a figure such as 1e309 is refused here, not left to fail where it is
    rounded to its column's places."""
    minimum = -MONEY_MAX if minimum is None else minimum
    maximum = MONEY_MAX if maximum is None else maximum
    label = label or field_label(field)
    try:
        number = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        raise PortalError("validation_error", _("%(field)s must be a number.") % {"field": label}, {field: [_("Enter a number.")]}) from None
    if not number.is_finite():
        raise PortalError("validation_error", _("%(field)s must be a number.") % {"field": label}, {field: [_("Enter a number.")]})
    if number < minimum:
        shown = plain_number(minimum)
        raise PortalError("validation_error", _("%(field)s must be at least %(minimum)s.") % {"field": label, "minimum": shown}, {field: [_("At least %(minimum)s.") % {"minimum": shown}]})
    if number > maximum:
        shown = plain_number(maximum)
        raise PortalError("validation_error", _("%(field)s must be at most %(maximum)s.") % {"field": label, "maximum": shown}, {field: [_("At most %(maximum)s.") % {"maximum": shown}]})
    return number


def plain_number(value: Decimal) -> str:
    """A bound as people write it: 0.00000001, not 1E-8; 1,000,000,000,000,000, not 1E+15."""
    return f"{Decimal(value).normalize():,f}"


# The fields whose codes reach the messages above; a policy number is named by its model field's own label.
_LABELS = {"amount": _("Amount"), "quantity": _("Quantity"), "price_hkd": _("Price (HKD)"), "price": _("Price"), "weight": _("Weight"),
           "limit": _("Limit"), "new_limit": _("Limit"), "requested_limit": _("Requested limit")}


def field_label(field: str) -> str:
    """What a member of staff or a client reads for a field code: its label in the current language (a policy's number:
    its model field's verbose name), else the text as given (already a label)."""
    if field in _LABELS:
        return str(_LABELS[field])
    from django.apps import apps

    for model_label in ("lending.CollateralPolicy", "risk.RiskPolicy", "servicing.ServicingPolicy", "recovery.RecoveryPolicy", "collateral.MarginableList"):
        names = {f.name: f for f in apps.get_model(model_label)._meta.get_fields() if hasattr(f, "verbose_name")}
        verbose = str(names[field].verbose_name) if field in names else ""
        if verbose and verbose != field.replace("_", " "):
            return verbose[:1].upper() + verbose[1:]
    return str(field)


def date_text(value):
    """An ISO date (``2026-03-02``) as a date; None when it is not one, including a well-formed but
    impossible one (``2026-02-30``, on which Django's ``parse_date`` raises)."""
    from django.utils.dateparse import parse_date

    try:
        return parse_date(str(value if value is not None else "").strip())
    except ValueError:
        return None


def datetime_text(value):
    """An ISO date-time (``2026-03-02T16:10:00+08:00``) as a datetime; None when it is not one, including an
    impossible one (hour 25, on which Django's ``parse_datetime`` raises)."""
    from django.utils.dateparse import parse_datetime

    try:
        return parse_datetime(str(value if value is not None else "").strip())
    except ValueError:
        return None


def file_text_checked(content) -> None:
    """Refuse an imported file (or JSON document) carrying a control character: ``portal.hygiene``'s rule,
    which a request's parameters meet in the middleware and a file's text meets here."""
    from portal.hygiene import control_line

    line = control_line(content)
    if line is not None:
        raise PortalError("invalid_file", _("Line %(line)s contains a control character (such as a NUL byte); nothing was applied.") % {"line": line},
                          {"file": [_("Control characters are not allowed.")]})


def id_input(value, field: str) -> int:
    """A record id typed or posted back (a positive whole number), with a clear error otherwise."""
    text = str(value if value is not None else "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) < 1:
        raise PortalError("validation_error", _("%(field)s must be a record number.") % {"field": field}, {field: [_("Enter a whole number.")]})
    return int(text)


# --- Query parameters of the lending and risk pages and list APIs --------------------------------------------
#
# One parser for every filter, page number and figure a page or list takes from its address: a bad value
# is refused with a 400 naming the parameter (the API's error shape under /api/, the 400 page elsewhere),
# never a 500 and never silently ignored.


class InvalidParameter(PortalError):
    http_status = 400


def _refuse(name: str, message, hint) -> InvalidParameter:
    return InvalidParameter("invalid_parameter", message, {name: [str(hint)]})


def _raw(params, name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    return str(value)


def text_param(params, name: str, *, max_length: int = 200, default: str = "") -> str:
    value = _raw(params, name)
    if value is None:
        return default
    value = value.strip()
    if len(value) > max_length:
        raise _refuse(name, _("The parameter “%(name)s” is longer than %(n)s characters.") % {"name": name, "n": max_length}, _("Too long."))
    return value


def choice_param(params, name: str, *, choices, default: str = "") -> str:
    value = _raw(params, name)
    if value is None:
        return default
    allowed = [str(c[0]) if isinstance(c, (tuple, list)) else str(c) for c in choices]
    if value not in allowed:
        raise _refuse(name, _("“%(value)s” is not a valid %(name)s; use one of: %(items)s.") % {"value": value[:40], "name": name, "items": ", ".join(a or "''" for a in allowed)},
                      _("One of %(items)s.") % {"items": ", ".join(allowed)})
    return value


def int_param(params, name: str, *, minimum: int = 1, maximum: int = 1_000_000, default: int | None = None) -> int | None:
    value = _raw(params, name)
    if value is None:
        return default
    if not (value.isascii() and value.lstrip("-").isdigit()) or len(value) > 12:
        raise _refuse(name, _("The parameter “%(name)s” must be a whole number.") % {"name": name}, _("A whole number."))
    number = int(value)
    if not minimum <= number <= maximum:
        raise _refuse(name, _("The parameter “%(name)s” must be between %(minimum)s and %(maximum)s.") % {"name": name, "minimum": minimum, "maximum": maximum},
                      _("Between %(minimum)s and %(maximum)s.") % {"minimum": minimum, "maximum": maximum})
    return number


def decimal_param(params, name: str, *, minimum: Decimal, maximum: Decimal, default: Decimal | None = None) -> Decimal | None:
    value = _raw(params, name)
    if value is None:
        return default
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        number = None
    if number is None or not number.is_finite() or len(value) > 40:
        raise _refuse(name, _("The parameter “%(name)s” must be a number.") % {"name": name}, _("A number."))
    if not minimum <= number <= maximum:
        raise _refuse(name, _("The parameter “%(name)s” must be between %(minimum)s and %(maximum)s.") % {"name": name, "minimum": minimum, "maximum": maximum},
                      _("Between %(minimum)s and %(maximum)s.") % {"minimum": minimum, "maximum": maximum})
    return number


def checked_params(view):
    """A page view whose query parameters are parsed with the functions above: a bad one is a 400."""
    from functools import wraps

    from portal.middleware import bad_request

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except InvalidParameter as exc:
            return bad_request(request, exc.message, fields=exc.fields)

    return wrapped


def choices_param(params, name: str, *, choices) -> list[str]:
    """A repeated parameter (``?state=a&state=b``), each value one of ``choices``."""
    values = [v for v in (params.getlist(name) if hasattr(params, "getlist") else [params.get(name)]) if v not in (None, "")]
    return [choice_param({name: v}, name, choices=choices) for v in values]


MONEY_MAX = Decimal("9999999999999999.99")  # the HKD columns: 18 digits, 2 decimal places


def page_param(params) -> int:
    return int_param(params, "page", minimum=1, maximum=100_000, default=1)


def queue_filters(params) -> dict:
    """The credit queue's filters (page and API)."""
    from .models import AppState, Recommendation
    from .selectors import QUEUE_ORDERINGS

    return {
        "states": choices_param(params, "state", choices=AppState.values) or None,
        "min_limit": decimal_param(params, "min", minimum=Decimal("0"), maximum=MONEY_MAX),
        "max_limit": decimal_param(params, "max", minimum=Decimal("0"), maximum=MONEY_MAX),
        "search": text_param(params, "search", max_length=100),
        "recommendation": choice_param(params, "recommendation", choices=Recommendation.values),
        "order": choice_param(params, "order", choices=list(QUEUE_ORDERINGS), default="age"),
    }


def facility_filters(params) -> dict:
    from .models import Band, FacilityState

    return {
        "state": choice_param(params, "state", choices=FacilityState.values),
        "band": choice_param(params, "band", choices=Band.values),
        "search": text_param(params, "search", max_length=100),
    }


def call_filters(params, *, default_state: str = "") -> dict:
    from lending.risk.models import CallState

    return {
        "state": choice_param(params, "state", choices=["open_all", *CallState.values], default=default_state),
        "search": text_param(params, "q", max_length=100),
    }


# --- Amounts and quantities: what the columns and the business allow ------------------------------------------

# More coins than exist cannot be pledged: bitcoin's supply is capped at 21 million; ether's is about
# 120 million (bounded here at 200 million). Quantities are stored to 8 decimal places.
QUANTITY_MAX = {"BTC": Decimal("21000000"), "ETH": Decimal("200000000")}
QUANTITY_MIN = Decimal("0.00000001")


def places_input(value, field: str, *, places: int, minimum: Decimal | None = None, maximum: Decimal | None = None) -> Decimal:
    """A number typed or sent (``decimal_input``) with at most ``places`` decimal places: more is refused, never
    rounded (an amount of 2.999 is not HK$3.00, nor 0.025 HK$0.02)."""
    number = decimal_input(value, field, minimum=minimum, maximum=maximum)
    step = Decimal(1).scaleb(-places)
    if number != number.quantize(step):
        label = field_label(field)
        if places == 0:
            raise PortalError("validation_error", _("%(field)s must be a whole number.") % {"field": label}, {field: [_("A whole number.")]})
        raise PortalError("validation_error", _("%(field)s has more than %(places)s decimal places.") % {"field": label, "places": places},
                          {field: [_("At most %(places)s decimal places.") % {"places": places}]})
    return number.quantize(step)


def money_input(value, field: str, *, minimum: Decimal = Decimal("0.01"), maximum: Decimal = MONEY_MAX) -> Decimal:
    """An HKD amount to the cent (more places refused, not rounded), within what an HKD column holds (and ``maximum`` when lower)."""
    return places_input(value, field, places=2, minimum=minimum, maximum=min(maximum, MONEY_MAX))


def quantity_input(value, field: str, *, asset: str, label: str | None = None) -> Decimal:
    """A BTC/ETH quantity, positive, to 8 decimal places, at most the asset's supply."""
    number = decimal_input(value, field, minimum=QUANTITY_MIN, maximum=QUANTITY_MAX.get(asset, Decimal("0")), label=label)
    if number != number.quantize(QUANTITY_MIN):
        raise PortalError("validation_error", _("%(field)s has more than 8 decimal places.") % {"field": label or field_label(field)},
                          {field: [_("At most 8 decimal places.")]})
    return number
