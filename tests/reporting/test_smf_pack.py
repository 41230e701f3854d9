"""The SMF control pack's figures against a book computed by hand.

Book at BTC HK$760,000 and ETH HK$27,000 (policy: BTC 60%, ETH 65% haircut, VA at most 40% of lending value):

* alice: securities HK$10,000,000 at 30% → 7,000,000; 2 BTC = 1,520,000 → 608,000 (under the cap 4,666,666.67);
  lending value 7,608,000; drawn 6,000,000.
* charlie: securities HK$2,000,000 at 50% → 1,000,000; 100 ETH = 2,700,000 → 945,000, capped at
  1,000,000 × 0.4/0.6 = 666,666.67; lending value 1,666,666.67; drawn 1,500,000.

Totals: loans 7,500,000; lending value 9,274,666.67; securities-only (capital view) 8,000,000; loans not covered:
0 in the 26EC5 view, 500,000 in the capital view (charlie: 1,500,000 − 1,000,000). Market value 16,220,000 of which
VA 4,220,000 (26.02%); VA lending value 1,274,666.67 (13.74%). Liquid capital 1,500,000 → 5.00×, exactly the ceiling.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine

from tests.reporting.conftest import make_facility

pytestmark = pytest.mark.django_db
HK = ZoneInfo("Asia/Hong_Kong")
NOW = datetime(2026, 11, 30, 23, 58, tzinfo=HK)  # after the end-of-day valuation (23:55)
AS_OF = date(2026, 11, 30)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def _call(facility, *, state, opened, **extra):
    from lending.risk.models import MarginCall

    return MarginCall.objects.create(
        facility=facility, client=facility.client, state=state, opened_at=opened, cure_deadline=opened + timedelta(days=3),
        shortfall=Decimal("100000"), shortfall_at_open=Decimal("100000"), utilisation=Decimal("1.05"),
        utilisation_at_open=Decimal("1.05"), lending_value=Decimal("1000000"), drawn_balance=Decimal("1050000"), band="margin_call", **extra,
    )


@pytest.fixture
def smf_book(frozen, book, alice, charlie, officer, credit_manager, compliance_user, compliance2):
    from lending.reporting import services
    from lending.risk import services as risk_services
    from lending.risk.models import CallState

    f1 = make_facility(alice, drawn="6000000", securities=(("10000000", "0.30"),), btc="2")
    f2 = make_facility(charlie, drawn="1500000", securities=(("2000000", "0.50"),), eth="100")
    assert risk_services.snapshots_take(day=AS_OF) == 6  # securities + BTC + total, securities + ETH + total
    hour = timedelta(hours=1)
    _call(f1, state=CallState.ESCALATED, opened=datetime(2026, 10, 20, 10, 0, tzinfo=HK), escalated_at=datetime(2026, 10, 25, tzinfo=HK))
    _call(f1, state=CallState.MET, opened=NOW - 3 * hour, met_at=NOW - hour)
    _call(f1, state=CallState.WAIVED, opened=NOW - 3 * hour, resolved_at=NOW - hour)
    _call(f2, state=CallState.CLOSED_OUT, opened=NOW - 2 * hour, escalated_at=NOW - hour, resolved_at=NOW - hour / 2)
    _call(f2, state=CallState.OPEN, opened=NOW - hour)
    risk_services.stress_monthly_report(now=NOW)
    entry = services.capital_propose(actor=credit_manager, as_of=AS_OF, liquid_capital="1500000", source_reference="FRR Nov", reason="month end")
    services.capital_approve(actor=compliance_user, entry_id=entry.pk)
    dev = services.deviation_propose(actor=compliance_user, area="client_concentration", benchmark="Top client ≤ 10% of loans",
                                     departure="One client holds 80%", justification="Start-up book", compensating_control="Weekly review",
                                     review_date=date(2027, 2, 28))
    services.deviation_approve(actor=compliance2, deviation_id=dev.pk)
    return f1, f2


def test_every_control_area_matches_the_hand_computed_book(smf_book):
    from lending.reporting import smf

    d = smf.compute(as_of=AS_OF)
    assert d["book_source"]["kind"] == "snapshot" and d["book_source"]["day"] == "2026-11-30"
    t = d["total_loans"]
    assert t["total_loans"] == "7500000.00"
    assert t["liquid_capital"] == "1500000.00"
    assert t["multiple"] == "5.0000" and t["within_ceiling"] is True and t["headroom"] == "0.00"
    assert t["lending_view"] == {"lending_value": "9274666.67", "uncovered": "0.00"}
    assert t["capital_view"]["lending_value"] == "8000000.00"
    assert t["capital_view"]["uncovered"] == "500000.00"
    assert t["capital_view"]["uncovered_to_capital"] == "0.3333"
    c = d["credit_limits"]
    assert c["facilities_open"] == 2 and c["limits_total"] == "100000000.00" and c["over_limit"] == 0
    assert c["drawn_to_limits"] == "0.0750" and c["clients_over_client_limit"] == [] and c["firm_within"] is True
    cl = d["collateral_concentration"]
    assert [(r["asset"], r["market_value"]) for r in cl["by_asset"]] == [("securities", "12000000.00"), ("BTC", "1520000.00"), ("ETH", "2700000.00")]
    assert cl["market_value"] == "16220000.00" and cl["va_market_value"] == "4220000.00"
    assert cl["va_share_of_market_value"] == "0.2602"
    assert cl["va_lending_value"] == "1274666.67" and cl["va_share_of_lending_value"] == "0.1374" and cl["va_share_cap"] == "0.4000"
    cc = d["client_concentration"]
    assert [(r["email"], r["drawn"], r["share"]) for r in cc["top"]] == [("alice@example.com", "6000000.00", "0.8000"), ("charlie@example.com", "1500000.00", "0.2000")]
    assert cc["top_share"] == "1.0000"
    h = d["haircuts"]
    assert h["in_force"]["btc"] == "0.6000" and h["in_force"]["eth"] == "0.6500" and [p["version"] for p in h["changes"]] == [1]
    m = d["margin_calls"]
    assert (m["opened"], m["met"], m["escalated"], m["closed_out"], m["waived"], m["open_at_end"]) == (4, 1, 1, 1, 1, 2)
    assert m["ages"] == [{"days": "0–2", "count": 1}, {"days": "3–5", "count": 0}, {"days": "6–10", "count": 0}, {"days": "11+", "count": 1}]
    assert m["average_hours_to_meet"] == "2.0" and m["shortfall_opened"] == "400000.00"
    s = d["stress_testing"]
    assert s["monthly_done"] is True and len(s["reports"]) == 1 and s["reports"][0]["btc_shock"] == "-0.5000"
    assert [r["reference"] for r in d["deviations"]] == [f"DEV-{d['deviations'][0]['id']}"]


def test_capital_multiple_one_cent_above_the_ceiling_is_a_breach(smf_book):
    from lending.reporting import selectors

    capital = selectors.capital_at(day=AS_OF)
    assert selectors.loans_to_capital(total_loans=Decimal("7500000.00"), capital=capital)["within"] is True
    above = selectors.loans_to_capital(total_loans=Decimal("7500000.01"), capital=capital)
    assert above["within"] is False and above["headroom"] == Decimal("-0.01")


def test_the_capital_of_a_past_date_is_the_entry_in_force_then(smf_book, credit_manager, compliance_user):
    from lending.reporting import selectors, services

    later = services.capital_propose(actor=credit_manager, as_of=AS_OF, liquid_capital="2000000", source_reference="restated", reason="r")
    with time_machine.travel(NOW + timedelta(days=40), tick=False):
        newer = services.capital_propose(actor=credit_manager, as_of=date(2027, 1, 8), liquid_capital="9000000", source_reference="FRR Dec", reason="r")
        services.capital_approve(actor=compliance_user, entry_id=newer.pk)
    assert selectors.capital_at(day=AS_OF).liquid_capital == Decimal("1500000.00"), "a proposal never counts"
    services.capital_approve(actor=compliance_user, entry_id=later.pk)
    assert selectors.capital_at(day=AS_OF).liquid_capital == Decimal("2000000.00")
    assert selectors.capital_at(day=date(2027, 1, 8)).liquid_capital == Decimal("9000000.00")
    assert selectors.capital_at(day=date(2026, 11, 29)) is None


def test_generated_pack_is_stored_immutably_with_its_hashes(smf_book, compliance_user):
    import hashlib
    import io

    from openpyxl import load_workbook

    from lending.reporting import services
    from lending.reporting.models import SmfPack
    from lending.reporting.services.packs import canonical

    pack = services.smf_pack_generate(actor=compliance_user, as_of=AS_OF)
    assert pack.data_sha256 == hashlib.sha256(canonical(pack.data).encode()).hexdigest()
    assert pack.xlsx_sha256 == hashlib.sha256(bytes(pack.xlsx)).hexdigest()
    sheet = load_workbook(io.BytesIO(bytes(pack.xlsx)))["SMF"]
    labels = {row[0].value: row[1].value for row in sheet.iter_rows(min_row=2)}
    assert labels["Total margin loans (HKD) / 孖展貸款總額（港元）"] == 7500000
    assert labels["Loans ÷ liquid capital / 貸款 ÷ 速動資金"] == 5
    from portal.pdf import pdf_text

    assert pack.pdf_sha256 == hashlib.sha256(bytes(pack.pdf)).hexdigest()
    text = pdf_text(bytes(pack.pdf))
    assert "Total margin loans (HKD)" in text and "孖展貸款總額" in text and "7,500,000.00" in text
    with pytest.raises(PermissionError):
        pack.save()
    with pytest.raises(PermissionError):
        SmfPack.objects.filter(pk=pack.pk).update(version=9)
    with pytest.raises(PermissionError):
        pack.delete()
    second = services.smf_pack_generate(actor=compliance_user, as_of=AS_OF)
    assert second.version == 2 and second.data_sha256 == pack.data_sha256


def test_monthly_job_stores_last_months_pack_once(smf_book):
    from lending.reporting import services
    from lending.reporting.models import SmfPack

    with time_machine.travel(datetime(2026, 12, 1, 7, 0, tzinfo=HK), tick=False):
        first = services.smf_pack_monthly()
        again = services.smf_pack_monthly()
    assert first is not None and again is None
    assert first.as_of == AS_OF and first.kind == SmfPack.Kind.MONTHLY and first.generated_by is None
    assert first.data["total_loans"]["total_loans"] == "7500000.00"
    assert SmfPack.objects.filter(kind="monthly").count() == 1


def test_on_demand_pack_refuses_a_future_date(frozen, compliance_user):
    from lending.reporting import services
    from portal.errors import PortalError

    with pytest.raises(PortalError) as err:
        services.smf_pack_generate(actor=compliance_user, as_of=AS_OF + timedelta(days=1))
    assert "as_of" in err.value.fields


def test_pack_page_shows_the_figures_with_links_and_charts(client, smf_book, compliance_user):
    from lending.reporting import render, services

    pack = services.smf_pack_generate(actor=compliance_user, as_of=AS_OF)
    client.force_login(compliance_user)
    page = client.get(f"/reporting/packs/{pack.pk}/").content.decode()
    assert "7,500,000.00" in page and "5.00×" in page and 'data-testid="capital-gauge"' in page and "<svg" in page
    assert "/reporting/snapshots/?day_from=2026-11-30" in page
    # Compliance may not open margin calls (the margin-call permission): the figure is shown, not linked; the
    # stored PDF, the same for every reader, keeps its links.
    assert "/risk/margin-calls/" not in page and 'data-testid="calls-opened">4 ' in page
    assert '<a href="/risk/margin-calls/">4</a>' in render.pack_html(pack.data)
    xlsx = client.get(f"/reporting/packs/{pack.pk}/pack.xlsx")
    assert xlsx.status_code == 200 and xlsx["X-Content-SHA256"] == pack.xlsx_sha256
    zh = client.get(f"/reporting/packs/{pack.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hant")
    assert zh.status_code == 200


def test_collateral_pledged_by_instrument_issuer_and_sector_from_the_custody_ledger(book, alice, charlie, officer):
    from django.utils import timezone

    from lending.collateral import services as custody
    from lending.collateral.models import Instrument
    from lending.reporting import smf
    from portal.audit import SYSTEM

    tencent = Instrument.objects.get(code="00700")
    btc = Instrument.objects.get(code="BTC")
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
    assert [(r["code"], r["pledged"], r["clients"]) for r in inst["by_instrument"]] == [("BTC", "1.5", 1), ("00700", "500", 2)]  # BTC priced (the book), Tencent not
    assert inst["by_instrument"][1]["sector"] == tencent.sector and inst["instruments_pledged"] == 2
    assert {r["name"]: r["clients"] for r in inst["by_sector"]}[tencent.sector] == 2
