from decimal import Decimal

from portal.templatetags.portal_format import percent


def test_percent_formats_ratios_for_people():
    assert percent(Decimal("0.6500")) == "65%"
    assert percent(Decimal("0.125"), 1) == "12.5%"
    assert percent(None) == ""
    assert percent("n/a") == "n/a"


def test_hkd_shows_money_to_the_cent():
    from portal.templatetags.portal_format import hkd

    assert hkd(Decimal("0")) == "0.00"  # a bare zero (nothing left to draw) read "HK$0"
    assert hkd(Decimal("1234567.5")) == "1,234,567.50"
    assert hkd(Decimal("-12.345")) == "-12.34"  # half-even, as the ledger rounds
    assert hkd(None) == "—" and hkd("") == "—" and hkd("n/a") == "—"

