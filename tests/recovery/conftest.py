"""Recovery fixtures: the policies in force (collateral, risk with a wide quote band, servicing, recovery),
reference prices for BTC, ETH and the test securities, and facilities pledged from custody."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.lending.conftest import give_holdings
from tests.lending.conftest import prices as prices  # noqa: F401 (fixture)
from tests.risk.conftest import policy as policy  # noqa: F401 (fixture)


@pytest.fixture
def book(policy, prices):  # noqa: F811
    return policy


def set_prices(**quotes):
    """Reference prices through the price authority: BTC=…, ETH=…, or a security code as s00005=…"""
    from lending.risk import services
    from portal.audit import SYSTEM

    rows = [{"source_code": "test", "asset": k[1:] if k.startswith("s") else k, "price_hkd": Decimal(str(v))} for k, v in quotes.items()]
    services.source_ensure(code="test", name="Test feed")
    return services.quotes_record(actor=SYSTEM, strict=True, rows=rows)


def pledged_facility(client, *, holdings: dict, drawn="0", officer=None):
    """A facility whose collateral is pledged from the client's custody (quantities of instruments at the
    haircuts of the policy in force), its servicing terms, and its valuation stored by the engine."""
    from django.db import transaction
    from django.utils import timezone

    from lending import selectors as lending_selectors
    from lending.collateral import services as custody
    from lending.collateral.models import Instrument
    from lending.collateral.selectors import haircuts_for
    from lending.ledger import ledger_post
    from lending.models import CollateralPosition, Facility, FacilityApplication, TxnKind
    from lending.risk.services import facility_changed
    from lending.servicing.interest import terms_ensure

    give_holdings(client)
    in_force = lending_selectors.policy_current()
    cuts = haircuts_for(policy=in_force)
    with transaction.atomic():
        app = FacilityApplication.objects.create(client=client, requested_limit=Decimal("90000000"), purpose="test", decided_by=officer, state="active")
        facility = Facility.objects.create(client=client, application=app, limit=Decimal("90000000"), policy=in_force,
                                           letter_sha256="0" * 64, accepted_at=timezone.now())
        for code, qty in holdings.items():
            i = Instrument.objects.get(code=code)
            kind = "virtual_asset" if i.is_virtual_asset else "securities"
            CollateralPosition.objects.create(facility=facility, kind=kind, instrument=i, asset=code if kind == "virtual_asset" else "",
                                              quantity=Decimal(str(qty)), haircut=cuts[i.pk], description=i.name_en)
            custody.custody_pledge(client_id=client.pk, instrument_id=i.pk, quantity=Decimal(str(qty)), facility_id=facility.pk, actor=client,
                                   reference=facility.reference)
        if Decimal(str(drawn)):
            ledger_post(facility=facility, kind=TxnKind.DRAWDOWN, amount=Decimal(str(drawn)), reference="test drawdown")
            facility.save(update_fields=["drawn_balance"])
        terms_ensure()
        facility_changed(facility_id=facility.pk)
    return Facility.objects.get(pk=facility.pk)


def custody_consistent(facility) -> bool:
    """Custody: each position's quantity is what the custody ledger has pledged to the facility, and every
    balance equals the sum of its entries."""
    from lending.collateral import selectors as custody
    from lending.collateral.models import CustodyBalance

    for p in facility.positions.all():
        if p.instrument_id and custody.pledged_to_facility(facility_id=facility.pk, instrument_id=p.instrument_id) != p.quantity:
            return False
    for b in CustodyBalance.objects.filter(client_id=facility.client_id):
        if custody.ledger_totals(client_id=b.client_id, instrument_id=b.instrument_id) != (b.held, b.pledged):
            return False
    return True


def ledger_ok() -> bool:
    from lending.ledger import ledger_check

    return ledger_check().ok
