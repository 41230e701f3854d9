"""``{% facility_risk_panel facility %}``: the live collateral, gauge, distance to a call and open call (four queries)."""

from django import template

from .. import selectors

register = template.Library()


@register.inclusion_tag("risk/_facility_risk.html")
def facility_risk_panel(facility):
    return {"risk": selectors.facility_risk(facility_id=facility.pk) if facility and facility.pk else None}
