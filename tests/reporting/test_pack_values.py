"""The SMF pack values pledged collateral by instrument, issuer and sector at the governed prices, and reads
client credit limits as they stood at the report date (credit-limit history), listing the period's changes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from tests.reporting.conftest import make_facility

pytestmark = pytest.mark.django_db


def test_market_value_by_instrument_issuer_and_sector_at_governed_prices(book, alice, charlie, officer):
    from lending.collateral import services as custody
    from lending.collateral.models import Instrument
    from lending.reporting import smf
    from portal.audit import SYSTEM
    from tests.lending.conftest import set_prices

    set_prices(btc=Decimal("760000.00"), securities={"00700": Decimal("400.00")})
    tencent, btc = Instrument.objects.get(code="00700"), Instrument.objects.get(code="BTC")
    # Pledged to the facilities the book values (a pack counts the collateral of the book it reports).
    facilities = {c.pk: make_facility(c).pk for c in (alice, charlie)}
    custody.holding_set(client_id=alice.pk, instrument=tencent, quantity=Decimal("1000"))
    custody.holding_set(client_id=charlie.pk, instrument=tencent, quantity=Decimal("500"))
    custody.holding_set(client_id=alice.pk, instrument=btc, quantity=Decimal("2"))
    custody.custody_pledge(client_id=alice.pk, instrument_id=tencent.pk, quantity="400", facility_id=facilities[alice.pk], actor=SYSTEM)
    custody.custody_release(client_id=alice.pk, instrument_id=tencent.pk, quantity="100", facility_id=facilities[alice.pk], actor=SYSTEM)
    custody.custody_pledge(client_id=charlie.pk, instrument_id=tencent.pk, quantity="200", facility_id=facilities[charlie.pk], actor=SYSTEM)
    custody.custody_pledge(client_id=alice.pk, instrument_id=btc.pk, quantity="1.5", facility_id=facilities[alice.pk], actor=SYSTEM)
    inst = smf.compute(as_of=timezone.localdate())["collateral_concentration"]["instruments"]
    # BTC 1.5 × 760,000 = 1,140,000 first; Tencent 500 × 400 = 200,000; total 1,340,000.
    assert [(r["code"], r["price"], r["market_value"], r["share"]) for r in inst["by_instrument"]] == [
        ("BTC", "760000.00", "1140000.00", "0.8507"), ("00700", "400.00", "200000.00", "0.1493")]
    assert inst["market_value"] == "1340000.00" and inst["unpriced"] == []
    sectors = {r["name"]: r for r in inst["by_sector"]}
    assert sectors[tencent.sector]["market_value"] == "200000.00" and sectors[tencent.sector]["share"] == "0.1493"
    issuers = {r["name"]: r["market_value"] for r in inst["by_issuer"]}
    assert issuers[tencent.issuer or tencent.name_en] == "200000.00"
