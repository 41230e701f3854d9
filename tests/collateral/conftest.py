"""Collateral fixtures: clients with confirmed securities margin accounts, a back-office key, holdings."""

from __future__ import annotations

import pytest

from tests.lending.conftest import approved_policy, draft, eligible_client, facts, outsider, policy, prices  # noqa: F401


def margin_client(user, *, account: str, officer):
    from onboarding import services as onboarding

    profile = onboarding.profile_get_or_create(user=user)
    onboarding.profile_update(user=user, data={"margin_account_number": account})
    onboarding.profile_confirm_margin_account(profile_id=profile.pk, actor=officer)
    return user


@pytest.fixture
def accounts(alice, charlie, officer):
    """alice holds margin account M-1001, charlie M-2002 (both confirmed by an officer)."""
    margin_client(alice, account="M-1001", officer=officer)
    margin_client(charlie, account="M-2002", officer=officer)
    return {"alice": "M-1001", "charlie": "M-2002"}


@pytest.fixture
def machine_key(credit_manager):
    from lending.collateral import services

    key, token = services.machine_key_create(actor=credit_manager, name="Back office")
    key.token = token
    return key


def positions_csv(batch_id: str, lines, *, as_of="2026-03-02") -> str:
    rows = ["batch_id,as_of,account,instrument,quantity"] + [f"{batch_id},{as_of},{a},{i},{q}" for a, i, q in lines]
    return "\n".join(rows) + "\n"


def statement_csv(batch_id: str, lines, *, as_of="2026-03-02") -> str:
    rows = ["batch_id,as_of,account,instrument,held,pledged"] + [f"{batch_id},{as_of},{a},{i},{h},{p}" for a, i, h, p in lines]
    return "\n".join(rows) + "\n"


@pytest.fixture
def holdings(accounts, db):
    """alice: 2,000 HSBC (00005), 500 Tencent (00700); 2 BTC, 10 ETH in custody. charlie: 1,000 HSBC."""
    from lending.collateral import services
    from portal.audit import SYSTEM

    services.batch_import(kind="positions_eod", actor=SYSTEM, channel="command", content=positions_csv(
        "EOD-1", [("M-1001", "00005", 2000), ("M-1001", "700", 500), ("M-2002", "00005", 1000)]))
    services.batch_import(kind="custody_statement", actor=SYSTEM, channel="command", content=statement_csv(
        "CS-1", [("M-1001", "BTC", "2", "0"), ("M-1001", "ETH", "10", "0")]))
    return accounts


def set_prices(quotes: dict):
    """Reference prices {code: HKD} (BTC/ETH or securities): quotes from the test feed through the price authority."""
    from lending.risk import services
    from portal.audit import SYSTEM

    services.source_ensure(code="test", name="Test feed")
    return services.quotes_record(actor=SYSTEM, strict=True, rows=[{"source_code": "test", "asset": code, "price_hkd": p} for code, p in quotes.items()])


def book_facility(client, *, holdings: dict, drawn="0", in_force=None):
    """A facility holding {code: quantity} (securities and BTC/ETH), with haircuts of the policy in force.

    Built as rows (like tests/risk's factory) so a test can shape a book quickly; the engine's sums are built
    by the engine's own SQL.
    """
    from decimal import Decimal

    from django.db import transaction
    from django.utils import timezone

    from lending import selectors as lending_selectors
    from lending.collateral.models import Instrument
    from lending.collateral.selectors import haircuts_for
    from lending.models import CollateralPosition, Facility, FacilityApplication
    from lending.risk import book as risk_book

    in_force = in_force or lending_selectors.policy_current()
    cuts = haircuts_for(policy=in_force)
    with transaction.atomic():
        app = FacilityApplication.objects.create(client=client, requested_limit=Decimal("90000000"), purpose="test")
        facility = Facility.objects.create(client=client, application=app, limit=Decimal("90000000"), drawn_balance=Decimal(str(drawn)),
                                           policy=in_force, letter_sha256="0" * 64, accepted_at=timezone.now())
        rows = []
        for code, qty in holdings.items():
            i = Instrument.objects.get(code=code)
            kind = "virtual_asset" if i.is_virtual_asset else "securities"
            rows.append(CollateralPosition(facility=facility, kind=kind, instrument=i, asset=code if kind == "virtual_asset" else "",
                                           quantity=Decimal(str(qty)), haircut=cuts[i.pk], description=i.name_en))
        CollateralPosition.objects.bulk_create(rows)
        risk_book.coefficients_refresh(now=timezone.now(), facility_ids=[facility.pk])
    return Facility.objects.get(pk=facility.pk)
