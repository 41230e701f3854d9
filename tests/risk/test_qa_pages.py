"""Browser QA findings (each a regression test): words not codes, live figures, translated labels, refusals everywhere."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import translation

from lending.risk.revaluation import revalue_book

from .conftest import make_facility, set_prices

pytestmark = pytest.mark.django_db
MIXED = {"securities": (("10000000", "0.30"),), "btc": "2", "eth": "10"}  # lending value 7,702,500


def _get(client, path, lang="en"):
    client.cookies["django_language"] = lang
    response = client.get(path)
    assert response.status_code == 200, path
    return response.content.decode()


def test_the_client_risk_panel_shows_the_band_in_words_and_the_levels_as_percentages(client, book, alice):
    facility = make_facility(alice, drawn="7000000", **MIXED)  # 90.88%: watch
    revalue_book()
    client.force_login(alice)
    html = _get(client, f"/risk/facility/{facility.pk}/")
    assert '90.88%</span> · <span data-live="band">Watch<' in html and ">watch<" not in html
    assert "Watch from 90%, margin call above 100%, close-out from 130%" in html
    html = _get(client, f"/risk/facility/{facility.pk}/", "zh-hant")
    assert "0.9000" not in html and "90%" in html


def test_a_facility_already_in_call_says_so_instead_of_a_zero_percent_fall(client, book, alice):
    facility = make_facility(alice, drawn="8000000", **MIXED)  # 103.9%
    revalue_book()
    client.force_login(alice)
    html = _get(client, f"/risk/facility/{facility.pk}/")
    assert 'data-testid="already-in-call"' in html and 'data-testid="fall-btc"' not in html
    assert "使用率已高於追加保證金水平" in _get(client, f"/risk/facility/{facility.pk}/", "zh-hant")


def test_the_facility_page_shows_the_live_valuation_not_the_last_stored_one(client, book, alice):
    """The stored valuation is written only on band changes; the page values at the current prices."""
    facility = make_facility(alice, drawn="1000000", **MIXED)
    revalue_book()
    set_prices(btc=Decimal("700000"))  # no band change: nothing stored moves
    revalue_book()
    client.force_login(alice)
    html = _get(client, f"/lending/facilities/{facility.pk}/")
    # securities 7,000,000 + BTC 2 × 700,000 × 0.4 + ETH 10 × 27,000 × 0.35 = 7,654,500
    assert html.count("7,654,500.00") >= 2  # the facts and the risk panel agree
    assert "1,400,000.00" in html  # the BTC position at the current price


def test_stress_results_and_presets_read_in_words_and_in_chinese(client, book, officer, alice):
    make_facility(alice, drawn="7600000", **MIXED)
    revalue_book()
    client.force_login(officer)
    html = _get(client, "/risk/stress/?preset=policy")
    assert ">Close-out<" in html or ">Margin call<" in html
    assert ">margin_call<" not in html and ">close_out<" not in html and ">securities<" not in html
    html = _get(client, "/risk/stress/?preset=policy", "zh-hant")
    assert "虛擬資產暴跌" in html and "VA (after cap)" not in html


def test_an_escalated_call_gives_its_reason_in_words(client, book, alice, officer, django_capture_on_commit_callbacks):
    from lending.risk import services
    from lending.risk.models import MarginCall

    facility = make_facility(alice, drawn="8000000", **MIXED)
    with django_capture_on_commit_callbacks(execute=True):
        revalue_book()
        services.margin_call_escalate(actor=officer, call_id=MarginCall.objects.get(facility=facility).pk, reason="No answer")
    client.force_login(officer)
    html = _get(client, f"/risk/margin-calls/{MarginCall.objects.get(facility=facility).pk}/")
    assert "by an officer" in html and "· officer<" not in html


def _patterns(resolver, prefix=""):
    for p in resolver.url_patterns:
        if isinstance(p, URLResolver):
            yield from _patterns(p, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern)


def _concrete(route: str) -> str:
    import re

    return "/" + re.sub(r"<(?:\w+:)?\w+>", "1", route).lstrip("^").rstrip("$")


def test_anonymous_visitors_are_refused_on_every_lending_and_risk_page_and_endpoint(client):
    routes = [_concrete(r) for r in _patterns(get_resolver()) if r.startswith(("lending/", "risk/", "api/v1/lending/", "api/v1/risk/"))]
    assert len(routes) > 40
    with translation.override("en"):
        for path in routes:
            for method in (client.get, client.post):
                response = method(path)
                if path.startswith("/api/"):
                    assert response.status_code in (401, 403), (path, response.status_code)
                else:
                    assert response.status_code == 302 and "/accounts/login/" in response["Location"], (path, response.status_code)


def test_a_client_is_refused_on_every_staff_page_and_endpoint(client, alice):
    routes = [_concrete(r) for r in _patterns(get_resolver())
              if r.startswith(("lending/staff/", "risk/board", "risk/margin-calls", "risk/stress", "risk/prices", "risk/policy",
                               "api/v1/lending/staff/", "api/v1/risk/staff/"))]
    assert len(routes) > 20
    client.force_login(alice)
    for path in routes:
        for method in (client.get, client.post):
            response = method(path)
            assert response.status_code in (403, 404, 405), (path, response.status_code)
