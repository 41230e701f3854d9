from decimal import Decimal

from portal.templatetags.portal_format import percent


def test_percent_formats_ratios_for_people():
    assert percent(Decimal("0.6500")) == "65%"
    assert percent(Decimal("0.125"), 1) == "12.5%"
    assert percent(None) == ""
    assert percent("n/a") == "n/a"
