"""One price authority: every reference price is the governed median of named sources' bounded quotes, or
an override two credit managers agreed; every change of the reference revalues the book at once."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from lending import selectors as lending_selectors
from lending.models import CurrentPrice, Facility
from lending.risk import services
from lending.risk.models import AlarmKind, MarginCall, OverrideStatus, PriceAlarm, PriceQuote, PriceSource
from portal.audit import SYSTEM
from portal.errors import ForbiddenError, PortalError
from portal.models import AuditEvent

from .conftest import make_facility

pytestmark = pytest.mark.django_db

MIXED = {"securities": (("10000000", "0.30"),), "btc": "2", "eth": "10"}  # lending value 7,702,500 at 760,000 / 27,000


@pytest.fixture
def production_band(book, officer, credit_manager):
    """The production default band (25%) instead of the tests' wide one."""
    numbers = {"source_deviation_max": "0.02", "volatility_alarm_level": "0.90", "stress_btc_shock": "-0.50", "stress_eth_shock": "-0.60",
               "stress_securities_shock": "-0.30", "quote_band_max": "0.25", "override_justification_level": "0.10"}
    proposed = services.risk_policy_propose(actor=officer, numbers=numbers, reason="Production band")
    services.risk_policy_decide(actor=credit_manager, policy_id=proposed.pk, approve=True)
    return book


@pytest.fixture
def desk(db):
    return services.price_source_create(actor=SYSTEM, code="desk", name="Dealing desk", kind="desk")


def btc() -> Decimal:
    return CurrentPrice.objects.get(asset="BTC").price_hkd


@pytest.mark.parametrize("price", ["1.00", "15000", "53899960756", "100000"])
def test_an_officer_price_far_from_the_governed_price_is_refused_and_changes_nothing(production_band, desk, officer, alice, price):
    facility = make_facility(alice, drawn="7000000", **MIXED)
    quotes = PriceQuote.objects.count()
    with pytest.raises(PortalError) as exc:
        services.quote_record(actor=officer, source_code="desk", asset="BTC", price_hkd=price)
    assert exc.value.code == "quote_out_of_band" and "25%" in exc.value.message
    assert btc() == Decimal("760000.00") and PriceQuote.objects.count() == quotes
    assert Facility.objects.get(pk=facility.pk).band == "healthy"


@pytest.mark.parametrize(("as_of", "code"), [
    (datetime(437, 1, 1, tzinfo=timezone.get_current_timezone()), "quote_stale"),
    (timezone.now() - timedelta(minutes=16), "quote_stale"),
    (timezone.now() + timedelta(hours=1), "quote_in_future"),
])
def test_a_quote_dated_in_the_future_or_older_than_the_freshness_limit_is_refused(book, desk, officer, as_of, code):
    with pytest.raises(PortalError) as exc:
        services.quote_record(actor=officer, source_code="desk", asset="BTC", price_hkd="761000", as_of=as_of)
    assert exc.value.code == code


def test_staff_cannot_quote_under_a_feeds_name(book, officer):
    with pytest.raises(PortalError) as exc:
        services.quote_record(actor=officer, source_code="test", asset="BTC", price_hkd="761000")
    assert "feed" in exc.value.message


def test_a_desk_quote_is_one_vote_in_the_median_and_drops_out_when_stale(book, desk, officer):
    import time_machine

    services.quote_record(actor=officer, source_code="desk", asset="BTC", price_hkd="780000")
    assert btc() == Decimal("770000.00")  # median of the test feed's 760,000 and the desk's 780,000
    assert AuditEvent.objects.filter(action="risk.quotes.entered", actor=officer).exists()
    with time_machine.travel(timezone.now() + timedelta(minutes=16), tick=False):
        services.quote_record(actor=SYSTEM, source_code="test", asset="BTC", price_hkd="760000")
        assert btc() == Decimal("760000.00")  # the desk's quote is stale: it no longer counts


def test_source_weights_move_the_median(book, desk, officer, credit_manager):
    services.source_ensure(code="second", name="Second feed")
    services.quotes_record(rows=[{"source_code": "second", "asset": "BTC", "price_hkd": "770000"}])
    services.quote_record(actor=officer, source_code="desk", asset="BTC", price_hkd="800000")
    assert btc() == Decimal("770000.00")
    services.price_source_update(actor=credit_manager, source_id=desk.pk, weight="3", reason="Most liquid venue")
    assert btc() == Decimal("800000.00")  # weight 3 of 5: the desk's price is the weighted median
    services.price_source_update(actor=credit_manager, source_id=desk.pk, active=False, reason="Desk closed")
    assert btc() == Decimal("765000.00")
    changes = [(e.after["weight"], e.after["active"]) for e in AuditEvent.objects.filter(action="risk.price_source.updated").order_by("id")]
    assert changes == [("3.00", True), ("3.00", False)]


def test_every_change_of_the_reference_revalues_the_book_in_the_same_transaction(book, desk, officer, alice):
    """No task, no beat: the facility is in margin call the moment the quote commits."""
    facility = make_facility(alice, drawn="7650000", **MIXED)  # 0.9932 at 760,000
    # median 680,000: LV 7,000,000 + 2 × 680,000 × 0.4 + 94,500 = 7,638,500 → 1.0015
    services.quote_record(actor=officer, source_code="desk", asset="BTC", price_hkd="600000")
    facility.refresh_from_db()
    assert facility.band == "margin_call" and facility.has_open_margin_call
    assert MarginCall.objects.filter(facility=facility, state="open").exists()
    assert AuditEvent.objects.filter(action="risk.reference_price.changed").exists()


def test_a_feed_quote_beyond_the_band_is_left_out_and_alarmed(production_band):
    services.source_ensure(code="second", name="Second feed")
    services.quotes_record(rows=[
        {"source_code": "test", "asset": "BTC", "price_hkd": "762000"},
        {"source_code": "second", "asset": "BTC", "price_hkd": "1.00"},  # a fat finger
    ])
    assert btc() == Decimal("762000.00")
    alarm = PriceAlarm.objects.get(kind=AlarmKind.QUOTE_REFUSED, cleared_at__isnull=True)
    assert alarm.key == "BTC:quote_refused:second" and "policy band" in alarm.message
    services.quotes_record(rows=[{"source_code": "second", "asset": "BTC", "price_hkd": "761000"}])
    assert not PriceAlarm.objects.filter(kind=AlarmKind.QUOTE_REFUSED, cleared_at__isnull=True).exists()


def test_an_override_is_proposed_with_its_deviation_and_effect_and_needs_a_second_credit_manager(
    production_band, alice, credit_manager, credit_manager2,
):
    facility = make_facility(alice, drawn="7600000", **MIXED)  # 0.9867: watch
    with pytest.raises(PortalError) as exc:  # 21% from the governed price: a justification is required
        services.override_propose(actor=credit_manager, asset="BTC", price_hkd="600000", expires_at=timezone.now() + timedelta(hours=4),
                                  reason="Exchange halted")
    assert exc.value.code == "justification_required" and "10%" in exc.value.message
    override = services.override_propose(
        actor=credit_manager, asset="BTC", price_hkd="600000", expires_at=timezone.now() + timedelta(hours=4), reason="Exchange halted",
        justification="OTC desks print 20% under the last venue price; the venues are not tradable.")
    assert override.status == OverrideStatus.PROPOSED and override.governed_price == Decimal("760000.00")
    assert override.deviation == Decimal("0.2105")
    # The stress engine's preview of the book at 600,000: LV 7,574,500, utilisation 1.0034, a shortfall of 25,500.
    assert (override.preview["facilities"], override.preview["margin_call"], override.preview["newly_in_call"]) == (1, 1, 1)
    assert Decimal(override.preview["shortfall"]) == Decimal("25500.00")
    assert btc() == Decimal("760000.00")  # not in force until approved
    with pytest.raises(ForbiddenError) as refused:
        services.override_decide(actor=credit_manager, override_id=override.pk, approve=True)
    assert refused.value.code == "four_eyes"
    services.override_decide(actor=credit_manager2, override_id=override.pk, approve=True, note="Confirmed with the desk")
    assert btc() == Decimal("600000.00")
    facility.refresh_from_db()
    assert facility.band == "margin_call"  # revalued at the override in the same transaction
    assert list(AuditEvent.objects.filter(object_type="risk.priceoverride").values_list("action", flat=True).order_by("id")) == [
        "risk.price_override.proposed", "risk.price_override.approved"]
    # While it is in force quotes are bounded around it: a venue still at 760,000 is refused.
    with pytest.raises(PortalError):
        services.quote_record(actor=SYSTEM, source_code="test", asset="BTC", price_hkd="760000")


def test_an_override_close_to_the_governed_price_needs_no_justification_and_can_be_rejected(book, credit_manager, credit_manager2):
    override = services.override_propose(actor=credit_manager, asset="ETH", price_hkd="26000", expires_at=timezone.now() + timedelta(hours=1), reason="Thin book")
    assert override.deviation == Decimal("0.0370")
    services.override_decide(actor=credit_manager2, override_id=override.pk, approve=False, note="Not needed")
    override.refresh_from_db()
    assert override.status == OverrideStatus.REJECTED
    assert CurrentPrice.objects.get(asset="ETH").price_hkd == Decimal("27000.00")


def test_price_sources_are_created_reweighted_and_deactivated_through_the_api_and_audited(api_client, book, officer, credit_manager):
    api_client.force_login(officer)
    assert api_client.get("/api/v1/risk/staff/prices/sources/").status_code == 200
    assert api_client.post("/api/v1/risk/staff/prices/sources/", {"code": "otc", "name": "OTC"}, format="json").status_code == 403
    api_client.force_login(credit_manager)
    created = api_client.post("/api/v1/risk/staff/prices/sources/", {"code": "otc", "name": "Harbour OTC", "kind": "feed", "weight": "2"}, format="json")
    assert created.status_code == 201 and created.json()["weight"] == "2.00"
    bad = api_client.post("/api/v1/risk/staff/prices/sources/", {"code": "otc", "name": "again"}, format="json")
    assert bad.status_code == 409
    changed = api_client.patch(f"/api/v1/risk/staff/prices/sources/{created.json()['id']}/", {"active": False, "reason": "Stopped quoting"}, format="json")
    assert changed.status_code == 200 and changed.json()["active"] is False
    assert AuditEvent.objects.filter(action="risk.price_source.created", actor=credit_manager).exists()
    assert AuditEvent.objects.filter(action="risk.price_source.updated", actor=credit_manager).exists()


def test_price_sources_outside_the_demo_in_the_django_admin_are_audited(client, admin_user, book):
    client.force_login(admin_user)
    response = client.post("/admin/risk/pricesource/add/", {"code": "venue-x", "name": "Venue X", "kind": "feed", "weight": "1.5", "active": "on"})
    assert response.status_code == 302
    source = PriceSource.objects.get(code="venue-x")
    assert source.weight == Decimal("1.50") and source.created_by == admin_user
    assert AuditEvent.objects.filter(action="risk.price_source.created", actor=admin_user, object_id=str(source.pk)).exists()
    response = client.post(f"/admin/risk/pricesource/{source.pk}/change/", {"name": "Venue X", "weight": "1.5", "reason": "retired"})
    source.refresh_from_db()
    assert not source.active and AuditEvent.objects.filter(action="risk.price_source.updated", actor=admin_user).exists()
    assert client.get(f"/admin/risk/pricesource/{source.pk}/delete/").status_code == 403


def test_staff_page_adds_and_deactivates_sources_and_shows_a_proposed_override(client, book, credit_manager, credit_manager2):
    client.force_login(credit_manager)
    client.post("/risk/prices/", {"action": "source_create", "code": "desk2", "name": "Second desk", "kind": "desk", "weight": "1"})
    source = PriceSource.objects.get(code="desk2")
    client.post("/risk/prices/", {"action": "source_update", "source_id": source.pk, "active": "0"})
    source.refresh_from_db()
    assert not source.active
    client.post("/risk/prices/", {"action": "override", "asset": "BTC", "price_hkd": "740000", "hours": "2", "reason": "Thin market"})
    page = client.get("/risk/prices/").content.decode()
    assert "Awaiting another credit manager" in page
    # The governance thresholds in percent, as the alarms state them (the page said "more than 0.0200 from the median").
    assert "more than 0.0200" not in page and "more than 2.0% from the median" in page
    client.force_login(credit_manager2)
    page = client.get("/risk/prices/").content.decode()
    assert 'value="approve_override"' in page and "facilities would be in margin call" in page
    # A security quoted below the cent (HK$0.001 steps) can be entered on the page, not only through the API.
    assert page.count('name="price_hkd" type="number" step="0.001" min="0.001"') == 2
    bad = client.post("/risk/prices/", {"action": "override", "asset": "BTC", "price_hkd": "740000", "hours": "1e10", "reason": "x"}, follow=True)
    assert bad.status_code == 200 and "at most 168" in bad.content.decode()


def test_load_prices_command_records_quotes_from_named_sources(book, tmp_path, desk):
    path = tmp_path / "prices.csv"
    path.write_text(f"source,asset,price_hkd,as_of\ndesk,BTC,770000,{timezone.now().isoformat()}\n")
    call_command("load_prices", str(path))
    assert btc() == Decimal("765000.00")
    path.write_text(f"source,asset,price_hkd,as_of\nnobody,BTC,770000,{timezone.now().isoformat()}\n")
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("load_prices", str(path))


def test_the_lending_price_api_is_a_quote_and_refuses_implausible_prices(api_client, production_band, desk, officer):
    api_client.force_login(officer)
    response = api_client.post("/api/v1/lending/staff/prices/", {"asset": "BTC", "price_hkd": "100000", "source": "desk"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "quote_out_of_band"
    ok = api_client.post("/api/v1/lending/staff/prices/", {"asset": "BTC", "price_hkd": "770000", "source": "desk"}, format="json")
    assert ok.status_code == 201 and ok.json()["source"] == "desk"
    assert lending_selectors.prices_current()["BTC"].price_hkd == Decimal("765000.00")
