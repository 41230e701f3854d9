"""Price governance: median of fresh sources, stale and deviation alarms, overrides that expire, volatility."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from lending.models import CurrentPrice
from lending.risk import selectors, services
from lending.risk.models import AlarmKind, DailyClose, PriceAlarm
from portal.audit import SYSTEM
from portal.errors import ForbiddenError, PortalError

pytestmark = pytest.mark.django_db
HK = ZoneInfo("Asia/Hong_Kong")


def quote(code, asset, price, minutes_ago=0):
    return services.quote_record(actor=SYSTEM, source_code=code, asset=asset, price_hkd=price,
                                 as_of=timezone.now() - timedelta(minutes=minutes_ago))


def open_alarms(kind):
    return list(PriceAlarm.objects.filter(kind=kind, cleared_at__isnull=True).values_list("key", flat=True))


def test_reference_price_is_the_median_of_fresh_sources(book, sources):
    quote("alpha", "BTC", "760000")
    quote("beta", "BTC", "761000")
    quote("gamma", "BTC", "759000")
    current = CurrentPrice.objects.get(asset="BTC")
    assert current.price_hkd == Decimal("760000.00") and current.source == "median of 3 sources"


def test_stale_source_is_left_out_and_alarmed(book, sources):
    quote("alpha", "BTC", "700000")
    with time_machine.travel(timezone.now() + timedelta(minutes=20), tick=False):  # alpha is now older than the 15-minute limit
        quote("beta", "BTC", "761000")
        quote("gamma", "BTC", "759000")
        assert CurrentPrice.objects.get(asset="BTC").price_hkd == Decimal("760000.00")
        assert open_alarms(AlarmKind.SOURCE_STALE) == ["BTC:source_stale:alpha"]


def test_no_fresh_source_raises_a_stale_price_alarm_and_keeps_the_last_reference(book, sources):
    quote("alpha", "ETH", "27000")
    with time_machine.travel(timezone.now() + timedelta(minutes=16), tick=False):
        services.reference_prices_refresh()
        assert "ETH:stale_price" in open_alarms(AlarmKind.STALE_PRICE)
        raised = PriceAlarm.objects.get(key="ETH:stale_price", cleared_at__isnull=True)
    assert CurrentPrice.objects.get(asset="ETH").price_hkd == Decimal("27000.00")
    quote("beta", "ETH", "27100")
    assert "ETH:stale_price" not in open_alarms(AlarmKind.STALE_PRICE)  # cleared once a source quotes again
    raised.refresh_from_db()
    assert raised.cleared_at is not None


def test_a_source_deviating_beyond_the_policy_percentage_is_alarmed(book, sources):
    quote("alpha", "BTC", "760000")
    quote("beta", "BTC", "761000")
    quote("gamma", "BTC", "790000")  # 3.8% above the median 761,000 > 2%
    assert open_alarms(AlarmKind.SOURCE_DEVIATION) == ["BTC:source_deviation:gamma"]
    assert CurrentPrice.objects.get(asset="BTC").price_hkd == Decimal("761000.00")  # the median resists it
    quote("gamma", "BTC", "765000")  # back within 2%
    assert open_alarms(AlarmKind.SOURCE_DEVIATION) == []


def approved_override(maker, checker, *, asset="BTC", price="700000", minutes=60, reason="Exchange outage; OTC desk print"):
    proposed = services.override_propose(actor=maker, asset=asset, price_hkd=price, expires_at=timezone.now() + timedelta(minutes=minutes),
                                         reason=reason, justification="Two OTC desks printed 8% under the venues for an hour.")
    return services.override_decide(actor=checker, override_id=proposed.pk, approve=True, note="Seen the prints")


def test_manual_override_applies_from_its_approval_until_it_expires(book, sources, credit_manager, credit_manager2):
    quote("alpha", "BTC", "760000")
    approved_override(credit_manager, credit_manager2)
    assert CurrentPrice.objects.get(asset="BTC").price_hkd == Decimal("700000.00")
    with time_machine.travel(timezone.now() + timedelta(minutes=61), tick=False):
        quote("alpha", "BTC", "755000")  # a fresh quote after expiry: the median applies again
        assert CurrentPrice.objects.get(asset="BTC").price_hkd == Decimal("755000.00")
    from portal.models import AuditEvent

    assert AuditEvent.objects.filter(action="risk.price_override.proposed").count() == 1
    assert AuditEvent.objects.filter(action="risk.price_override.approved").count() == 1


def test_expired_override_stops_on_the_periodic_refresh_too(book, sources, credit_manager, credit_manager2):
    quote("alpha", "BTC", "760000")
    approved_override(credit_manager, credit_manager2, minutes=5)
    with time_machine.travel(timezone.now() + timedelta(minutes=6), tick=False):
        services.reference_prices_refresh()
        assert CurrentPrice.objects.get(asset="BTC").price_hkd == Decimal("760000.00")


def test_only_credit_managers_propose_or_approve_overrides(book, officer, credit_manager):
    with pytest.raises(ForbiddenError):
        services.override_propose(actor=officer, asset="BTC", price_hkd="700000", expires_at=timezone.now() + timedelta(hours=1), reason="x",
                                  justification="x" * 30)
    proposed = services.override_propose(actor=credit_manager, asset="BTC", price_hkd="740000", expires_at=timezone.now() + timedelta(hours=1), reason="x")
    with pytest.raises(ForbiddenError):
        services.override_decide(actor=officer, override_id=proposed.pk, approve=True)


def test_override_expiry_must_be_in_the_next_seven_days(book, credit_manager):
    with pytest.raises(PortalError):
        services.override_propose(actor=credit_manager, asset="BTC", price_hkd="740000", expires_at=timezone.now() - timedelta(minutes=1), reason="x")
    with pytest.raises(PortalError):
        services.override_propose(actor=credit_manager, asset="BTC", price_hkd="740000", expires_at=timezone.now() + timedelta(days=8), reason="x")


def test_unknown_asset_and_source_are_refused_and_nothing_is_stored(book, sources, officer):
    from lending.risk.models import PriceQuote

    before = PriceQuote.objects.count()
    with pytest.raises(PortalError):
        services.quote_record(actor=SYSTEM, source_code="alpha", asset="DOGE", price_hkd="1")
    with pytest.raises(PortalError):
        services.quote_record(actor=officer, source_code="nope", asset="BTC", price_hkd="760000")
    assert PriceQuote.objects.count() == before


def test_thirty_day_realised_volatility_and_its_alarm(book, sources):
    # Closes are kept by Hong Kong day: from 16:00 UTC the UTC date is the day before Hong Kong's.
    today = timezone.now().astimezone(HK).date()
    # Alternating ±10% days: far above a 90% annualised alarm level.
    price = Decimal("700000")
    for i in range(30, 0, -1):
        price = price * (Decimal("1.1") if i % 2 else Decimal("0.9"))
        DailyClose.objects.create(asset="BTC", day=today - timedelta(days=i), price_hkd=price.quantize(Decimal("0.01")), as_of=timezone.now() - timedelta(days=i))
    quote("alpha", "BTC", "700000")
    vol = selectors.price_overview()["volatility"]["BTC"]
    assert vol.volatility > Decimal("1.5") and vol.observations == 31
    assert open_alarms(AlarmKind.VOLATILITY) == ["BTC:volatility"]


def test_realised_volatility_arithmetic():
    import math

    closes = [Decimal("100"), Decimal("110"), Decimal("99")]
    r = [math.log(1.1), math.log(0.9)]
    mean = sum(r) / 2
    expected = math.sqrt(sum((x - mean) ** 2 for x in r) / 1) * math.sqrt(365)
    assert services.realised_volatility(closes) == Decimal(expected).quantize(Decimal("0.0001"))


def test_new_reference_price_enqueues_a_revaluation(book, sources, alice, django_capture_on_commit_callbacks):
    from .conftest import make_facility

    facility = make_facility(alice, drawn="8000000", securities=(("10000000", "0.30"),), btc="2", eth="10")
    with django_capture_on_commit_callbacks(execute=True):
        quote("alpha", "BTC", "700000")
    from lending.models import Facility

    assert Facility.objects.get(pk=facility.pk).band == "margin_call"


def test_risk_policy_needs_a_second_person(book, officer, credit_manager):
    numbers = {"source_deviation_max": "0.03", "volatility_alarm_level": "1.2", "stress_btc_shock": "-0.5", "stress_eth_shock": "-0.6",
               "stress_securities_shock": "-0.3"}
    proposed = services.risk_policy_propose(actor=credit_manager, numbers=numbers, reason="Wider band")
    with pytest.raises(ForbiddenError):
        services.risk_policy_decide(actor=credit_manager, policy_id=proposed.pk, approve=True)
    with pytest.raises(ForbiddenError):
        services.risk_policy_decide(actor=officer, policy_id=proposed.pk, approve=True)
    with pytest.raises(PortalError):
        services.risk_policy_propose(actor=officer, numbers=numbers | {"stress_btc_shock": "-0.2"}, reason="too mild")
    from tests.helpers import make_user

    services.risk_policy_decide(actor=make_user("credit_manager", email="m2@example.com"), policy_id=proposed.pk, approve=True)
    assert selectors.risk_numbers()["source_deviation_max"] == Decimal("0.0300")


def test_the_demo_prices_move_only_through_the_risk_engines_governed_feed(book, alice, django_capture_on_commit_callbacks):
    """Lending no longer schedules its own single-source 'demo-feed'; the risk feed quotes three sources,
    the reference price is their median, and the book is revalued."""
    import random

    from lending import selectors as lending_selectors
    from lending.risk.models import RevaluationRun
    from portal.celery import app

    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "lending.tasks.demo_price_tick" not in tasks
    assert not hasattr(__import__("lending.tasks", fromlist=["x"]), "demo_price_tick")
    from .conftest import make_facility

    make_facility(alice, drawn="1000000", btc="2")
    before = lending_selectors.prices_current()["BTC"].price_hkd
    with django_capture_on_commit_callbacks(execute=True):
        services.demo_feed_tick(seconds=3600, rng=random.Random(7))
    after = lending_selectors.prices_current()["BTC"]
    assert after.price_hkd != before and after.source != "demo-feed"
    assert RevaluationRun.objects.exists()


def test_the_demo_feed_moves_enough_to_cross_levels_and_stays_in_a_realistic_range(book):
    """Each tick is an hour of market: some ticks move BTC by more than 1%; over a long run it stays near its start."""
    import random

    from lending import selectors as lending_selectors
    from lending.risk.services import DEMO_SECONDS_PER_TICK, DEMO_START

    rng, seen, last = random.Random(11), [], Decimal("760000")
    for _ in range(150):
        services.demo_feed_tick(seconds=DEMO_SECONDS_PER_TICK, rng=rng)
        now = lending_selectors.prices_current()["BTC"].price_hkd
        seen.append(abs(now / last - 1))
        last = now
    assert max(seen) > Decimal("0.01")
    assert Decimal("0.7") < last / DEMO_START["BTC"] < Decimal("1.3")
