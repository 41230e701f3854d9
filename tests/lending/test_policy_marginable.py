"""The marginable list and concentration limits are proposed and approved with the rest of a collateral-policy
version, on the policy page and through the API (maker-checker); a haircut typed with more places than a
percentage takes is refused, never rounded past the SFC's floor."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lending.collateral.models import MarginableList
from lending.models import CollateralPolicy

from .conftest import POLICY_NUMBERS

pytestmark = pytest.mark.django_db

PAGE = "/lending/staff/policy/"
FORM = {"action": "propose", "btc_haircut": "60", "eth_haircut": "65", "va_max_share": "40", "price_max_age_minutes": "15",
        "officer_authority_default": "5,000,000", "watch_level": "90", "margin_call_level": "100", "close_out_level": "130", "cure_days": "2",
        "client_exposure_limit": "50000000", "firm_exposure_limit": "5000000000", "client_concentration_max": "10",
        "class_name": ["A", "B", "C"], "class_haircut": ["30", "50", "70"], "reason": "Concentration"}


def _entries(version: int) -> dict:
    listed = MarginableList.objects.get(policy__version=version)
    return {e.instrument.code: e.haircut for e in listed.entries.select_related("instrument")}


def test_the_api_proposes_marginable_entries_and_limits_and_reads_them_back(client, credit_manager, policy):
    """It answered 201 and silently kept the list of the version in force (the serializer dropped ``marginable``)."""
    client.force_login(credit_manager)
    body = {**POLICY_NUMBERS, "reason": "Concentration in telecoms",
            "marginable": {"entries": {"00941": "0.50", "700": "0.45"}, "issuer_concentration_max": "0.20"}}
    response = client.post("/api/v1/lending/staff/policies/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    version = response.json()["version"]
    assert _entries(version) == {"00941": Decimal("0.5000"), "00700": Decimal("0.4500")}
    assert MarginableList.objects.get(policy__version=version).issuer_concentration_max == Decimal("0.2000")
    assert response.json()["marginable"]["entries"] == {"00700": "0.4500", "00941": "0.5000"}
    listed = client.get("/api/v1/lending/staff/policies/").json()["results"]
    assert listed[0]["marginable"]["issuer_concentration_max"] == "0.2000"


def test_the_api_refuses_a_va_entry_below_the_floor_and_saves_nothing(client, credit_manager, policy):
    client.force_login(credit_manager)
    body = {**POLICY_NUMBERS, "reason": "x", "marginable": {"entries": {"BTC": "0.55"}}}
    response = client.post("/api/v1/lending/staff/policies/", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "va_haircut_below_floor"
    assert CollateralPolicy.objects.count() == 1


def test_the_page_shows_the_list_in_force_and_proposes_a_change_to_it(client, credit_manager, credit_manager2, policy):
    client.force_login(credit_manager)
    page = client.get(PAGE).content.decode()
    assert 'data-testid="marginable-in-force"' in page and 'name="issuer_concentration_max"' in page and 'name="entry_code"' in page
    form = FORM | {"entry_code": ["00941", "", ""], "entry_haircut": ["50", "", ""], "issuer_concentration_max": "20",
                   "suspended_haircut": "100", "instrument_concentration_max": "50", "sector_concentration_max": "75",
                   "firm_instrument_concentration_max": "25", "firm_issuer_concentration_max": "25", "firm_sector_concentration_max": "40",
                   "firm_concentration_min_book": "100000000", "limit_rounding_unit": "10000", "securities_price_max_age_days": "4"}
    response = client.post(PAGE, form, follow=True)
    assert "Policy change proposed" in response.content.decode()
    proposed = CollateralPolicy.objects.get(version=2)
    assert _entries(2) == {"00941": Decimal("0.5000")}
    assert MarginableList.objects.get(policy=proposed).issuer_concentration_max == Decimal("0.2000")
    client.force_login(credit_manager2)
    page = client.get(PAGE).content.decode()
    assert "Marginable list: 00941" in page  # among the changes against the version in force
    client.post(PAGE, {"action": "approve", "policy_id": proposed.pk})
    assert CollateralPolicy.objects.get(version=2).status == "approved"
    assert '<td>00941</td><td class="num">50%</td>' in client.get(PAGE).content.decode()


@pytest.mark.parametrize("typed", ["59.995", "59.99999"])
def test_a_va_haircut_just_under_the_floor_is_refused_not_rounded_up(client, credit_manager, policy, typed):
    """59.995% was stored as 60% (rounded to the ratio's four places before the floor was checked)."""
    client.force_login(credit_manager)
    response = client.post(PAGE, FORM | {"btc_haircut": typed}, follow=True)
    assert "decimal places" in response.content.decode()
    assert CollateralPolicy.objects.count() == 1


def test_the_floor_message_names_the_haircut_proposed(client, credit_manager, policy):
    client.force_login(credit_manager)
    response = client.post(PAGE, FORM | {"eth_haircut": "59.99"}, follow=True)
    assert "59.99% was proposed" in response.content.decode()  # it said "60% was proposed"
    assert CollateralPolicy.objects.count() == 1
