"""Every margin call the engine opens, escalates, moves or meets has its own audit row, written set-based."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lending.risk import services
from lending.risk.models import MarginCall
from lending.risk.revaluation import revalue_book
from portal.audit import audit_chain_verify
from portal.models import AuditEvent
from tests.helpers import make_user

from .conftest import make_facility, set_prices

pytestmark = pytest.mark.django_db
MIXED = {"securities": (("10000000", "0.30"),), "btc": "2", "eth": "10"}  # lending value 7,702,500


def history(call) -> list[str]:
    return list(AuditEvent.objects.filter(object_type="risk.margincall", object_id=str(call.pk)).order_by("id").values_list("action", flat=True))


def test_each_call_the_revaluation_opens_or_escalates_has_its_own_audit_row(book, alice, charlie):
    near = make_facility(alice, drawn="7650000", **MIXED)
    deep = make_facility(charlie, drawn="9500000", **MIXED)
    revalue_book()
    set_prices(btc=Decimal("500000"))  # LV 7,494,500: near 1.0208 (call), deep 1.2676 (call)
    calls = {c.facility_id: c for c in MarginCall.objects.all()}
    assert set(calls) == {near.pk, deep.pk}
    for facility, call in ((near, calls[near.pk]), (deep, calls[deep.pk])):
        opened = AuditEvent.objects.get(object_type="risk.margincall", object_id=str(call.pk), action="risk.margin_call.opened")
        assert opened.after["facility"] == facility.pk and Decimal(opened.after["shortfall"]) == call.shortfall
        assert opened.actor_label == "system"
    set_prices(btc=Decimal("100000"))  # deep: 9,500,000 / 7,174,500 = 1.3241 ≥ 1.30: close-out, escalated at once
    deep_call = MarginCall.objects.get(pk=calls[deep.pk].pk)
    assert deep_call.state == "escalated"
    assert history(deep_call) == ["risk.margin_call.opened", "risk.margin_call.escalated", "risk.margin_call.updated"]
    moved = AuditEvent.objects.get(object_id=str(deep_call.pk), action="risk.margin_call.updated")
    assert (moved.before["band"], moved.after["band"]) == ("margin_call", "close_out")
    assert history(calls[near.pk]) == ["risk.margin_call.opened"]  # same band: its shortfall moved, no row
    assert audit_chain_verify().ok


def test_a_call_met_by_a_repayment_and_one_escalated_when_overdue_each_have_their_row(book, alice, charlie, officer):
    import time_machine

    from lending import services as lending_services

    paid = make_facility(alice, drawn="8000000", officer=officer, **MIXED)
    late = make_facility(charlie, drawn="8000000", officer=officer, **MIXED)
    revalue_book()
    paid_call, late_call = MarginCall.objects.get(facility=paid), MarginCall.objects.get(facility=late)
    lending_services.facility_repay(actor=officer, facility_id=paid.pk, amount="400000")
    assert history(MarginCall.objects.get(pk=paid_call.pk)) == ["risk.margin_call.opened", "risk.margin_call.met"]
    with time_machine.travel(late_call.cure_deadline.timestamp() + 60, tick=False):
        assert services.margin_calls_escalate_due() == 1
    assert history(late_call) == ["risk.margin_call.opened", "risk.margin_call.escalated"]
    row = AuditEvent.objects.get(object_id=str(late_call.pk), action="risk.margin_call.escalated")
    assert row.after["escalation_reason"] == "overdue"


def test_the_call_page_shows_the_calls_history(client, book, alice, officer):
    facility = make_facility(alice, drawn="8000000", officer=officer, **MIXED)
    revalue_book()
    call = MarginCall.objects.get(facility=facility)
    services.margin_call_escalate(actor=officer, call_id=call.pk, reason="Client unreachable by phone")
    client.force_login(officer)
    page = client.get(f"/risk/margin-calls/{call.pk}/").content.decode()
    assert "Opened by the revaluation" in page and "shortfall HK$297,500.00" in page
    assert "Escalated to the credit managers" in page and officer.email in page


def test_the_number_of_audit_rows_follows_the_band_changes_not_the_open_calls(book, alice):
    """Ten open calls whose shortfall moves with the price write no rows; only band moves do."""
    clients = [make_user("client", email=f"c{i}@example.com") for i in range(10)]
    for c in clients:
        make_facility(c, drawn="8000000", **MIXED)
    revalue_book()
    before = AuditEvent.objects.filter(object_type="risk.margincall").count()
    set_prices(btc=Decimal("740000"))  # every call's shortfall changes, no band changes
    assert AuditEvent.objects.filter(object_type="risk.margincall").count() == before
