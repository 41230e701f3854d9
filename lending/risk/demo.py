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
# Utilisation the demo facilities are drawn to: healthy, watch, and at the margin-call level, so the
# opening 2% price fall and the moving feed push some across.
NEAR_LEVEL_TARGETS = [Decimal("0.80"), Decimal("0.93"), Decimal("0.97"), Decimal("0.99"), Decimal("0.998"), Decimal("1.00")]


def _closes(now) -> None:
    rng = random.Random(7)  # noqa: S311 - demo data
    for asset, start, vol in (("BTC", 700000.0, 0.55), ("ETH", 25000.0, 0.7)):
        price = start
        for days in range(30, 0, -1):
            price *= math.exp(rng.gauss(0, vol / math.sqrt(365)))
            day = (now - timedelta(days=days)).astimezone(HK).date()
            DailyClose.objects.get_or_create(asset=asset, day=day, defaults={"price_hkd": Decimal(str(round(price, 2))), "as_of": now - timedelta(days=days)})


def _near_level_facilities(officer, manager) -> int:
    """Facilities for the demo borrowers drawn close to the monitoring levels, made the way a real
    client's are (apply, credit review, approve, accept, draw down), so every record has its audit trail."""
    from lending import services as lending
    from lending.models import AppState, FacilityApplication

    borrowers = list(User.objects.filter(email__startswith="borrower").order_by("email")[: len(NEAR_LEVEL_TARGETS)])
    made = 0
    for i, (user, target) in enumerate(zip(borrowers, NEAR_LEVEL_TARGETS, strict=False)):
        lines = [
            {"kind": "securities", "instrument": "00941", "quantity": str(35_000 + 6_000 * i)},  # from the borrower's holdings
            {"kind": "virtual_asset", "asset": "BTC", "quantity": str(Decimal("1.5") + i)},
            {"kind": "virtual_asset", "asset": "ETH", "quantity": str(20 + 5 * i)},
        ]
        app = lending.application_create(user=user, requested_limit=str(3_000_000 + 500_000 * i), purpose="Demo: facility near the monitoring levels", lines=lines)
        lending.application_submit(user=user, application_id=app.pk, confirm_terms=True)
        lending.review_run(application_id=app.pk, run=1)  # the worker would run it after commit
        app = FacilityApplication.objects.get(pk=app.pk)
        if app.state != AppState.AWAITING_DECISION:
            continue
        from lending.collateral.selectors import DEFAULT_LIMIT_ROUNDING_UNIT
        from lending.review import round_down_limit

        # Up to the lending value, rounded down as the policy rounds limits (no limit with cents).
        limit = round_down_limit(app.lending_value, DEFAULT_LIMIT_ROUNDING_UNIT)
        lending.application_approve(actor=officer, application_id=app.pk, limit=limit, conditions="Demo facility near the monitoring levels.")
        app = FacilityApplication.objects.get(pk=app.pk)
        if app.state == AppState.AWAITING_SECOND_APPROVAL:
            lending.application_second_approve(actor=manager, application_id=app.pk, note="Demo second approval.")
            app = FacilityApplication.objects.get(pk=app.pk)
        if app.state != AppState.APPROVED:
            continue
        facility = lending.application_accept(user=user, application_id=app.pk, letter_sha256=app.letter_sha256)
        amount = min(facility.available, (facility.lending_value * target).quantize(Decimal("0.01")))
        lending.facility_drawdown(actor=officer, facility_id=facility.pk, amount=amount, reference="Demo drawdown near the levels")
        made += 1
    return made


def _second_manager() -> User:
    """A second credit manager, so the demo can show (and complete) maker-checker on price overrides."""
    from allauth.account.models import EmailAddress

    from portal.demo import DEMO_PASSWORD
    from portal.permissions import Role
    from portal.services import user_create

    email = "manager2@demo.vamargin.hk"
    user = User.objects.filter(email=email).first()
    if user is None:
        user = user_create(email=email, password=DEMO_PASSWORD, role=Role.CREDIT_MANAGER, full_name="Marcus Wong (Credit manager)",
                           authority_limit=Decimal("50000000"))
        EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
    return user


def _price_governance(officer, manager) -> None:
    """A dealing-desk source at half weight with an officer's quote, and a manual BTC override that one
    credit manager proposed and that waits for a second one (the preview shows its effect on the book)."""
    from .models import OverrideStatus, PriceOverride, SourceKind

    _second_manager()
    desk = services.source_ensure(code="demo-desk", name="Dealing desk (demo)", kind=SourceKind.DESK)
    services.price_source_update(actor=manager, source_id=desk.pk, weight="0.5", reason="Desk prints count half as much as venues.")
    # (each step its own transaction: every one of them ends with its audit row, the last lock taken)
    btc = lending_selectors.prices_current()["BTC"].price_hkd
    services.quote_record(actor=officer, source_code=desk.code, asset="BTC", price_hkd=(btc * Decimal("1.002")).quantize(Decimal("0.01")))
    if not PriceOverride.objects.filter(status=OverrideStatus.PROPOSED).exists():
        services.override_propose(
            actor=manager, asset="BTC", price_hkd=(btc * Decimal("0.88")).quantize(Decimal("0.01")), expires_at=timezone.now() + timedelta(hours=8),
            reason="Demo: HK VA Exchange halted withdrawals; OTC prints are well below the venues.",
            justification="Three OTC desks printed BTC 11-13% under the venue median in the last hour; the venues are not tradable for size.",
        )


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
    with transaction.atomic():
        current = lending_selectors.prices_current()
        btc = current["BTC"].price_hkd if "BTC" in current else Decimal("760000")
        eth = current["ETH"].price_hkd if "ETH" in current else Decimal("27000")
        rows = []
        for i, (code, _name) in enumerate(services.DEMO_SOURCES):
            drift = Decimal("1") + Decimal(i - 1) / 1000
            rows += [{"source_code": code, "asset": "BTC", "price_hkd": (btc * drift).quantize(Decimal("0.01")), "as_of": now},
                     {"source_code": code, "asset": "ETH", "price_hkd": (eth * drift).quantize(Decimal("0.01")), "as_of": now}]
        services.quotes_record(rows=rows)
    moved = _near_level_facilities(officer, manager)  # each service its own transaction (each ends with its audit row)
    # A 2% fall from every source: the facility at 99% crosses into margin call as the demo starts.
    with transaction.atomic():
        now = timezone.now()
        current = lending_selectors.prices_current()
        services.quotes_record(rows=[
            {"source_code": code, "asset": asset, "price_hkd": (current[asset].price_hkd * Decimal(factor)).quantize(Decimal("0.01")), "as_of": now}
            for code, _n in services.DEMO_SOURCES for asset, factor in (("BTC", "0.98"), ("ETH", "0.98"))
        ])
        run = revalue_book(trigger="demo")
    _price_governance(officer, manager)
    # No snapshot of today here: the end-of-day job takes it at its scheduled time, of the whole book, and
    # a row written now (before the later demos' facilities exist) would stand as today's record.
    services.book_summary_take()  # the board's figures until the beat takes the next one
    if not StressReport.objects.filter(kind=StressReport.Kind.MONTHLY).exists():
        services.stress_monthly_report()
    services.stress_report_store(actor=SYSTEM, btc_shock="-0.30", eth_shock="-0.40", securities_shock="-0.10")
    stdout.write(
        f"  risk policy v1 in force; {len(services.DEMO_SOURCES)} price sources quoting; {moved} demo facilities near the levels; "
        f"{run.band_changes if run else 0} band changes; {MarginCall.objects.filter(state__in=['open', 'escalated']).count()} open margin calls; "
        "monthly stress report stored"
    )
