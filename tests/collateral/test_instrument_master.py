"""The instrument master: what staff may change there, and how a change of a security's standing reaches the book."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from lending.collateral import services
from lending.collateral.models import Instrument
from lending.models import Facility
from lending.risk.models import MarginCall
from portal.errors import PortalError
from portal.models import AuditEvent
from tests.collateral.conftest import book_facility, set_prices

pytestmark = pytest.mark.django_db

HEADER = "code,kind,name_en,name_zh,board_lot,currency,issuer,sector,margin_class,suspended"


def _file(*rows):
    return "\n".join([HEADER, *rows]) + "\n"


def _staff_api(user):
    api = APIClient()
    api.force_login(user)
    return api


def test_an_officer_cannot_change_an_instruments_margin_class_through_the_api(officer):
    audit = AuditEvent.objects.count()
    response = _staff_api(officer).patch("/api/v1/collateral/staff/instruments/00700/", {"margin_class": "C"}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "margin_class_change_refused" and "margin_class" in error["fields"]
    assert "collateral policy" in error["message"]
    assert Instrument.objects.get(code="00700").margin_class == "A"
    assert AuditEvent.objects.count() == audit


def test_the_same_margin_class_sent_back_with_other_changes_is_not_a_change(officer):
    instrument = services.instrument_update(actor=officer, code="00700", changes={"margin_class": "A", "sector": "Technology"})
    assert instrument.sector == "Technology" and instrument.margin_class == "A"


def test_an_instrument_file_that_changes_a_class_is_refused_whole_and_a_new_instrument_keeps_its_class(officer):
    audit = AuditEvent.objects.count()
    with pytest.raises(PortalError) as refused:
        services.instruments_load(actor=officer, text=_file(
            "08888,security,New Listing Ltd,,100,HKD,New Listing Ltd,Financials,B,0",
            "00700,security,Tencent Holdings,騰訊控股,100,HKD,Tencent Holdings Ltd,Information Technology,C,0"))
    assert refused.value.code == "margin_class_change_refused" and "00700" in refused.value.message
    assert "margin_class" in refused.value.fields
    assert Instrument.objects.get(code="00700").margin_class == "A" and not Instrument.objects.filter(code="08888").exists()
    assert AuditEvent.objects.count() == audit

    services.instruments_load(actor=officer, text=_file("08888,security,New Listing Ltd,,100,HKD,New Listing Ltd,Financials,B,0"))
    assert Instrument.objects.get(code="08888").margin_class == "B"


def test_an_instrument_file_without_the_class_column_leaves_classes_as_they_are(officer):
    services.instruments_load(actor=officer, text="code,name_en,board_lot,issuer,sector\n00700,Tencent Holdings,100,Tencent Holdings Ltd,Information Technology\n")
    assert Instrument.objects.get(code="00700").margin_class == "A"


@pytest.fixture
def market(policy):
    set_prices({"BTC": Decimal("760000.00"), "ETH": Decimal("27000.00"), "00700": Decimal("400.00"), "00005": Decimal("80.00")})
    return policy


def test_suspending_a_security_reaches_its_holders_facility_at_once_and_opens_the_call(market, officer, alice):
    facility = book_facility(alice, holdings={"00700": 1000, "00005": 1000}, drawn="250000")  # LV 280,000 + 56,000: util 0.7440
    client_api = APIClient()
    client_api.force_authenticate(alice)
    before = client_api.get(f"/api/v1/lending/facilities/{facility.pk}/").json()
    assert Decimal(before["lending_value"]) == Decimal("336000.00")

    response = _staff_api(officer).patch("/api/v1/collateral/staff/instruments/00700/", {"suspended": True}, format="json")
    assert response.status_code == 200, response.content

    after = client_api.get(f"/api/v1/lending/facilities/{facility.pk}/").json()
    assert Decimal(after["lending_value"]) == Decimal("56000.00")  # the suspended haircut (100%) on Tencent
    assert after["band"] == "close_out" != before["band"]
    assert Facility.objects.get(pk=facility.pk).band == "close_out"
    assert MarginCall.objects.get().facility_id == facility.pk
    event = AuditEvent.objects.filter(action="collateral.instrument.updated").latest("id")
    assert event.after["book"] == {"positions_rehaircut": 1, "facilities_revalued": 1, "band_changes": 1, "calls_opened": 1}


def test_resuming_a_security_through_an_instrument_file_restores_its_holders_lending_value(market, officer, alice):
    facility = book_facility(alice, holdings={"00700": 1000}, drawn="100000")
    services.instrument_update(actor=officer, code="00700", changes={"suspended": True})
    assert Facility.objects.get(pk=facility.pk).band == "close_out"
    services.instruments_load(actor=officer, text=_file(
        "00700,security,Tencent Holdings,騰訊控股,100,HKD,Tencent Holdings Ltd,Information Technology,A,0"))
    assert Facility.objects.get(pk=facility.pk).lending_value == Decimal("280000.00")
    event = AuditEvent.objects.filter(action="collateral.instruments.loaded").latest("id")
    assert event.after["book"]["positions_rehaircut"] == 1


def test_renaming_a_security_does_not_revalue_the_book(market, officer, alice):
    from lending.risk.models import RevaluationRun

    book_facility(alice, holdings={"00700": 1000}, drawn="100000")
    runs = RevaluationRun.objects.count()
    services.instrument_update(actor=officer, code="00700", changes={"name_en": "Tencent Holdings Limited"})
    assert RevaluationRun.objects.count() == runs


def test_an_instrument_file_without_the_suspension_or_listing_columns_leaves_them_as_they_are(market, officer, alice):
    """A file of names says nothing about trading: it must not resume a suspended security (and re-haircut the book)."""
    facility = book_facility(alice, holdings={"00700": 1000}, drawn="100000")
    services.instrument_update(actor=officer, code="00700", changes={"suspended": True, "name_en": "Tencent Holdings"})
    Instrument.objects.filter(code="00005").update(active=False)
    services.instruments_load(actor=officer, text="code,name_en\n00700,Tencent Holdings Limited\n00005,HSBC Holdings plc\n09999,New Listing Ltd\n")
    tencent, hsbc, new = (Instrument.objects.get(code=c) for c in ("00700", "00005", "09999"))
    assert (tencent.name_en, tencent.suspended, tencent.suspended_since is not None) == ("Tencent Holdings Limited", True, True)
    assert (hsbc.name_en, hsbc.active) == ("HSBC Holdings plc", False)
    assert (new.suspended, new.active, new.suspended_since) == (False, True, None)
    assert Facility.objects.get(pk=facility.pk).band == "close_out"


def test_a_form_encoded_patch_changes_an_instrument_as_a_json_one_does(officer):
    """A form body (``suspended=true``) resumed a suspended security and stored a name as "['X']": each value came as a list."""
    services.instrument_update(actor=officer, code="00700", changes={"suspended": True})
    response = _staff_api(officer).patch("/api/v1/collateral/staff/instruments/00700/", "suspended=true&name_en=Tencent+Holdings+Ltd",
                                         content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.content
    tencent = Instrument.objects.get(code="00700")
    assert (tencent.suspended, tencent.name_en) == (True, "Tencent Holdings Ltd")
    assert response.json()["name_en"] == "Tencent Holdings Ltd"
    response = _staff_api(officer).patch("/api/v1/collateral/staff/instruments/00700/", "suspended=false", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and not Instrument.objects.get(code="00700").suspended


@pytest.mark.parametrize("changes,field", [
    ({"suspended": "maybe"}, "suspended"),
    ({"suspended": "suspended"}, "suspended"),
    ({"suspended": None}, "suspended"),
    ({"active": "maybe"}, "active"),
    ({"active": None}, "active"),
    ({"currency": "USDX"}, "currency"),
    ({"name_zh": "騰" * 500}, "name_zh"),
    ({"name_en": "T" * 201}, "name_en"),
    ({"sector": "S" * 81}, "sector"),
])
def test_an_invalid_instrument_value_is_refused_with_its_field_and_nothing_changes(officer, changes, field):
    """Each was accepted with 200: a word read as "not suspended", a currency cut to USD, a name cut to 200 characters."""
    services.instrument_update(actor=officer, code="00700", changes={"suspended": True})
    before = Instrument.objects.values().get(code="00700")
    audit = AuditEvent.objects.count()
    response = _staff_api(officer).patch("/api/v1/collateral/staff/instruments/00700/", changes, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error["fields"] and field in error["message"], error
    assert Instrument.objects.values().get(code="00700") == before
    assert AuditEvent.objects.count() == audit


def test_an_instrument_file_accepts_the_documented_true_and_false_spellings_and_refuses_any_other(officer, tmp_path):
    from django.core.management import CommandError, call_command

    for word, suspended in (("yes", True), ("no", False), ("TRUE", True), ("false", False), ("1", True), ("0", False)):
        services.instruments_load(actor=officer, text=f"code,name_en,suspended\n00700,Tencent Holdings,{word}\n")
        assert Instrument.objects.get(code="00700").suspended is suspended, word
    services.instrument_update(actor=officer, code="00700", changes={"suspended": True})
    path = tmp_path / "instruments.csv"
    for row in ("00700,Tencent Holdings,maybe,1", "00700,Tencent Holdings,0,perhaps", "00700,Tencent Holdings,,1"):
        path.write_text(f"code,name_en,suspended,active\n{row}\n", encoding="utf-8")
        with pytest.raises(CommandError, match="Line 2"):
            call_command("load_instruments", str(path))
        tencent = Instrument.objects.get(code="00700")
        assert (tencent.suspended, tencent.active) == (True, True), row


def test_an_instrument_file_without_some_columns_leaves_those_values_of_existing_instruments_as_they_are(officer):
    """A file of code,name_en,suspended reset 00016's board lot 500 to 1 and emptied its Chinese name, issuer and sector."""
    before = Instrument.objects.get(code="00016")
    assert before.board_lot == 500 and before.name_zh and before.issuer and before.sector
    result = services.instruments_load(actor=officer, text="code,name_en,suspended\n00016,SHK Properties,1\n09990,New Listing Ltd,0\n")
    after = Instrument.objects.get(code="00016")
    assert (after.name_en, after.suspended) == ("SHK Properties", True)
    assert (after.board_lot, after.name_zh, after.issuer, after.sector, after.margin_class, after.currency) == (
        500, before.name_zh, before.issuer, before.sector, before.margin_class, before.currency)
    new = Instrument.objects.get(code="09990")
    assert (new.board_lot, new.issuer, new.currency, new.margin_class, new.active) == (1, "New Listing Ltd", "HKD", "", True)
    assert result["updated"] == {"00016": ["name_en", "suspended"]}
    event = AuditEvent.objects.filter(action="collateral.instruments.loaded").latest("id")
    assert event.before["updated"]["00016"] == {"name_en": before.name_en, "suspended": False}
    assert event.after["updated"]["00016"] == {"name_en": "SHK Properties", "suspended": True}


def test_delisting_a_pledged_security_makes_it_not_marginable_and_its_holdings_can_still_be_reported(market, officer, alice, charlie, holdings):
    """Delisting changed nothing in the book, and the next positions file refused the code as unknown."""
    from lending.collateral.models import CustodyBalance
    from portal.audit import SYSTEM
    from tests.collateral.conftest import positions_csv

    facility = book_facility(alice, holdings={"00700": 500, "00005": 1000}, drawn="10000")  # LV 140,000 + 56,000
    client_api = APIClient()
    client_api.force_authenticate(alice)
    assert Decimal(client_api.get(f"/api/v1/lending/facilities/{facility.pk}/").json()["lending_value"]) == Decimal("196000.00")
    response = _staff_api(officer).patch("/api/v1/collateral/staff/instruments/00700/", {"active": False}, format="json")
    assert response.status_code == 200, response.content
    assert Facility.objects.get(pk=facility.pk).lending_value == Decimal("56000.00")
    event = AuditEvent.objects.filter(action="collateral.instrument.updated").latest("id")
    assert event.after["book"]["positions_rehaircut"] == 1 and event.after["book"]["facilities_revalued"] == 1

    update = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("DL-1", [("M-1001", "00700", 300)], as_of="2026-03-03"))
    assert update.batch.status == "applied", update.batch.errors
    assert CustodyBalance.objects.get(client=alice, instrument__code="00700").held == Decimal("300")
    zero = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("DL-2", [("M-1001", "00700", 0)], as_of="2026-03-03"))
    assert zero.batch.status == "applied" and CustodyBalance.objects.get(client=alice, instrument__code="00700").held == 0
    # An account that holds none of the delisted security cannot start holding it.
    new = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("DL-3", [("M-2002", "00700", 100)], as_of="2026-03-03"))
    assert [e["code"] for e in new.batch.errors] == ["delisted_instrument"] and "M-2002" in new.batch.errors[0]["message"]
