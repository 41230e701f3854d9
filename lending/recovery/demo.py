"""Demo close-out and recovery: the recovery policy in force, and facilities walked through close-out by the
moving market (a plan proposed, one executing with a partial fill and a failed sale, one completed), a debt in
collections at 45 days past due, one written off and one recovered.

``policy_ensure`` is called by lending's demo with the other policies; ``seed`` runs after the risk and
servicing demos. Idempotent (keyed on the demo's recovery clients).
"""

from __future__ import annotations

RECOVERY_V1 = {
    "target_utilisation": "0.7500",
    "liquidation_order": ["BTC", "ETH", "securities"],
    "securities_order": "haircut",
    "va_sale_increment": "0.0001",
    "debt_due_business_days": 2,
    "collections_after_days": 7,
    "dunning_days": [1, 7, 14, 30, 60, 90],
}


def policy_ensure(*, maker, checker):
    from . import selectors, services

    policy = selectors.recovery_policy_current()
    if policy is None:
        proposed = services.recovery_policy_propose(actor=maker, numbers=RECOVERY_V1,
                                                    reason="Initial close-out and collections policy: VA first, then the most liquid securities, to 75%.")
        policy = services.recovery_policy_decide(actor=checker, policy_id=proposed.pk, approve=True, note="Approved for launch.")
    return policy


# A profit warning sends Meituan (03690) down 55% in four quotes the price authority accepts (each within
# its band); only the recovery demo's borrowers hold it, so the rest of the demo book is untouched.
CRASH_CODE = "03690"
CRASH_STEPS = ("0.80", "0.80", "0.80", "0.88")
# (what the borrower pledges, utilisation drawn to before the fall, where the demo leaves the close-out)
CASES = [
    ({"03690": 10_000, "00005": 13_800}, "0.975", "proposed"),
    ({"03690": 10_000, "00005": 13_800}, "0.975", "executing"),
    ({"03690": 10_000, "00005": 13_800}, "0.975", "completed"),
    ({"03690": 20_000}, "0.95", "collections"),
    ({"03690": 20_000}, "0.95", "written_off"),
    ({"03690": 20_000}, "0.95", "recovered"),
]
FIRST_INDEX = 60  # margin accounts M-700060…: 0–11 are the book's borrowers, 40 is Wing Kei Ho (lending.demo)


def _borrower(i: int, officer):
    from allauth.account.models import EmailAddress
    from django.db import transaction

    from lending.demo import client_make_eligible
    from portal.demo import DEMO_PASSWORD
    from portal.models import User
    from portal.permissions import Role
    from portal.services import user_create

    email = f"borrower{i:02d}@demo.vamargin.hk"
    user = User.objects.filter(email=email).first()
    if user is None:
        user = user_create(email=email, password=DEMO_PASSWORD, role=Role.CLIENT, full_name=f"Demo Borrower {i:02d}")
        EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
    with transaction.atomic():
        client_make_eligible(user=user, staff=officer, index=i)
    return user


def _holdings(users_and_holdings) -> None:
    """The back office's end-of-day positions for the recovery demo's accounts (one batch per account)."""
    from django.utils import timezone

    from lending.collateral import selectors as collateral_selectors
    from lending.collateral import services as collateral
    from portal.audit import SYSTEM

    day = timezone.localdate()
    for user, holdings in users_and_holdings:
        account = collateral_selectors.margin_account_of(user_id=user.pk)
        rows = ["batch_id,as_of,account,instrument,quantity"] + [f"DEMO-REC-{day:%Y%m%d}-{account},{day},{account},{code},{qty * 2}"
                                                                for code, qty in holdings.items()]
        collateral.batch_import(kind="positions_eod", actor=SYSTEM, channel="command", content="\n".join(rows) + "\n")


def _facility(user, holdings: dict, utilisation: str, officer, manager):
    from decimal import Decimal

    from lending import services as lending
    from lending.models import AppState, FacilityApplication

    lines = [{"kind": "securities", "instrument": code, "quantity": str(qty)} for code, qty in holdings.items()]
    app = lending.application_create(user=user, requested_limit="4000000", purpose="Demo: VA trading against a concentrated portfolio", lines=lines)
    lending.application_submit(user=user, application_id=app.pk, confirm_terms=True)
    lending.review_run(application_id=app.pk, run=1)
    app = FacilityApplication.objects.get(pk=app.pk)
    if app.state != AppState.AWAITING_DECISION:
        return None
    lending.application_approve(actor=officer, application_id=app.pk, limit=app.lending_value, conditions="Concentrated collateral: reviewed monthly.")
    app = FacilityApplication.objects.get(pk=app.pk)
    if app.state == AppState.AWAITING_SECOND_APPROVAL:
        lending.application_second_approve(actor=manager, application_id=app.pk, note="Demo second approval.")
        app = FacilityApplication.objects.get(pk=app.pk)
    if app.state != AppState.APPROVED:
        return None
    facility = lending.application_accept(user=user, application_id=app.pk, letter_sha256=app.letter_sha256)
    amount = min(facility.available, (facility.lending_value * Decimal(utilisation)).quantize(Decimal("0.01")))
    lending.facility_drawdown(actor=officer, facility_id=facility.pk, amount=amount, reference="Demo drawdown")
    return facility


def _crash() -> None:
    from decimal import Decimal

    from django.db import transaction
    from django.utils import timezone

    from lending import selectors as lending_selectors
    from lending.collateral.demo import DEMO_SOURCE
    from lending.risk import services as risk
    from portal.audit import SYSTEM

    for factor in CRASH_STEPS:
        with transaction.atomic():
            price = lending_selectors.prices_current()[CRASH_CODE].price_hkd
            risk.quotes_record(actor=SYSTEM, rows=[{"source_code": DEMO_SOURCE, "asset": CRASH_CODE,
                                                    "price_hkd": (price * Decimal(factor)).quantize(Decimal("0.01")), "as_of": timezone.now()}])


def _sell(plan, officer, *, fraction, fail_code: str = "") -> None:
    """The dealing desk's executions: each line sold at the plan's price less 1% (``fraction`` of it), or a failed sale."""
    from decimal import ROUND_FLOOR, Decimal

    from . import services

    for line in plan.lines.order_by("sequence"):
        if line.code == fail_code:
            services.execution_record(actor=officer, plan_id=plan.pk, line_id=line.pk, status="failed", quantity=str(line.remaining),
                                      note="Demo: no bids within the limit after the profit warning; retry at the open.")
            continue
        qty = line.remaining if fraction == 1 else ((line.remaining * Decimal(fraction)) / line.lot).to_integral_value(rounding=ROUND_FLOOR) * line.lot
        if qty <= 0:
            continue
        price = (line.price_at_plan * Decimal("0.99")).quantize(Decimal("0.01"))
        services.execution_record(actor=officer, plan_id=plan.pk, line_id=line.pk, quantity=str(qty), price=str(price),
                                  venue_reference=f"DEMO-{plan.reference}-{line.sequence}")


def seed(stdout) -> None:
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from lending.risk import services as risk
    from lending.risk.models import MarginCall
    from portal.models import User

    from . import services
    from .models import Debt, LiquidationPlan, PlanState

    officer = User.objects.get(email="officer@demo.vamargin.hk")
    manager = User.objects.get(email="manager@demo.vamargin.hk")
    manager2 = User.objects.filter(email="manager2@demo.vamargin.hk").first() or manager
    if LiquidationPlan.objects.exists() or User.objects.filter(email=f"borrower{FIRST_INDEX:02d}@demo.vamargin.hk").exists():
        stdout.write("  recovery demo already seeded")
        return
    policy_ensure(maker=officer, checker=manager)
    users = [(_borrower(FIRST_INDEX + i, officer), holdings) for i, (holdings, _u, _s) in enumerate(CASES)]
    _holdings(users)
    facilities = [_facility(user, holdings, utilisation, officer, manager) for (user, holdings), (_h, utilisation, _s) in zip(users, CASES, strict=True)]
    _crash()
    services.plans_prepare()
    done = []
    for facility, (_h, _u, target) in zip(facilities, CASES, strict=True):
        call = MarginCall.objects.filter(facility_id=facility.pk, state="escalated").first() if facility else None
        if call is None:
            continue
        risk.margin_call_propose(actor=officer, call_id=call.pk, resolution="close_out",
                                 reason="Demo: close-out level after the Meituan profit warning; the client cannot top up.")
        if target == "proposed":
            done.append(target)
            continue
        risk.margin_call_decide(actor=manager, call_id=call.pk, approve=True, note="Demo: sell per the plan.")
        plan = LiquidationPlan.objects.get(call=call, state=PlanState.APPROVED)
        if target == "executing":
            _sell(plan, officer, fraction="0.5", fail_code=CRASH_CODE)
        else:
            _sell(plan, officer, fraction=1)
        debt = Debt.objects.filter(facility_id=facility.pk).first()
        if debt is not None:
            # Demo only: the debt is dated back so the queue shows it 45 days past due (its sale happened "then").
            with transaction.atomic():
                Debt.objects.filter(pk=debt.pk).update(opened_at=timezone.now() - timedelta(days=48), due_on=timezone.localdate() - timedelta(days=45))
            if target in ("written_off", "recovered"):
                services.write_off_propose(actor=manager, debt_id=debt.pk, reason="Demo: client insolvent; no assets found in Hong Kong.")
                services.write_off_decide(actor=manager2, debt_id=debt.pk, approve=True, note="Demo: agreed, irrecoverable.")
            if target == "recovered":
                services.recovery_record(actor=officer, debt_id=debt.pk, amount="25000", reference="Demo: liquidator's dividend", final=True)
        done.append(target)
    review = services.debts_review()
    stdout.write(f"  recovery policy v{policy_ensure(maker=officer, checker=manager).version} in force; close-outs: {', '.join(done) or 'none'}; "
                 f"debts reviewed {review}")
