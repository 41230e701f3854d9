"""Back-office imports: idempotent per batch id, validated line by line, nothing half-applied, breaks listed."""

from decimal import Decimal

import pytest

from lending.collateral import selectors, services
from lending.collateral.models import CustodyBalance, CustodyEntry, ImportBatch, Instrument, ReconciliationBreak
from portal.audit import SYSTEM
from portal.errors import ConflictError, PortalError
from portal.models import AuditEvent
from tests.collateral.conftest import positions_csv, statement_csv

pytestmark = pytest.mark.django_db


def _held(user, code):
    h = selectors.custody_balance(client_id=user.pk, instrument_id=Instrument.objects.get(code=code).pk)
    return h.held if h else Decimal("0")


def test_a_batch_with_errors_is_rejected_line_by_line_and_nothing_is_applied(holdings, alice, charlie):
    before = (CustodyEntry.objects.count(), list(CustodyBalance.objects.values_list("held", flat=True).order_by("pk")))
    content = positions_csv("EOD-2", [
        ("M-1001", "00005", 2600),       # fine
        ("M-1001", "99999", 100),        # unknown instrument
        ("M-2002", "00700", -5),         # negative quantity
        ("M-9999", "00005", 100),        # no such margin account
        ("M-1001", "BTC", 1),            # VA in the positions file
        ("M-1001", "00700", "12.5"),     # fractional shares
    ])
    result = services.batch_import(kind="positions_eod", actor=SYSTEM, content=content)
    batch = result.batch
    assert batch.status == "rejected" and batch.applied_count == 0
    codes = [(e["line"], e["code"]) for e in batch.errors]
    assert codes == [(3, "unknown_instrument"), (4, "negative_quantity"), (5, "no_margin_account"), (6, "wrong_instrument_kind"), (7, "invalid_quantity")]
    assert "M-9999" in batch.errors[2]["message"] and "99999" in batch.errors[0]["message"]
    after = (CustodyEntry.objects.count(), list(CustodyBalance.objects.values_list("held", flat=True).order_by("pk")))
    assert after == before
    assert _held(alice, "00005") == Decimal("2000")
    assert AuditEvent.objects.filter(action="collateral.import.positions_eod.rejected").count() == 1


def test_the_same_batch_id_is_applied_once(holdings, alice):
    content = positions_csv("ID-7", [("M-1001", "00005", 2100)])
    first = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=content)
    entries = CustodyEntry.objects.count()
    again = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=content)
    assert not first.replayed and again.replayed and again.batch.pk == first.batch.pk
    assert CustodyEntry.objects.count() == entries and _held(alice, "00005") == Decimal("2100")
    with pytest.raises(ConflictError) as exc:
        services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("ID-7", [("M-1001", "00005", 9)]))
    assert exc.value.code == "batch_id_reused" and _held(alice, "00005") == Decimal("2100")


def test_a_rejected_batch_can_be_sent_again_fixed_under_the_same_id(holdings, alice):
    bad = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("ID-8", [("M-1001", "00005", -1)]))
    assert bad.batch.status == "rejected"
    assert services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("ID-8", [("M-1001", "00005", -1)])).replayed
    good = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("ID-8", [("M-1001", "00005", 1)]))
    assert good.batch.status == "applied" and _held(alice, "00005") == Decimal("1")


def test_end_of_day_file_replaces_the_accounts_holdings_and_lists_differences_as_breaks(holdings, alice):
    services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("ID-9", [("M-1001", "00005", 2400)]))
    result = services.batch_import(kind="positions_eod", actor=SYSTEM, content=positions_csv("EOD-3", [("M-1001", "00005", 2300)], as_of="2026-03-03"))
    assert result.batch.status == "applied"
    assert _held(alice, "00005") == Decimal("2300")
    assert _held(alice, "00700") == Decimal("0")  # no longer listed for the account: sold
    open_breaks = {b.instrument.code: b for b in selectors.breaks()}
    assert open_breaks["00005"].kind == "position_difference"
    assert (open_breaks["00005"].portal_quantity, open_breaks["00005"].external_quantity) == (Decimal("2400"), Decimal("2300"))


def test_a_position_below_what_is_pledged_rejects_the_batch(holdings, alice, bob):
    from django.db import transaction

    with transaction.atomic():
        services.custody_pledge(client_id=alice.pk, instrument_id=Instrument.objects.get(code="00005").pk, quantity="1500", facility_id=None, actor=bob)
    result = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("ID-10", [("M-1001", "00005", 1000)]))
    assert result.batch.status == "rejected"
    assert result.batch.errors[0]["code"] == "below_pledged" and "1,500" in result.batch.errors[0]["message"]
    assert _held(alice, "00005") == Decimal("2000")


def test_custody_statement_difference_with_portal_va_pledges_raises_a_break_and_agreement_clears_it(holdings, alice, bob):
    from django.db import transaction

    btc = Instrument.objects.get(code="BTC")
    with transaction.atomic():
        services.custody_pledge(client_id=alice.pk, instrument_id=btc.pk, quantity="1.5", facility_id=None, actor=bob)
    services.batch_import(kind="custody_statement", actor=SYSTEM, content=statement_csv("CS-2", [("M-1001", "BTC", "2", "1.4"), ("M-1001", "ETH", "10", "0")]))
    br = selectors.breaks().get()
    assert br.kind == "va_pledge_difference" and (br.portal_quantity, br.external_quantity) == (Decimal("1.5"), Decimal("1.4"))
    services.batch_import(kind="custody_statement", actor=SYSTEM, content=statement_csv("CS-3", [("M-1001", "BTC", "2", "1.5"), ("M-1001", "ETH", "10", "0")]))
    assert not selectors.breaks().exists()
    assert ReconciliationBreak.objects.get(pk=br.pk).resolution_note.startswith("Cleared")


def test_daily_reconciliation_raises_a_break_when_no_statement_arrived(holdings, alice, bob):
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    with transaction.atomic():
        services.custody_pledge(client_id=alice.pk, instrument_id=Instrument.objects.get(code="ETH").pk, quantity="1", facility_id=None, actor=bob)
    assert services.custody_reconcile_daily() == 0  # today's statement is in
    later = timezone.now() + timedelta(days=2)
    assert services.custody_reconcile_daily(now=later) == 1
    assert services.custody_reconcile_daily(now=later) == 1 and selectors.breaks(kind="statement_missing").count() == 1


def test_json_batch_is_the_same_as_csv(accounts, alice):
    result = services.batch_import(kind="positions_eod", actor=SYSTEM, content={
        "batch_id": "J-1", "as_of": "2026-03-02", "lines": [{"account": "M-1001", "instrument": "2800", "quantity": "5000"}]})
    assert result.batch.status == "applied" and _held(alice, "02800") == Decimal("5000")


@pytest.mark.parametrize("content,code", [
    ("account,instrument,quantity\nM-1001,00005,1\n", "invalid_file"),                     # columns missing
    ("batch_id,as_of,account,instrument,quantity\nA,2026-03-02,M-1001,00005,1\nB,2026-03-02,M-1001,00700,1\n", "invalid_file"),
    ("batch_id,as_of,account,instrument,quantity\nA,yesterday,M-1001,00005,1\n", "invalid_file"),
    ("batch_id,as_of,account,instrument,quantity\n", "invalid_file"),
])
def test_a_malformed_file_is_refused_with_a_clear_error(accounts, content, code):
    with pytest.raises(PortalError) as exc:
        services.batch_import(kind="positions_eod", actor=SYSTEM, content=content)
    assert exc.value.code == code
    assert not ImportBatch.objects.exists()


@pytest.mark.parametrize("kind,content", [
    # found by fuzzing the machine API: each was a 500 (PostgreSQL cannot store NUL; an impossible hour raised)
    ("positions_eod", "batch_id,as_of,account,instrument,quantity\nA\x00,2026-03-02,M-1001,00005,1\n"),
    ("positions_intraday", "batch_id,as_of,account,instrument,quantity\nA,2026-03-02,M-1001\x00,00005,1\n"),
    ("custody_statement", "batch_id,as_of,account,instrument,held,pledged\nA,2026-03-02,M-1001,BTC,1,0\x00\n"),
    ("prices_eod", "batch_id,as_of,instrument,price,source\nA,2026-03-02,00700,400.2\x00,hkex\n"),
    ("positions_eod", {"batch_id": "A", "as_of": "2026-03-02", "lines": [{"account": "M-1001\x00", "instrument": "00005", "quantity": "1"}]}),
    ("positions_intraday", "batch_id,as_of,account,instrument,quantity\nA,2026-03-02T25:00,M-1001,00005,1\n"),
    ("positions_eod", "batch_id,as_of,account,instrument,quantity\nA,2026-02-30,M-1001,00005,1\n"),
])
def test_a_control_character_or_an_impossible_date_is_a_clear_400_through_the_machine_api(api_client, machine_key, accounts, kind, content):
    response = api_client.post(f"/api/v1/collateral/imports/{kind}/", content, format="json" if isinstance(content, dict) else None,
                               content_type=None if isinstance(content, dict) else "text/csv", HTTP_AUTHORIZATION=f"Api-Key {machine_key.token}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_file"
    assert ("control character" in error["message"] and "Line " in error["message"]) or "as_of must be an ISO date" in error["message"]
    assert not ImportBatch.objects.exists() and not CustodyEntry.objects.exists()


def test_an_instrument_file_with_a_nul_byte_is_refused_and_nothing_changes(db):
    with pytest.raises(PortalError) as exc:
        services.instruments_load(actor=SYSTEM, text="code,name_en,board_lot\n00700,Tencent\x00,100\n")
    assert exc.value.code == "invalid_file" and "Line 2" in exc.value.message
    assert Instrument.objects.get(code="00700").name_en == "Tencent Holdings"


def test_staff_without_the_operations_permission_cannot_import(accounts, compliance_user):
    from portal.errors import ForbiddenError

    with pytest.raises(ForbiddenError):
        services.batch_import(kind="positions_eod", actor=compliance_user, content=positions_csv("X", [("M-1001", "00005", 1)]))


def test_load_instruments_command_updates_and_adds(db, tmp_path):
    from django.core.management import call_command

    path = tmp_path / "instruments.csv"
    path.write_text("code,kind,name_en,name_zh,board_lot,currency,issuer,sector,margin_class,suspended\n"
                    "700,security,Tencent Holdings,騰訊控股,100,HKD,Tencent Holdings Ltd,Information Technology,A,1\n"
                    "09992,security,Pop Mart International Group,泡泡瑪特,200,HKD,Pop Mart International Group Ltd,Consumer Discretionary,B,0\n", encoding="utf-8")
    call_command("load_instruments", str(path))
    assert Instrument.objects.get(code="00700").suspended and Instrument.objects.get(code="00700").suspended_since
    assert Instrument.objects.get(code="09992").board_lot == 200
    assert AuditEvent.objects.filter(action="collateral.instruments.loaded").exists()


def test_a_bad_instrument_row_refuses_the_whole_file(db):
    with pytest.raises(PortalError) as exc:
        services.instruments_load(actor=SYSTEM, text="code,name_en,board_lot\n00700,Tencent,100\nABC,Bad,100\n")
    assert "Line 3" in exc.value.message
    assert Instrument.objects.get(code="00700").name_en == "Tencent Holdings"


def _price_file(batch_id, lines, as_of=None):
    from django.utils import timezone

    as_of = as_of or timezone.now().isoformat()
    return "\n".join(["batch_id,as_of,instrument,price,source"] + [f"{batch_id},{as_of},{c},{p},{s}" for c, p, s in lines]) + "\n"


def test_end_of_day_price_file_becomes_reference_prices_through_the_price_authority(db, policy):
    from lending import selectors as lending_selectors
    from lending.risk import services as risk_services

    risk_services.source_ensure(code="hkex-close", name="HKEX closing prices")
    result = services.batch_import(kind="prices_eod", actor=SYSTEM, content=_price_file("PX-1", [("00700", "482.60", "hkex-close"), ("5", "95.40", "hkex-close")]))
    assert result.batch.status == "applied" and result.batch.applied_count == 2
    current = lending_selectors.prices_current()
    assert current["00700"].price_hkd == Decimal("482.60") and current["00005"].price_hkd == Decimal("95.40")


def test_a_price_file_with_bad_lines_is_rejected_and_no_quote_is_recorded(db, policy):
    from lending.risk import services as risk_services
    from lending.risk.models import PriceQuote

    risk_services.source_ensure(code="hkex-close", name="HKEX closing prices")
    result = services.batch_import(kind="prices_eod", actor=SYSTEM, content=_price_file("PX-2", [
        ("00700", "482.60", "hkex-close"), ("BTC", "1", "hkex-close"), ("00005", "-1", "hkex-close"), ("00388", "350", "nobody")]))
    assert result.batch.status == "rejected"
    assert [e["code"] for e in result.batch.errors] == ["unknown_instrument", "invalid_price", "unknown_source"]
    assert not PriceQuote.objects.exists()


def test_a_market_data_gateway_pushes_intraday_prices_with_its_key(api_client, machine_key, policy):
    from lending.risk import services as risk_services

    risk_services.source_ensure(code="gateway", name="Market-data gateway")
    response = api_client.post("/api/v1/collateral/imports/prices_intraday/", {
        "batch_id": "GW-1", "as_of": timezone_now(), "lines": [{"instrument": "00700", "price": "480.20", "source": "gateway"}]},
        format="json", HTTP_AUTHORIZATION=f"Api-Key {machine_key.token}")
    assert response.status_code == 201, response.content


def timezone_now():
    from django.utils import timezone

    return timezone.now().isoformat()


def test_a_positions_batch_costs_the_same_statements_for_3_lines_as_for_30(accounts, alice, charlie):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    codes = list(Instrument.objects.filter(kind="security", active=True).order_by("code").values_list("code", flat=True)[:30])

    def run(batch_id, account, lines):
        with CaptureQueriesContext(connection) as ctx:
            result = services.batch_import(kind="positions_eod", actor=SYSTEM, channel="command", content=positions_csv(batch_id, lines))
        assert result.batch.status == "applied", result.batch.errors
        return len(ctx.captured_queries)

    # New holdings (balance rows created), then an end-of-day file that differs on every line (a break each).
    small = run("EOD-S1", "M-1001", [("M-1001", c, 100) for c in codes[:3]])
    large = run("EOD-L1", "M-2002", [("M-2002", c, 100) for c in codes])
    assert small == large
    small = run("EOD-S2", "M-1001", [("M-1001", c, 200) for c in codes[:3]])
    large = run("EOD-L2", "M-2002", [("M-2002", c, 200) for c in codes])
    assert small == large
    assert ReconciliationBreak.objects.filter(client=charlie, resolved_at__isnull=True).count() == 30
    assert CustodyBalance.objects.get(client=charlie, instrument__code=codes[-1]).held == Decimal("200")
    held, _pledged = selectors.ledger_totals(client_id=charlie.pk, instrument_id=Instrument.objects.get(code=codes[-1]).pk)
    assert held == Decimal("200")  # the balance is still the sum of its entries


def test_a_sub_dollar_security_keeps_its_third_decimal_from_the_file_to_the_book_and_the_api(api_client, db, policy, alice, officer):
    """HKEX quotes a security below HK$0.25 in steps of HK$0.001: a price file's HK$0.305 is the reference, the book's
    price and what a facility holding 100,000 shares is valued at, not HK$0.31 (a 1.6% error); BTC stays to the cent."""
    from lending import selectors as lending_selectors
    from lending.collateral.models import BookPrice
    from lending.risk import services as risk_services
    from lending.risk.models import FacilityCoefficients
    from lending.risk.revaluation import revalue_book
    from tests.collateral.conftest import book_facility

    risk_services.source_ensure(code="hkex-close", name="HKEX closing prices")
    services.batch_import(kind="prices_eod", actor=SYSTEM, content=_price_file("PX-S", [("02007", "0.30", "hkex-close")]))
    facility = book_facility(alice, holdings={"02007": 100000})
    revalue_book(trigger="beat")
    result = services.batch_import(kind="prices_eod", actor=SYSTEM, content=_price_file("PX-T", [("02007", "0.305", "hkex-close")]))
    assert result.batch.status == "applied"
    assert lending_selectors.prices_current()["02007"].price_hkd == Decimal("0.305")
    assert BookPrice.objects.get(instrument__code="02007").price == Decimal("0.305")
    assert FacilityCoefficients.objects.get(facility=facility).securities_mv == Decimal("30500")
    risk_services.quote_record(actor=SYSTEM, source_code="hkex-close", asset="BTC", price_hkd="760000.004")
    assert lending_selectors.prices_current()["BTC"].price_hkd == Decimal("760000.00")
    api_client.force_authenticate(officer)
    rows = {r["asset"]: r["price_hkd"] for r in api_client.get("/api/v1/lending/prices/current/").json()}
    assert rows["02007"] == "0.305" and rows["BTC"] == "760000.00"


def test_a_break_reads_in_the_readers_language_and_keeps_its_english_record(holdings, alice, bob):
    """Operations staff reading Chinese saw every break in English: the message was an English sentence only."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone, translation

    btc = Instrument.objects.get(code="BTC")
    with transaction.atomic():
        services.custody_pledge(client_id=alice.pk, instrument_id=btc.pk, quantity="1.5", facility_id=None, actor=bob)
    services.batch_import(kind="custody_statement", actor=SYSTEM, content=statement_csv("CS-9", [("M-1001", "BTC", "2", "1.4"), ("M-1001", "ETH", "10", "0")]))
    services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("ID-19", [("M-1001", "00005", 2400)]))
    services.batch_import(kind="positions_eod", actor=SYSTEM, content=positions_csv("EOD-19", [("M-1001", "00005", 2300)], as_of="2026-03-03"))
    assert services.custody_reconcile_daily(now=timezone.now() + timedelta(days=2)) == 1
    breaks = {b.kind: b for b in selectors.breaks()}
    assert breaks["va_pledge_difference"].message == "BTC account M-1001: the portal has 1.5 pledged, the custody statement 1.4."
    assert breaks["position_difference"].message.startswith("00005 account M-1001: the portal held 2,400 before the end-of-day file")
    assert breaks["statement_missing"].message.startswith("No custody statement has been applied since ")
    with translation.override("zh-hant"):
        for b in breaks.values():
            assert b.text and b.text != b.message and "custody statement" not in b.text and "portal" not in b.text, b.text
        assert "1.5" in breaks["va_pledge_difference"].text and "1.4" in breaks["va_pledge_difference"].text


LATIN1 = "batch_id,as_of,account,instrument,quantity\nCAFÉ-1,2026-03-02,M-1001,00005,1\n".encode("latin-1")


def test_a_batch_that_is_not_utf8_is_refused_through_the_machine_api_and_nothing_is_stored(api_client, machine_key, accounts):
    """Latin-1 bytes were read with U+FFFD in their place and the batch applied."""
    response = api_client.post("/api/v1/collateral/imports/positions_intraday/", LATIN1, content_type="text/csv",
                               HTTP_AUTHORIZATION=f"Api-Key {machine_key.token}")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"] == "The file is not UTF-8 text."
    assert not ImportBatch.objects.exists() and not CustodyEntry.objects.exists()


BIG5 = "code,name_en,name_zh\n00700,Tencent Holdings,騰訊\n".encode("big5")


def test_an_instrument_file_that_is_not_utf8_is_refused_by_the_api(api_client, officer):
    """The API stored U+FFFD in place of each byte it could not read."""
    api_client.force_login(officer)
    response = api_client.post("/api/v1/collateral/staff/instruments/", BIG5, content_type="text/csv")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"] == "The file is not UTF-8 text."
    assert Instrument.objects.get(code="00700").name_zh == "騰訊控股"


def test_an_instrument_file_that_is_not_utf8_is_a_clear_error_on_the_page_and_from_the_command(client, officer, tmp_path):
    """The Instruments page answered 500 (UnicodeDecodeError); load_instruments printed a traceback."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import CommandError, call_command

    latin1 = "code,name_en\n00700,Tencent Holdings Société\n".encode("latin-1")
    client.force_login(officer)
    for name, content in (("big5.csv", BIG5), ("latin1.csv", latin1)):
        response = client.post("/collateral/instruments/", {"action": "load", "file": SimpleUploadedFile(name, content, content_type="text/csv")}, follow=True)
        assert response.status_code == 200 and "The file is not UTF-8 text." in response.content.decode()
    path = tmp_path / "instruments.csv"
    path.write_bytes(latin1)
    with pytest.raises(CommandError, match="not UTF-8"):
        call_command("load_instruments", str(path))
    tencent = Instrument.objects.get(code="00700")
    assert (tencent.name_en, tencent.name_zh) == ("Tencent Holdings", "騰訊控股")


def test_an_end_of_day_price_file_with_a_date_only_as_of_is_the_close_of_that_day(db, policy):
    """A bare date was read as 00:00 HKT: older than the same day's noon quote, so the close was kept but never became the price."""
    from datetime import datetime, time, timedelta

    from django.utils import timezone

    from lending import selectors as lending_selectors
    from lending.risk import services as risk_services

    day = timezone.localtime(timezone.now(), services.HK).date() - timedelta(days=1)
    risk_services.source_ensure(code="hkex", name="HKEX")
    risk_services.quote_record(actor=SYSTEM, source_code="hkex", asset="00700", price_hkd="480.00", as_of=datetime.combine(day, time(12, 0), tzinfo=services.HK))
    result = services.batch_import(kind="prices_eod", actor=SYSTEM, content=_price_file("PX-D", [("00700", "482.60", "hkex")], as_of=day.isoformat()))
    assert result.batch.status == "applied", result.batch.errors
    assert result.batch.as_of == datetime.combine(day, time(16, 10), tzinfo=services.HK)
    assert lending_selectors.prices_current()["00700"].price_hkd == Decimal("482.60")


@pytest.mark.parametrize("batch_id", ["QA/SL-1", "QA SL", "Q?1", "批次-1", "A" * 81])
def test_a_batch_id_outside_the_safe_characters_is_refused_with_a_clear_error(api_client, machine_key, accounts, batch_id):
    """QA/SL-1 was applied, and GET …/imports/<kind>/QA/SL-1/ could never find it again (404)."""
    response = api_client.post("/api/v1/collateral/imports/positions_intraday/", positions_csv(batch_id, [("M-1001", "00005", 1)]),
                               content_type="text/csv", HTTP_AUTHORIZATION=f"Api-Key {machine_key.token}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_file" and "batch_id" in error["fields"] and "letters, digits" in error["message"]
    assert not ImportBatch.objects.exists() and not CustodyEntry.objects.exists()


def test_a_batch_id_of_the_safe_characters_is_applied_and_fetched_again(api_client, machine_key, accounts):
    auth = {"HTTP_AUTHORIZATION": f"Api-Key {machine_key.token}"}
    batch_id = "QA_SL-1.2026:03:02"
    response = api_client.post("/api/v1/collateral/imports/positions_intraday/", positions_csv(batch_id, [("M-1001", "00005", 1)]),
                               content_type="text/csv", **auth)
    assert response.status_code == 201, response.content
    assert api_client.get(f"/api/v1/collateral/imports/positions_intraday/{batch_id}/", **auth).json()["batch_id"] == batch_id


def test_breaks_name_the_margin_account_of_a_holding_left_out_and_of_a_client_missing_from_the_statement(holdings, alice, bob):
    """The break said "account ?" for a holding an end-of-day file left out, and "client #22" (an internal id) for a client
    missing from the custody statement."""
    from django.db import transaction

    with transaction.atomic():
        services.custody_pledge(client_id=alice.pk, instrument_id=Instrument.objects.get(code="BTC").pk, quantity="1", facility_id=None, actor=bob)
    services.batch_import(kind="positions_eod", actor=SYSTEM, content=positions_csv("EOD-NA", [("M-1001", "00005", 2000)], as_of="2026-03-03"))
    services.batch_import(kind="custody_statement", actor=SYSTEM, content=statement_csv("CS-NA", [("M-2002", "BTC", "0", "0")], as_of="2026-03-03"))
    breaks = {b.instrument.code: b for b in selectors.breaks()}
    assert breaks["00700"].message.startswith("00700 account M-1001: the portal held 500 ")
    assert "M-1001" in breaks["BTC"].message and "#" not in breaks["BTC"].message, breaks["BTC"].message
    from django.utils import translation

    with translation.override("zh-hant"):
        assert "M-1001" in breaks["BTC"].text and "M-1001" in breaks["00700"].text


def test_the_same_batch_sent_again_as_json_or_with_other_spacing_replays_and_other_content_is_refused(holdings, alice):
    """A batch sent as CSV and again as identical JSON, or with ", 52000" for ",52000", was 409 batch_id_reused: the
    content hash covered the raw text, not the batch."""
    first = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("RS-1", [("M-1001", "00005", 52000)]))
    assert first.batch.status == "applied"
    again = services.batch_import(kind="positions_intraday", actor=SYSTEM, content={
        "batch_id": "RS-1", "as_of": "2026-03-02", "lines": [{"account": "M-1001", "instrument": "00005", "quantity": 52000}]})
    assert again.replayed and again.batch.pk == first.batch.pk
    spaced = "batch_id, as_of, account, instrument, quantity\r\nRS-1, 2026-03-02, M-1001, 5, 52000\r\n"
    assert services.batch_import(kind="positions_intraday", actor=SYSTEM, content=spaced).batch.pk == first.batch.pk
    with pytest.raises(ConflictError):
        services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("RS-1", [("M-1001", "00005", 52001)]))
    assert _held(alice, "00005") == Decimal("52000")


def test_a_bare_date_of_today_before_the_close_is_the_time_the_batch_is_received(accounts, alice):
    """Read as today's 16:10 close, a file dated today and sent in the morning was refused as in the future."""
    from datetime import datetime

    import time_machine

    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=services.HK), tick=False):
        result = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("TD-1", [("M-1001", "00005", 100)], as_of="2026-03-02"))
        assert result.batch.status == "applied" and result.batch.as_of == datetime(2026, 3, 2, 10, 0, tzinfo=services.HK)
        with pytest.raises(PortalError, match="future"):
            services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("TD-2", [("M-1001", "00005", 100)], as_of="2026-03-03"))


def test_a_positions_file_or_statement_older_than_an_accounts_last_report_is_refused_and_nothing_is_applied(holdings, alice, charlie):
    """positions_intraday as of 2020-01-01T10:00 set a holding reported at 260,000 the day before to 1."""
    services.batch_import(kind="positions_eod", actor=SYSTEM, content=positions_csv("EOD-N", [("M-1001", "00005", 260000), ("M-1001", "00700", 500)], as_of="2026-03-03"))
    entries = CustodyEntry.objects.count()
    stale = services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv(
        "ID-OLD", [("M-2002", "00005", 900), ("M-1001", "00005", 1)], as_of="2020-01-01T10:00"))
    assert stale.batch.status == "rejected"
    assert [(e["line"], e["field"], e["code"]) for e in stale.batch.errors] == [(2, "as_of", "older_than_reported"), (3, "as_of", "older_than_reported")]
    assert "M-2002" in stale.batch.errors[0]["message"] and "2026-03-02 16:10 HKT" in stale.batch.errors[0]["message"]
    assert "M-1001" in stale.batch.errors[1]["message"] and "2026-03-03 16:10 HKT" in stale.batch.errors[1]["message"]
    assert _held(alice, "00005") == Decimal("260000") and _held(charlie, "00005") == Decimal("1000") and CustodyEntry.objects.count() == entries
    # The same day's figures, and a later file, still apply.
    assert services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv("ID-NOW", [("M-1001", "00005", 250000)], as_of="2026-03-03T16:10:00+08:00")).batch.status == "applied"
    statement = services.batch_import(kind="custody_statement", actor=SYSTEM, content=statement_csv("CS-OLD", [("M-1001", "BTC", "1", "0")], as_of="2026-03-01"))
    assert [e["code"] for e in statement.batch.errors] == ["older_than_reported"] and _held(alice, "BTC") == Decimal("2")


def test_a_rejected_batchs_report_reads_in_each_readers_language_and_an_old_report_as_stored(client, api_client, officer, accounts):
    """A report was frozen in the language of whoever sent the batch: a Chinese reader saw English problems and the reverse."""
    from django.utils import translation

    with translation.override("zh-hant"):
        result = services.batch_import(kind="positions_intraday", actor=officer, content=positions_csv("LANG-1", [("M-9999", "00005", 1)]))
    english = "Account M-9999 is not a confirmed securities margin account of any client."
    chinese = "賬戶M-9999不是任何客戶已確認的證券保證金賬戶。"
    assert result.batch.errors[0]["message"] == english  # the record, in English
    page = f"/collateral/operations/batches/{result.batch.pk}/"

    def read(language):
        officer.preferred_language = language
        officer.save(update_fields=["preferred_language"])
        api_client.force_login(officer)
        client.force_login(officer)
        return (api_client.get("/api/v1/collateral/staff/imports/").json()["results"][0]["errors"][0]["message"],
                client.get(page).content.decode())

    api_en, page_en = read("en")
    api_zh, page_zh = read("zh-hant")
    assert (api_en, api_zh) == (english, chinese)
    assert english in page_en and chinese in page_zh
    ImportBatch.objects.filter(pk=result.batch.pk).update(errors=[{"line": 2, "field": "account", "code": "no_margin_account", "message": "An old report's problem."}])
    assert read("zh-hant")[0] == "An old report's problem."


@pytest.mark.parametrize("content,says", [
    ("", "Nothing was sent"),
    ("batch_id,as_of,account,instrument,quantity\n", "The batch has no lines."),
    ("batch_id,as_of,account,instrument,quantity\nA,2026-03-02,M-1001,00005,1\nA,2026-03-02,M-1001,00006,1\nB,2026-03-02,M-1001,00700,1\n",
     "Line 4 has batch_id 'B', not 'A' as line 2"),
    ("batch_id,as_of,account,instrument,quantity\nA,2026-03-02,M-1001,00005,1\nA,2026-03-03,M-1001,00700,1\n", "Line 3 has as_of '2026-03-03', not '2026-03-02' as line 2"),
])
def test_a_file_that_is_not_a_batch_is_a_400_saying_what_is_wrong_and_is_not_stored(api_client, machine_key, accounts, content, says):
    """An empty text/csv body was told "The batch needs a list of lines." (JSON's wording), a header-only file that it
    "needs a batch_id", and mixed batch ids did not say where."""
    response = api_client.post("/api/v1/collateral/imports/positions_eod/", content, content_type="text/csv", HTTP_AUTHORIZATION=f"Api-Key {machine_key.token}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_file" and says in error["message"], error
    assert not ImportBatch.objects.exists()
