"""``{% facility_risk_panel facility %}``: the live collateral, gauge, distance to a call and open call (four queries)."""

from django import template
from django.utils.translation import gettext_lazy as _

from .. import selectors

register = template.Library()


@register.inclusion_tag("risk/_facility_risk.html")
def facility_risk_panel(facility):
    return {"risk": selectors.facility_risk(facility_id=facility.pk) if facility and facility.pk else None}


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
def call_code_label(code):
    """A margin call's escalation reason or how it was met, in words."""
    return _CALL_CODES.get(code, code)
