"""An instrument whose standing changes (a security suspended or resumed) reaches the live book through the
engine: its positions at the policy's haircut, its holders' sums rebuilt and banded; nobody else is written."""

from decimal import Decimal

import pytest

from lending.collateral.models import Instrument
from lending.models import CollateralPosition
from lending.risk.models import FacilityCoefficients, MarginCall, RevaluationRun
from lending.risk.revaluation import instruments_apply, revalue_book
from tests.collateral import test_instrument_master
from tests.collateral.conftest import book_facility

pytestmark = pytest.mark.django_db

market = test_instrument_master.market  # the same four prices


def test_a_suspension_rehaircuts_its_holders_bands_them_and_opens_their_calls(market, alice, charlie):
    tencent = book_facility(alice, holdings={"00700": 1000, "00005": 1000}, drawn="250000")  # LV 280,000 + 56,000: util 0.7440
    hsbc = book_facility(charlie, holdings={"00005": 5000}, drawn="250000")
    revalue_book(trigger="beat")
    hsbc_written = FacilityCoefficients.objects.get(facility=hsbc).updated_at
    Instrument.objects.filter(code="00700").update(suspended=True)

    counts = instruments_apply(instrument_ids=[Instrument.objects.get(code="00700").pk])

    assert counts == {"positions_rehaircut": 1, "facilities_revalued": 1, "band_changes": 1, "calls_opened": 1}
    assert CollateralPosition.objects.get(facility=tencent, instrument__code="00700").haircut == Decimal("1.0000")  # the default: zero
    assert CollateralPosition.objects.get(facility=tencent, instrument__code="00005").haircut == Decimal("0.3000")
    tencent.refresh_from_db()
    assert tencent.lending_value == Decimal("56000.00") and tencent.band == "close_out"
    assert MarginCall.objects.get().facility_id == tencent.pk
    assert FacilityCoefficients.objects.get(facility=hsbc).updated_at == hsbc_written
    assert RevaluationRun.objects.filter(trigger="instrument").count() == 1


def test_resuming_trading_restores_the_haircut_and_an_unheld_instrument_writes_nothing(market, alice):
    facility = book_facility(alice, holdings={"00700": 1000}, drawn="100000")
    tencent = Instrument.objects.get(code="00700")
    Instrument.objects.filter(pk=tencent.pk).update(suspended=True)
    instruments_apply(instrument_ids=[tencent.pk])
    Instrument.objects.filter(pk=tencent.pk).update(suspended=False)
    assert instruments_apply(instrument_ids=[tencent.pk])["positions_rehaircut"] == 1
    assert CollateralPosition.objects.get(facility=facility).haircut == Decimal("0.3000")
    facility.refresh_from_db()
    assert facility.lending_value == Decimal("280000.00")

    unheld = Instrument.objects.get(code="00388")
    runs = RevaluationRun.objects.count()
    assert instruments_apply(instrument_ids=[unheld.pk]) == {"positions_rehaircut": 0, "facilities_revalued": 0, "band_changes": 0, "calls_opened": 0}
    assert RevaluationRun.objects.count() == runs
