"""``{% facility_risk_panel facility %}``: the live collateral, gauge, distance to a call and open call (four queries);
``|utilisation``: the one way a utilisation is shown, on every page and in the live JSON; ``|shock``: a stress shock."""

from django import template
from django.utils.translation import gettext_lazy as _

from portal.templatetags.portal_format import as_number, percent

from .. import selectors

register = template.Library()


@register.inclusion_tag("risk/_facility_risk.html", takes_context=True)
def facility_risk_panel(context, facility):
    # The page's CSP nonce goes with the panel: its inline styles are refused without it.
    return {"risk": selectors.facility_risk(facility_id=facility.pk) if facility and facility.pk else None,
            "csp_nonce": context.get("csp_nonce")}


# Codes stored by the set-based SQL, shown in words (in the viewer's language).
_CALL_CODES = {
    "officer": _("by an officer"),
    "overdue": _("past the cure deadline"),
    "close_out_level": _("at the close-out level"),
    "repayment": _("by a repayment"),
    "top_up": _("by a collateral top-up"),
    "market": _("by the market (prices recovered)"),
}


@register.filter
def band_label(code):
    """``healthy`` → "Healthy" (lending's Band labels, translated)."""
    from lending.models import Band

    try:
        return Band(code).label
    except ValueError:
        return code


@register.filter
def alarm_text(alarm) -> str:
    """A price alarm in words, in the reader's language (``lending.risk.alarms``)."""
    from ..alarms import alarm_text as text

    return text(alarm)


@register.filter
def price_source(stored) -> str:
    """A reference price's stored source in the reader's language (``lending.risk.reference_source``)."""
    from ..reference_source import source_text

    return source_text(stored)


@register.filter
def call_code_label(code):
    """A margin call's escalation reason or how it was met, in words."""
    return _CALL_CODES.get(code, code)


def utilisation_text(value) -> str:
    """A utilisation (drawn ÷ lending value, stored to 4 places) as a percentage to 2 places: 1.0050 → "100.50%".

    Two places show the stored figure exactly, so the text never rounds across a level (100.00% is not in
    margin call, 100.01% is). Every page and the live endpoint show utilisation through this function.
    """
    from lending.valuation import NO_LENDING_VALUE_UTILISATION

    number = as_number(value)
    if number is None:
        return "" if value in (None, "") else str(value)
    if number >= NO_LENDING_VALUE_UTILISATION:
        return str(_("no lending value"))
    return f"{number * 100:,.2f}%"


@register.filter
def utilisation(value) -> str:
    return utilisation_text(value)


@register.filter
def shock(value) -> str:
    """A stress shock (a ratio, stored to 4 places) as a percentage to the places it needs: -0.5000 → "-50%",
    -0.125 → "-12.5%", a rise with its sign (0.1 → "+10%"). The stress pages show every shock through this."""
    number = as_number(value)
    if number is None:
        return "" if value in (None, "") else str(value)
    places = min(2, max(0, -(number * 100).normalize().as_tuple().exponent))
    return ("+" if number > 0 else "") + percent(number, places)


def _countdown_parts(deadline, now=None):
    from django.utils import timezone

    seconds = int((deadline - (now or timezone.now())).total_seconds())
    if seconds <= 0:
        return None
    minutes = seconds // 60
    return {"d": minutes // 1440, "h": minutes % 1440 // 60, "m": minutes % 60}


# The countdown text; the page's script fills the same (translated) pattern every few seconds.
_COUNTDOWN = _("%(d)s d %(h)s h %(m)s min left")


@register.filter
def countdown(deadline) -> str:
    """Time left to a deadline: "1 d 4 h 12 min left" (or that it has passed)."""
    if not deadline:
        return ""
    parts = _countdown_parts(deadline)
    return str(_("the deadline has passed")) if parts is None else str(_COUNTDOWN) % parts


@register.filter
def countdown_format(_deadline) -> str:
    """The countdown pattern with placeholders for the script (__D__, __H__, __M__)."""
    return str(_COUNTDOWN) % {"d": "__D__", "h": "__H__", "m": "__M__"}


@register.inclusion_tag("risk/_facility_calls.html", takes_context=True)
def facility_calls(context, facility):
    """On a facility page: the client's open margin call on it, in full (the client), or a link to it (staff)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if not (facility and facility.pk and user and user.is_authenticated):
        return {"calls": []}
    if facility.client_id == user.pk:
        calls = selectors.client_calls(user=user, facility_id=facility.pk) if facility.has_open_margin_call else []
        return {"calls": calls, "actions": True, **selectors.call_contact()}
    call = selectors.open_call_for_facility(facility_id=facility.pk) if facility.has_open_margin_call else None
    return {"staff_call": call, "live_every_ms": selectors.LIVE_POLL_MS}
