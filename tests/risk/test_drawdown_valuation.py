"""A drawdown values its facility once: the check of the available amount rebuilds the facility's sums,
and the engine bands it with the new balance from those sums (it is still the only writer)."""

from __future__ import annotations

from decimal import Decimal
from unittest import mock

import pytest

from lending import services
from lending.models import Facility
from lending.risk import book
from portal.errors import PortalError
from tests.lending import conftest as lending_fixtures
from tests.lending import test_decisions

pytestmark = pytest.mark.django_db

# Lending's fixtures: an accepted facility of an eligible client (its policy, prices and holdings).
eligible_client, facts, policy, prices, reviewed = (lending_fixtures.eligible_client, lending_fixtures.facts, lending_fixtures.policy,
                                                    lending_fixtures.prices, lending_fixtures.reviewed)
facility = test_decisions.facility


def _counting_refreshes():
    calls = []
    real = book.coefficients_refresh

    def spy(**kwargs):
        calls.append(kwargs.get("facility_ids"))
        return real(**kwargs)

    return calls, mock.patch.object(book, "coefficients_refresh", side_effect=spy)


def test_a_drawdown_rebuilds_the_facility_sums_once_and_stores_the_new_utilisation(facility, officer):
    calls, spy = _counting_refreshes()
    with spy:
        services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="1000000")
    assert calls == [[facility.pk]]
    stored = Facility.objects.get(pk=facility.pk)
    assert stored.drawn_balance == Decimal("1000000.00")
    assert stored.lending_value > 0
    assert stored.utilisation == (stored.drawn_balance / stored.lending_value).quantize(Decimal("0.0001"))


def test_a_repayment_still_rebuilds_the_sums_itself(facility, officer):
    services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="1000000")
    calls, spy = _counting_refreshes()
    with spy:
        services.facility_repay(actor=officer, facility_id=facility.pk, amount="400000")
    assert calls == [[facility.pk]]
    assert Facility.objects.get(pk=facility.pk).drawn_balance == Decimal("600000.00")


def test_above_the_available_amount_is_refused_and_nothing_is_written(facility, officer):
    before = Facility.objects.values("drawn_balance", "utilisation", "band", "valued_at").get(pk=facility.pk)
    with pytest.raises(PortalError) as exc:
        services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="3000000.01")
    assert exc.value.code == "above_available"
    assert Facility.objects.values("drawn_balance", "utilisation", "band", "valued_at").get(pk=facility.pk) == before
