"""Lending fixtures: a policy in force, fresh prices, and eligible clients.

Eligibility, the client snapshot and the disclosure state come from the onboarding and
disclosures apps' selectors; ``facts`` lets a test describe a client's standing in those
apps (eligible by default) without walking through their questionnaires.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.helpers import make_user

POLICY_NUMBERS = {
    "btc_haircut": "0.60",
    "eth_haircut": "0.65",
    "securities_haircuts": {"A": "0.30", "B": "0.50", "C": "0.70"},
    "va_max_share": "0.40",
    "price_max_age_minutes": 15,
    "officer_authority_default": "5000000",
    "watch_level": "0.90",
    "margin_call_level": "1.00",
    "close_out_level": "1.30",
    "cure_days": 2,
    "client_exposure_limit": "50000000",
    "firm_exposure_limit": "5000000000",
    "client_concentration_max": "0.10",
    # No per-client collateral concentration limit (100%) for the tests of other rules: their applications pledge
    # one security. tests/collateral/test_concentration.py tests the limits with its own numbers.
    "marginable": {"instrument_concentration_max": "1", "issuer_concentration_max": "1", "sector_concentration_max": "1"},
}

BTC_PRICE = Decimal("760000.00")
ETH_PRICE = Decimal("27000.00")


def approved_policy(*, officer, credit_manager):
    """POLICY_NUMBERS proposed by an officer and approved by a credit manager: the policy in force."""
    from lending import services
    from tests.servicing.helpers import servicing_policy_in_force

    proposed = services.policy_propose(actor=officer, numbers=POLICY_NUMBERS, reason="Initial policy")
    policy = services.policy_approve(actor=credit_manager, policy_id=proposed.pk)
    servicing_policy_in_force(officer=officer, credit_manager=credit_manager)  # the letter states rates and fees
    from tests.recovery.helpers import recovery_policy_in_force

    recovery_policy_in_force(officer=officer, credit_manager=credit_manager)  # a close-out is planned by it
    return policy


@pytest.fixture
def policy(db, officer, credit_manager):
    return approved_policy(officer=officer, credit_manager=credit_manager)


# The securities the tests pledge, one per haircut class, each priced at HK$100.00 (so a line's
# market value is 100 × its quantity).
CLASS_INSTRUMENT = {"A": "00005", "B": "00004", "C": "00303"}
SECURITY_PRICE = Decimal("100.00")


def set_prices(btc=BTC_PRICE, eth=ETH_PRICE, securities=None):
    """Quotes from the test feed, through the risk engine's governance: with it the only source, the
    reference price is its quote (and the book is revalued at it). Securities: {code: price}."""
    from lending.risk import services
    from portal.audit import SYSTEM

    services.source_ensure(code="test", name="Test feed")
    return services.quotes_record(actor=SYSTEM, strict=True, rows=[
        {"source_code": "test", "asset": "BTC", "price_hkd": btc},
        {"source_code": "test", "asset": "ETH", "price_hkd": eth},
        *({"source_code": "test", "asset": code, "price_hkd": price} for code, price in (securities or {}).items()),
    ])


@pytest.fixture
def prices(db):
    return set_prices(securities={code: SECURITY_PRICE for code in CLASS_INSTRUMENT.values()})


def give_holdings(user, *, shares=1_000_000, btc="100", eth="1000"):
    """What the back office reports for ``user``: shares of each class's instrument, BTC and ETH in custody."""
    from django.db import transaction

    from lending.collateral import services as collateral
    from lending.collateral.models import Instrument

    with transaction.atomic():
        for code, qty in [*((c, shares) for c in CLASS_INSTRUMENT.values()), ("BTC", btc), ("ETH", eth)]:
            collateral.holding_set(client_id=user.pk, instrument=Instrument.objects.get(code=code), quantity=Decimal(str(qty)))


class Facts:
    """What the onboarding and disclosures apps say about each client (eligible unless told)."""

    def __init__(self):
        self.by_user: dict[int, dict] = {}

    def snapshot(self, user) -> dict:
        base = {
            "legal_name": user.full_name or user.email,
            "other_names": [],
            "date_of_birth": "1980-01-01",
            "margin_account_confirmed": True,
            "annual_income": "3000000.00",
            "net_worth": "60000000.00",
            "liquid_assets": "15000000.00",
            "risk_profile": 4,
            "va_knowledge": True,
            "derivative_knowledge": False,
            "professional_investor": True,
            "va_exposure_limit_pct": "30",
            "eligible": True,
            "unmet": [],
            "outstanding": [],
        }
        return base | self.by_user.get(user.pk, {})

    def set(self, user, **values) -> None:
        self.by_user.setdefault(user.pk, {}).update(values)


@pytest.fixture
def facts(monkeypatch):
    import disclosures.selectors as disclosure_selectors
    import onboarding.selectors as onboarding_selectors

    registry = Facts()

    def product_eligibility(*, user, product, facts=None, outstanding=None):
        snap = registry.snapshot(user)
        reqs = [onboarding_selectors.Requirement("margin_account", "Securities margin client", snap["margin_account_confirmed"],
                                                 "" if snap["margin_account_confirmed"] else "Margin account not confirmed.", "/onboarding/profile/")]
        reqs += [onboarding_selectors.Requirement(code, code, False, "Not met.", "/onboarding/") for code in snap["unmet"]]
        return onboarding_selectors.Eligibility(product=str(product), requirements=reqs)

    def client_facts(*, user):
        return None  # the stand-ins below read the registry instead

    def client_snapshot(*, user, facts=None):
        snap = registry.snapshot(user)
        return None if snap.get("no_profile") else snap

    def outstanding_documents(*, user, product):
        return [disclosure_selectors.DocumentStatus(**d) if isinstance(d, dict) else d for d in registry.snapshot(user)["outstanding"]]

    def clients_with_outstanding(*, product, user_ids=None):
        from portal.models import User

        users = User.objects.filter(pk__in=user_ids) if user_ids is not None else User.objects.all()
        return {u.pk for u in users if registry.snapshot(u)["outstanding"]}

    monkeypatch.setattr(onboarding_selectors, "product_eligibility", product_eligibility)
    monkeypatch.setattr(onboarding_selectors, "client_snapshot", client_snapshot)
    monkeypatch.setattr(onboarding_selectors, "client_facts", client_facts)
    monkeypatch.setattr(disclosure_selectors, "outstanding_documents", outstanding_documents)
    monkeypatch.setattr(disclosure_selectors, "clients_with_outstanding", clients_with_outstanding)
    return registry


@pytest.fixture
def eligible_client(alice, facts, policy, prices):
    """alice, eligible for VA margin financing, with a policy in force, fresh prices and holdings to pledge."""
    give_holdings(alice)
    return alice


@pytest.fixture
def outsider(charlie, facts):
    return charlie


def securities(value="10000000", cls="A", description=""):
    """A holding of the class's instrument worth ``value`` at the test price (HK$100 a share)."""
    return {"kind": "securities", "instrument": CLASS_INSTRUMENT[cls], "quantity": str(Decimal(value) / SECURITY_PRICE)}


def va(asset="BTC", quantity="1", custody="CUST-1"):
    return {"kind": "virtual_asset", "asset": asset, "quantity": quantity, "custody_reference": custody}


def draft(user, *, limit="3000000", lines=None):
    from lending import services

    give_holdings(user)  # what the back office reports for the client (idempotent)
    return services.application_create(user=user, requested_limit=limit, purpose="Trade VA", lines=lines or [securities(), va()])


def submitted(user, capture, **kwargs):
    """A draft submitted, with the credit review run (eagerly) on commit."""
    from lending import services
    from lending.models import FacilityApplication

    app = draft(user, **kwargs)
    with capture(execute=True):
        services.application_submit(user=user, application_id=app.pk, confirm_terms=True)
    return FacilityApplication.objects.get(pk=app.pk)


@pytest.fixture
def reviewed(eligible_client, django_capture_on_commit_callbacks):
    """alice's application, reviewed and awaiting a decision."""
    return submitted(eligible_client, django_capture_on_commit_callbacks)


@pytest.fixture
def big_officer(db):
    return make_user("account_officer", email="big@example.com", full_name="Big Officer", authority_limit=Decimal("20000000"))
