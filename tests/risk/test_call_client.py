"""The margin call from the client's side: met by the market, the cure figures, the live figure, the actions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lending.risk.models import CallState, MarginCall
from lending.risk.revaluation import revalue_book
from portal.models import AuditEvent, Notification

from .conftest import make_facility, reload, set_prices

pytestmark = pytest.mark.django_db
MIXED = {"securities": (("10000000", "0.30"),), "btc": "2", "eth": "10"}  # lending value 7,702,500 at BTC 760,000


@pytest.fixture
def in_call(book, alice, officer, django_capture_on_commit_callbacks):
    facility = make_facility(alice, drawn="8000000", officer=officer, **MIXED)  # 1.0386
    with django_capture_on_commit_callbacks(execute=True):
        revalue_book()
    return reload(facility)


def _eligible(monkeypatch):
    from disclosures import selectors as disclosure_selectors
    from onboarding import selectors as onboarding_selectors

    monkeypatch.setattr(disclosure_selectors, "clients_with_outstanding", lambda **kw: set())
    monkeypatch.setattr(onboarding_selectors, "product_eligibility",
                        lambda *, user, product, **kw: onboarding_selectors.Eligibility(product=str(product), requirements=[]))


def test_a_call_cured_by_the_market_is_met_by_the_market_and_drawdowns_reopen(in_call, alice, officer, monkeypatch,
                                                                               django_capture_on_commit_callbacks):
    from lending.servicing import requests as servicing_requests

    _eligible(monkeypatch)
    call = MarginCall.objects.get(facility=in_call)
    assert servicing_requests.drawdown_blockers(facility=in_call)  # blocked while the call is open
    with django_capture_on_commit_callbacks(execute=True):
        set_prices(btc=Decimal("1200000"))  # LV 8,054,500: utilisation 0.9932, shortfall gone
        revalue_book()
    call = MarginCall.objects.get(pk=call.pk)
    assert call.state == CallState.MET and call.met_by == "market"
    facility = reload(in_call)
    assert not facility.has_open_margin_call and facility.band == "watch"
    assert servicing_requests.drawdown_blockers(facility=facility) == []
    met = AuditEvent.objects.get(object_type="risk.margincall", object_id=str(call.pk), action="risk.margin_call.met")
    assert met.after["met_by"] == "market" and met.actor_label == "system"
    told = Notification.objects.filter(user=alice, kind="risk.margin_call.met_by_market")
    assert told.count() == 1
    # Told once: a second run at the same prices sends nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        revalue_book()
    assert Notification.objects.filter(user=alice, kind__startswith="risk.margin_call.met").count() == 1


def test_the_beat_meets_calls_the_market_cured_too(in_call, monkeypatch):
    from lending.risk import services
    from lending.risk.revaluation import open_calls_refresh

    monkeypatch.setattr(services, "revalue_book", lambda **kw: None)  # the tick is missed: only the beat sees the recovery
    set_prices(btc=Decimal("1200000"))
    assert MarginCall.objects.get().state == CallState.OPEN
    refreshed, met = open_calls_refresh()
    assert met == 1 and MarginCall.objects.get().met_by == "market"
    assert not reload(in_call).has_open_margin_call
