"""Demo lending: policy v1 in force, prices, a watch list, applications in every state, live facilities.

Run by ``manage.py seed_demo`` after onboarding.demo and disclosures.demo. Idempotent: it
does nothing the second time (keyed on the policy and on a marker watch-list entry).

``client_make_eligible`` walks a client through the onboarding and disclosures services
(profile, margin account confirmed by staff, suitability questionnaire, disclosures
acknowledged); the benchmark and the browser test use it too.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from portal.audit import SYSTEM
from portal.models import User
from portal.permissions import Role

from . import selectors, services
from .models import AppState, FacilityApplication

POLICY_V1 = {
    "btc_haircut": "0.60",
    "eth_haircut": "0.65",
    "securities_haircuts": {"A": "0.30", "B": "0.50", "C": "0.70", "E": "0.25"},
    "va_max_share": "0.40",
    "price_max_age_minutes": 15,
    "officer_authority_default": "5000000",
    "watch_level": "0.90",
    "warning_levels": ["0.80", "0.90"],
    "margin_call_level": "1.00",
    "close_out_level": "1.30",
    "cure_days": 2,
    "client_exposure_limit": "50000000",
    "firm_exposure_limit": "5000000000",
    "client_concentration_max": "0.10",
    # Collateral concentration per client: one instrument or issuer at most 70% of the client's lending value,
    # one sector 85% (firm-wide limits as the marginable list's defaults).
    "marginable": {"instrument_concentration_max": "0.70", "issuer_concentration_max": "0.70", "sector_concentration_max": "0.85"},
}

PROFILE = {
    "client_type": "individual",
    "id_document_type": "hkid",
    "date_of_birth": "1982-06-15",
    "nationality": "Hong Kong",
    "residential_address": "Flat 8B, 3 Queen's Road Central, Central",
    "phone": "+852 9000 0000",
    "employment_status": "employed",
    "employer": "Harbour Holdings Ltd",
    "occupation": "Director",
    "annual_income": "3000000.00",
    "net_worth": "60000000.00",
    "liquid_assets": "15000000.00",
    "source_of_wealth": "Salary and investments",
}

# A growth-profile client with VA knowledge (training and trading experience).
ANSWERS = [
    {"income_stability": "stable", "emergency_reserve": "six_months", "va_share": "10_30"},
    {"objective": "growth", "horizon": "1_3"},
    {"loss_reaction": "hold", "max_loss": "15_30"},
    {"shares_years": 10, "shares_transactions_3y": 120, "margin_years": 5, "margin_transactions_3y": 40, "derivative_years": 3,
     "derivative_transactions_3y": 12, "va_years": 2, "va_transactions_3y": 30, "va_assets": "BTC and ETH on a licensed platform", "va_frequency": "monthly"},
    {"va_training": True, "va_course": "HKU SPACE Certificate in Virtual Assets", "va_course_provider": "HKU SPACE, 2024",
     "va_work": False, "derivative_training": False, "derivative_work": False},
]

WATCH_LIST = [
    ("CHAN, Tai Man", "Chan Tai-man\n陳大文", "sanctions"),
    ("PETROV, Ivan Sergeyevich", "Ivan Petrov", "sanctions"),
    ("LAZARUS GROUP", "Hidden Cobra", "sanctions"),
    ("HO, Wing Kei", "", "pep"),
    ("KOVALENKO, Dmytro", "D. Kovalenko", "internal"),  # the firm's own list (a former client it will not onboard again)
]


def client_make_eligible(*, user, staff, index: int = 0) -> None:
    """Make ``user`` eligible for VA margin financing through the onboarding and disclosures services."""
    from disclosures import selectors as dsel
    from disclosures import services as dsvc
    from onboarding import services as osvc
    from onboarding.selectors import client_facts
    from portal.products import Product

    facts = client_facts(user=user)
    if facts.profile is None or not facts.profile.is_complete:
        profile = osvc.profile_update(user=user, data=PROFILE | {
            "legal_name": (user.full_name or user.email).upper(), "id_document_number": f"Z{index:07d}",
            "margin_account_number": f"M-{700000 + index}", "preferred_language": user.preferred_language,
        })
    else:
        profile = facts.profile
    if not profile.margin_account_confirmed:
        osvc.profile_confirm_margin_account(profile_id=profile.pk, actor=staff)
    if not client_facts(user=user).assessment_valid:
        assessment = osvc.assessment_start(client=user)
        for step, answers in enumerate(ANSWERS):
            osvc.assessment_save_step(assessment_id=assessment.pk, actor=user, step=step, data=answers)
        osvc.assessment_complete(assessment_id=assessment.pk, actor=user)
    for status in dsel.outstanding_documents(user=user, product=Product.VA_MARGIN):
        version = dsel.current_version_by_code(code=status.code)
        serving = dsvc.version_serve(user=user, version=version, language="en")
        dsvc.acknowledgement_record(
            user=user, version_id=version.pk, language="en", content_hash=serving.content_hash, serving_token=serving.token,
            confirmed_read_and_understood=True, confirmed_invited_to_ask_and_seek_advice=True,
        )


def policy_ensure(*, maker, checker):
    policy = selectors.policy_current()
    if policy is None:
        proposed = services.policy_propose(actor=maker, numbers=POLICY_V1, reason="Initial collateral policy (SMF Guidelines; SFC circular 26EC5).")
        policy = services.policy_approve(actor=checker, policy_id=proposed.pk, note="Approved for launch.")
    from lending.servicing.demo import policy_ensure as servicing_policy_ensure

    servicing_policy_ensure(maker=maker, checker=checker)  # facility letters state the rate and fees
    from lending.recovery.demo import policy_ensure as recovery_policy_ensure

    recovery_policy_ensure(maker=maker, checker=checker)  # close-outs are planned by it
    return policy


def prices_ensure() -> None:
    """Opening quotes from the demo's price sources, through the risk engine's governance (the reference
    is their median); the risk demo then moves them."""
    from lending.risk import services as risk_services

    if not selectors.prices_current():
        for code, name in risk_services.DEMO_SOURCES:
            risk_services.source_ensure(code=code, name=name)
        now = timezone.now()
        rows = []
        for i, (code, _name) in enumerate(risk_services.DEMO_SOURCES):
            drift = Decimal("1") + Decimal(i - 1) / 1000
            rows += [
                {"source_code": code, "asset": "BTC", "price_hkd": (Decimal("760000") * drift).quantize(Decimal("0.01")), "as_of": now},
                {"source_code": code, "asset": "ETH", "price_hkd": (Decimal("27000") * drift).quantize(Decimal("0.01")), "as_of": now},
            ]
        risk_services.quotes_record(actor=SYSTEM, rows=rows)
    from lending.collateral.demo import securities_prices_ensure

    securities_prices_ensure()


def _extra_client(i: int) -> User:
    from allauth.account.models import EmailAddress

    from portal.demo import DEMO_PASSWORD
    from portal.services import user_create

    email = f"borrower{i:02d}@demo.vamargin.hk"
    user = User.objects.filter(email=email).first()
    if user is None:
        user = user_create(email=email, password=DEMO_PASSWORD, role=Role.CLIENT, full_name=f"Demo Borrower {i:02d}")
        EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
    return user


def _lines(i: int) -> list[dict]:
    """Collateral pledged from the borrower's holdings (lending.collateral.demo holds them)."""
    from lending.collateral.demo import pledge_lines

    return pledge_lines(i)


def seed(stdout) -> None:
    officer = User.objects.get(email="officer@demo.vamargin.hk")
    officer2 = User.objects.get(email="officer2@demo.vamargin.hk")
    manager = User.objects.get(email="manager@demo.vamargin.hk")
    # Proposal and approval each in its own transaction: approval revalues the book, whose lock comes
    # before any audit row of the same transaction (lending.locks).
    policy = policy_ensure(maker=officer, checker=manager)
    prices_ensure()
    with transaction.atomic():
        if selectors.watchlist().exists():
            stdout.write("  lending demo already seeded")
            return
        for name, aliases, category in WATCH_LIST:
            services.watchlist_add(actor=officer, name=name, aliases=aliases, category=category, note="Demo entry")
    stdout.write(f"  collateral policy v{policy.version} in force; BTC/ETH prices loaded; {len(WATCH_LIST)} watch-list entries")

    # Demo clients from onboarding where eligible, plus extra borrowers for volume.
    try:
        from onboarding.demo import DEMO_CLIENTS
    except ImportError:
        DEMO_CLIENTS = []  # noqa: N806
    emails = [getattr(c, "email", c) for c in DEMO_CLIENTS]
    borrowers = []
    for user in User.objects.filter(email__in=emails):
        try:
            if not services.submission_blockers(user=user):
                borrowers.append(user)
        except Exception as exc:  # noqa: BLE001 - a demo client's own onboarding state is theirs
            stdout.write(f"  skipped {user.email}: {exc}")
    for i in range(12):
        user = _extra_client(i)
        with transaction.atomic():
            client_make_eligible(user=user, staff=officer, index=i)
        borrowers.append(user)
    # The back office's end-of-day positions and the custody statement: what each borrower can pledge.
    from lending.collateral import selectors as collateral_selectors
    from lending.collateral.demo import holdings_load

    holdings_load(accounts={collateral_selectors.margin_account_of(user_id=u.pk): i for i, u in enumerate(borrowers)
                            if collateral_selectors.margin_account_of(user_id=u.pk)})

    # Applications in every state.
    plan = [
        "active", "active", "active", "active", "awaiting_decision", "awaiting_decision", "awaiting_decision",
        "awaiting_second_approval", "approved", "declined", "returned_to_client", "withdrawn", "draft", "active_suspended",
        "active_closed",
    ]
    for i, target in enumerate(plan):
        user = borrowers[i % len(borrowers)]
        limit = "6500000" if target == "awaiting_second_approval" else str(1_500_000 + 250_000 * i)
        app = services.application_create(user=user, requested_limit=limit, purpose="Finance VA trading against my securities portfolio.", lines=_lines(i))
        if target == "draft":
            continue
        if target == "withdrawn":
            services.application_withdraw(user=user, application_id=app.pk)
            continue
        services.application_submit(user=user, application_id=app.pk, confirm_terms=True)
        # The review runs in the worker after commit; run it here so the demo is complete at once.
        services.review_run(application_id=app.pk, run=1)
        app = FacilityApplication.objects.get(pk=app.pk)
        if target == "awaiting_decision" or app.state != AppState.AWAITING_DECISION:
            continue
        rec = app.recommended_limit or Decimal("0")
        if target == "declined":
            services.application_decline(actor=officer2, application_id=app.pk, reason_codes=["credit_score"], note="Demo decline.")
        elif target == "returned_to_client":
            services.application_return(actor=officer, application_id=app.pk, questions="Please confirm where the bitcoin is held and since when.")
        elif target == "awaiting_second_approval":
            from lending.review import round_down_limit

            services.application_approve(actor=officer2, application_id=app.pk, limit=min(round_down_limit(app.lending_value, Decimal("10000")), Decimal("6500000")))
        elif rec > 0:
            services.application_approve(actor=officer, application_id=app.pk, limit=rec, conditions="Quarterly collateral review.")
            app = FacilityApplication.objects.get(pk=app.pk)
            if app.state == AppState.AWAITING_SECOND_APPROVAL:
                services.application_second_approve(actor=manager, application_id=app.pk)
                app = FacilityApplication.objects.get(pk=app.pk)
            if target.startswith("active") and app.state == AppState.APPROVED:
                facility = services.application_accept(user=user, application_id=app.pk, letter_sha256=app.letter_sha256)
                if target == "active_closed":
                    # Never drawn, then closed: its pledges go back to the client's free holdings.
                    from lending.servicing.lifecycle import facility_wind_up

                    facility_wind_up(actor=manager, facility_id=facility.pk)
                    continue
                services.facility_drawdown(actor=officer, facility_id=facility.pk, amount=(facility.available * Decimal("0.6")).quantize(Decimal("0.01")), reference="Initial drawdown")
                if target == "active_suspended":
                    services.facility_suspend(actor=manager, facility_id=facility.pk, reason="Demo: client KYC refresh overdue.")
    _screening_cleared(officer=officer)
    counts = selectors.queue_counts()
    stdout.write("  applications by state: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


def _screening_cleared(*, officer) -> None:
    """A borrower whose name matches a PEP-list namesake: the review refers it, compliance checks the
    identifiers and clears the match, so the officer may now decide (Screening hits → Cleared)."""
    from allauth.account.models import EmailAddress

    from portal.demo import DEMO_PASSWORD
    from portal.services import user_create

    compliance = User.objects.get(email="compliance@demo.vamargin.hk")
    email = "wingkei.ho@demo.vamargin.hk"  # a namesake of "HO, Wing Kei" on the demo watch list (PEP)
    user = User.objects.filter(email=email).first()
    if user is None:
        user = user_create(email=email, password=DEMO_PASSWORD, role=Role.CLIENT, full_name="Ho Wing Kei")
        EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
    with transaction.atomic():
        client_make_eligible(user=user, staff=officer, index=40)
    from lending.collateral import selectors as collateral_selectors
    from lending.collateral.demo import holdings_load

    holdings_load(accounts={collateral_selectors.margin_account_of(user_id=user.pk): 40})
    app = services.application_create(user=user, requested_limit="2000000", purpose="Finance VA trading against my securities portfolio.", lines=_lines(12))
    services.application_submit(user=user, application_id=app.pk, confirm_terms=True)
    services.review_run(application_id=app.pk, run=1)
    app = FacilityApplication.objects.get(pk=app.pk)
    if app.state == AppState.AWAITING_DECISION and app.screening_status == "pending":
        services.application_screening_decide(
            actor=compliance, application_id=app.pk, confirmed=False,
            note="Demo: the listed person was born in 1958 and holds a different HKID; the client is not the listed person.",
        )
