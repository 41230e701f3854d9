"""Demo servicing: the servicing policy and base-rate fixings in force; interest accrued and posted on
live facilities; monthly and activity statements in English and Chinese.

``policy_ensure`` is called by lending's demo before any letter is written (letters state the rate).
``seed`` runs after lending's and the risk engine's demos. Idempotent (keyed on the posting).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from portal.models import User

from . import interest, selectors, services, statements
from .models import StatementKind

SERVICING_V1 = {
    "base_rate": "hkd_prime",
    "tier_margins": {"standard": "0.030000", "preferred": "0.020000", "private": "0.012500"},
    "default_tier": "standard",
    "overdue_margin": "0.040000",
    "arrangement_fee": "0",
    "liquidation_fee_rate": "0.0050",
    "client_drawdown_auto_max": "500000",
    "staff_four_eyes_above": "10000000",
    "release_initial_level": "0.7500",
    "whitelist_cooling_off_hours": 24,
    "withdrawal_officer_above": "80000",
    "withdrawal_second_above": "800000",
    "review_months": 12,
    "unpaid_interest_grace_days": 30,
}


def policy_ensure(*, maker, checker):
    """Servicing policy v1 and confirmed HKD Prime and 1-month HIBOR fixings (entered by one person, confirmed by another)."""
    policy = selectors.servicing_policy_current()
    if policy is None:
        proposed = services.servicing_policy_propose(actor=maker, numbers=SERVICING_V1, reason="Initial servicing terms: HKD Prime + tier margin.")
        policy = services.servicing_policy_decide(actor=checker, policy_id=proposed.pk, approve=True, note="Approved for launch.")
    if not selectors.fixings_in_effect():
        start = timezone.localdate() - timedelta(days=120)
        for base, rate, source in (("hkd_prime", "0.052500", "Demo: a note-issuing bank's HKD Prime announcement"),
                                   ("hibor_1m", "0.036200", "Demo: HKAB 1-month HIBOR fixing")):
            fixing = services.fixing_enter(actor=maker, base_rate=base, rate=rate, effective_date=start, source=source)
            other = User.objects.filter(email="officer2@demo.vamargin.hk").first() or checker
            services.fixing_decide(actor=other, fixing_id=fixing.pk, confirm=True)
    return policy


def seed(stdout) -> None:
    """Facilities in the lending demo open today, so interest starts accruing tonight (the panel shows
    today's accrual as it builds up). Two of them are given a history of two past months (``_history_demo``)
    so the demo has interest accrued and posted and monthly statements in English and Chinese; today's
    activity statements are issued too."""
    from .models import Statement

    today = timezone.localdate()
    if Statement.objects.exists():
        stdout.write("  servicing demo already seeded")
        return
    policy = policy_ensure(maker=User.objects.get(email="officer@demo.vamargin.hk"), checker=User.objects.get(email="manager@demo.vamargin.hk"))
    from lending.models import Facility

    # One more borrower reads in Traditional Chinese (the README's tour keeps Lee Ka Ying in English).
    first = Facility.objects.filter(client__email__startswith="borrower").order_by("id").select_related("client").first()
    if first is not None:
        from portal.services import user_set_language

        user_set_language(user=first.client, language="zh-hant")
    interest.terms_ensure()
    _requests_demo(stdout)
    _limits_and_elections_demo(stdout)
    _history_demo(stdout, today=today)
    job, _created = statements.job_start(kind=StatementKind.ACTIVITY, period_start=today, period_end=today)
    while statements.job_step(job_id=job.pk):
        pass
    stdout.write(f"  servicing policy v{policy.version}; activity statements issued: {Statement.objects.filter(language='en').count()} in English, "
                 f"{Statement.objects.filter(language='zh-hant').count()} in Chinese")


def _requests_demo(stdout) -> None:
    """A client drawdown request approved by an officer, one paid at once, a release refused for breaching
    the initial level, and a whitelisted withdrawal address in cooling-off — all through the services."""
    from lending.models import Facility, FacilityState
    from portal.demo import totp_ensure
    from portal.errors import PortalError

    from . import requests

    officer2 = User.objects.get(email="officer2@demo.vamargin.hk")
    # Above what a client's drawdown executes at once, so an officer approves it.
    large = selectors.servicing_policy_current().client_drawdown_auto_max + Decimal("10000")
    done = []
    for facility in Facility.objects.filter(state=FacilityState.ACTIVE, has_open_margin_call=False).select_related("client").order_by("id"):
        try:
            if "approved" not in done and facility.available >= large + Decimal("50000"):
                totp_ensure(facility.client)  # drawdowns and releases need an enrolled client (demo_totp prints the code)
                req = requests.drawdown_request(user=facility.client, facility_id=facility.pk, amount=str(large))
                requests.request_approve(actor=officer2, request_id=req.pk)
                requests.drawdown_request(user=facility.client, facility_id=facility.pk, amount="50000")
                entry, token = requests.address_add(user=facility.client, asset="BTC", address="bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
                                                    label="Hardware wallet")
                requests.address_confirm(user=facility.client, token=token)
                done.append("approved")
            elif "refused" not in done and facility.utilisation >= Decimal("0.75"):
                position = facility.positions.filter(kind="securities").first()
                if position is not None:
                    totp_ensure(facility.client)
                    requests.release_request(user=facility.client, facility_id=facility.pk, position_id=position.pk)
                    done.append("refused")
        except PortalError as exc:
            stdout.write(f"  request demo skipped {facility.reference}: {exc.message}")
        if len(done) == 2:
            break
    stdout.write("  requests: a drawdown approved by an officer and one paid at once, a release refused at the initial level, "
                 "a withdrawal address cooling off" if len(done) == 2 else f"  requests demo: {done}")


def _limits_and_elections_demo(stdout) -> None:
    """Credit-limit history (a decrease applied at a review, an increase above the officer's authority awaiting a
    credit manager) and professional investors' elections about activity statements (one in force, one revoked)."""
    from lending.models import Facility, FacilityState
    from onboarding.selectors import client_facts
    from portal.errors import PortalError

    from . import lifecycle

    officer = User.objects.get(email="officer@demo.vamargin.hk")
    limits = []
    for facility in Facility.objects.filter(state=FacilityState.ACTIVE).select_related("client").order_by("-id"):
        try:
            headroom = facility.limit - facility.drawn_balance
            if "increase awaiting a credit manager" not in limits and facility.lending_value > max(facility.limit + Decimal("20000"), Decimal("5000000")):
                lifecycle.facility_limit_change(actor=officer, facility_id=facility.pk, new_limit=(facility.lending_value // 10000) * 10000,
                                                reason="Client asked for more headroom; collateral supports it.")
                limits.append("increase awaiting a credit manager")
            elif "decrease applied" not in limits and headroom > Decimal("100000"):  # still leaves room above the drawn balance
                lifecycle.facility_limit_change(actor=officer, facility_id=facility.pk, new_limit=facility.limit - (headroom / 2 // 10000) * 10000,
                                                reason="Annual review: exposure to one issuer reduced.")
                limits.append("decrease applied")
        except PortalError as exc:
            stdout.write(f"  limit demo skipped {facility.reference}: {exc.message}")
        if len(limits) == 2:
            break
    elections = []
    clients = User.objects.filter(pk__in=Facility.objects.values("client_id")).order_by("id")
    for client in clients:
        facts = client_facts(user=client)
        if facts is None or not facts.pi_valid:
            continue
        services.activity_statements_elect(user=client, confirm=True)
        if elections:  # the second changes their mind: revoked, kept on record
            services.activity_statements_resume(user=client)
        elections.append(client.email)
        if len(elections) == 2:
            break
    stdout.write(f"  limit history: {', '.join(limits) or 'none'}; activity-statement elections: "
                 f"{elections[0] + ' (in force)' if elections else 'none (no verified PI with a facility)'}"
                 f"{', ' + elections[1] + ' (revoked)' if len(elections) > 1 else ''}")


HISTORY_MONTHS = 2


def _history_demo(stdout, *, today) -> None:
    """Two facilities (a Chinese reader's and an English reader's) with the last two calendar months behind them.

    Demo only: their opening is moved back to the first day of the month two months ago, the one step no
    service offers (a facility opens when its letter is accepted). Everything after it goes through the real
    services in value-date order, as a late booking would: a drawdown early in the first month and a
    repayment in the second (``facility_drawdown`` / ``facility_repay`` with past value dates, which the
    ledger accepts while no interest has been accrued for those days), then the interest job accrues every
    day up to yesterday and posts each finished month, and the monthly statement job issues both months.
    """
    from datetime import datetime
    from datetime import time as dtime

    from lending import services as lending_services
    from lending.models import Facility, FacilityState

    first_day = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    for _i in range(HISTORY_MONTHS - 1):
        first_day = (first_day - timedelta(days=1)).replace(day=1)
    officer = User.objects.get(email="officer@demo.vamargin.hk")
    candidates = list(Facility.objects.filter(state=FacilityState.ACTIVE, has_open_margin_call=False)
                      .select_related("client").order_by("id"))
    chosen = []
    for language in ("zh-hant", "en"):
        match = next((f for f in candidates if statements.language_of(f.client) == language and f not in chosen), None)
        if match is not None:
            chosen.append(match)
    opened = timezone.make_aware(datetime.combine(first_day, dtime(10, 0)))
    Facility.objects.filter(pk__in=[f.pk for f in chosen]).update(opened_at=opened)  # the demo-only step
    second_month = month_start = first_day
    for _i in range(HISTORY_MONTHS - 1):
        second_month = (interest.month_end(second_month) + timedelta(days=1))
    for facility in chosen:
        # Sized to what the facility may still draw after the other demos (at most HK$200,000); a quarter repaid.
        amount = min(Decimal("200000"), facility.available / 2 // 1000 * 1000)
        if amount < Decimal("4000"):
            continue
        lending_services.facility_drawdown(actor=officer, facility_id=facility.pk, amount=str(amount),
                                           reference="DEMO-HIST-DD", value_date=month_start + timedelta(days=1))
        lending_services.facility_repay(actor=officer, facility_id=facility.pk, amount=str(amount / 4),
                                        reference="DEMO-HIST-RP", value_date=second_month + timedelta(days=14))
    result = interest.interest_run()
    issued = []
    month = first_day
    while month < today.replace(day=1):
        end = interest.month_end(month)
        job, _created = statements.job_start(kind=StatementKind.MONTHLY, period_start=month, period_end=end)
        while statements.job_step(job_id=job.pk):
            pass
        issued.append(f"{end:%Y-%m}")
        month = end + timedelta(days=1)
    stdout.write(f"  history: {', '.join(f.reference for f in chosen)} opened {first_day}; interest accrued for "
                 f"{len(result['accrued_days'])} days and posted for {', '.join(result['posted']) or 'no month'}; "
                 f"monthly statements for {', '.join(issued)}")
