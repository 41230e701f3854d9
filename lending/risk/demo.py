"""Demo risk data: a risk policy, three price sources with quotes and 30 days of closes, facilities
near and over the levels (so the moving demo feed visibly pushes some across), an open margin call and
a stored monthly stress report.

Run by ``manage.py seed_demo`` after lending.demo. Idempotent (keyed on the risk policy).
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from lending import selectors as lending_selectors
from portal.audit import SYSTEM
from portal.models import User

from . import selectors, services
from .models import DailyClose, MarginCall, StressReport
from .revaluation import HK, revalue_book

RISK_POLICY_V1 = {
    "source_deviation_max": "0.02", "volatility_alarm_level": "0.90",
    "stress_btc_shock": "-0.50", "stress_eth_shock": "-0.60", "stress_securities_shock": "-0.30",
}
# Utilisation the demo facilities are drawn to: healthy, watch, just under and over the margin-call level.
TARGETS = [Decimal("0.93"), Decimal("0.985"), Decimal("1.04"), Decimal("0.97")]


def _closes(now) -> None:
    rng = random.Random(7)  # noqa: S311 - demo data
    for asset, start, vol in (("BTC", 700000.0, 0.55), ("ETH", 25000.0, 0.7)):
        price = start
        for days in range(30, 0, -1):
            price *= math.exp(rng.gauss(0, vol / math.sqrt(365)))
            day = (now - timedelta(days=days)).astimezone(HK).date()
            DailyClose.objects.get_or_create(asset=asset, day=day, defaults={"price_hkd": Decimal(str(round(price, 2))), "as_of": now - timedelta(days=days)})


def _near_level_facilities(officer) -> int:
    """Demo-only facilities for the demo borrowers, drawn near and over the levels, so the moving feed
    pushes some across (lending's own demo facilities sit well inside their limits)."""
    from lending.models import AppState, CollateralPosition, Facility, FacilityApplication
    from lending.risk.book import coefficients_refresh

    policy = lending_selectors.policy_current()
    prices = {a: q.price_hkd for a, q in lending_selectors.prices_current().items()}
    borrowers = list(User.objects.filter(email__startswith="borrower").order_by("email")[:6])
    made = 0
    for i, (user, target) in enumerate(zip(borrowers, [Decimal("0.80"), Decimal("0.93"), Decimal("0.97"), Decimal("0.99"), Decimal("1.02"), Decimal("1.08")], strict=False)):
        sec, btc, eth = Decimal(3_000_000 + 500_000 * i), Decimal("1.5") + i, Decimal(20 + 5 * i)
        a = sec * Decimal("0.70")
        va = btc * prices["BTC"] * Decimal("0.40") + eth * prices["ETH"] * Decimal("0.35")
        lv = a + min(va, a * policy.va_max_share / (1 - policy.va_max_share))
        drawn = (lv * target).quantize(Decimal("0.01"))
        app = FacilityApplication.objects.create(client=user, requested_limit=drawn * 2, purpose="Demo: facility near the monitoring levels",
                                                 decided_by=officer, approved_limit=drawn * 2, policy=policy, decision_policy=policy)
        FacilityApplication.objects.filter(pk=app.pk).update(state=AppState.ACTIVE)  # demo data: accepted off-screen
        facility = Facility.objects.create(client=user, application=app, limit=(drawn * 2).quantize(Decimal("0.01")), drawn_balance=drawn, policy=policy,
                                           letter_sha256="demo", accepted_at=timezone.now(), conditions="Demo facility")
        CollateralPosition.objects.bulk_create([
            CollateralPosition(facility=facility, kind="securities", haircut_class="A", description="Tracker Fund 2800", market_value=sec, haircut=Decimal("0.30")),
            CollateralPosition(facility=facility, kind="virtual_asset", asset="BTC", quantity=btc, haircut=policy.btc_haircut, custody_reference=f"DEMO-BTC-{i}"),
            CollateralPosition(facility=facility, kind="virtual_asset", asset="ETH", quantity=eth, haircut=policy.eth_haircut, custody_reference=f"DEMO-ETH-{i}"),
        ])
        made += 1
    coefficients_refresh(now=timezone.now())
    return made


def seed(stdout) -> None:
    officer = User.objects.get(email="officer@demo.vamargin.hk")
    manager = User.objects.get(email="manager@demo.vamargin.hk")
    if selectors.risk_policy_current() is not None:
        stdout.write("  risk demo already seeded")
        return
    with transaction.atomic():
        proposed = services.risk_policy_propose(actor=officer, numbers=RISK_POLICY_V1, reason="Initial risk policy (SMF Guidelines stress presets).")
        services.risk_policy_decide(actor=manager, policy_id=proposed.pk, approve=True, note="Approved for launch.")
        now = timezone.now()
        _closes(now)
        for code, name in services.DEMO_SOURCES:
            services.source_ensure(code=code, name=name)
        current = lending_selectors.prices_current()
        btc = current["BTC"].price_hkd if "BTC" in current else Decimal("760000")
        eth = current["ETH"].price_hkd if "ETH" in current else Decimal("27000")
        rows = []
        for i, (code, _name) in enumerate(services.DEMO_SOURCES):
            drift = Decimal("1") + Decimal(i - 1) / 1000
            rows += [{"source_code": code, "asset": "BTC", "price_hkd": (btc * drift).quantize(Decimal("0.01")), "as_of": now},
                     {"source_code": code, "asset": "ETH", "price_hkd": (eth * drift).quantize(Decimal("0.01")), "as_of": now}]
        services.quotes_record(rows=rows)
    with transaction.atomic():
        moved = _near_level_facilities(officer)
    # A 2% fall from every source: the facility at 99% crosses into margin call as the demo starts.
    with transaction.atomic():
        now = timezone.now()
        current = lending_selectors.prices_current()
        services.quotes_record(rows=[
            {"source_code": code, "asset": asset, "price_hkd": (current[asset].price_hkd * Decimal(factor)).quantize(Decimal("0.01")), "as_of": now}
            for code, _n in services.DEMO_SOURCES for asset, factor in (("BTC", "0.98"), ("ETH", "0.98"))
        ])
        run = revalue_book(trigger="demo")
    with transaction.atomic():
        services.snapshots_take()
    if not StressReport.objects.filter(kind=StressReport.Kind.MONTHLY).exists():
        services.stress_monthly_report()
    services.stress_report_store(actor=SYSTEM, btc_shock="-0.30", eth_shock="-0.40", securities_shock="-0.10")
    stdout.write(
        f"  risk policy v1 in force; {len(services.DEMO_SOURCES)} price sources quoting; {moved} demo facilities near the levels; "
        f"{run.band_changes if run else 0} band changes; {MarginCall.objects.filter(state__in=['open', 'escalated']).count()} open margin calls; "
        "monthly stress report stored"
    )
