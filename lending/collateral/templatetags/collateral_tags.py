from django import template

register = template.Library()


@register.inclusion_tag("collateral/_concentration.html")
def concentration_panel():
    """Collateral concentration by instrument, issuer and sector (one SELECT): for the risk board."""
    from lending.collateral.selectors import concentration

    return {"c": concentration()}
