"""The ledger: immutable entries, balance after each, the drawn balance is the sum of its entries."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from lending.ledger import ledger_check
from lending.models import Facility, FacilityTransaction, ImmutableLedgerError
from tests.servicing.conftest import make_facility, post

pytestmark = pytest.mark.django_db


def test_every_kind_moves_the_balance_by_its_sign(alice, book):
    facility = make_facility(alice)
    post(facility, "drawdown", "1000.00", date(2025, 11, 1))
    post(facility, "interest", "10.00", date(2025, 11, 30))
    post(facility, "fee", "5.00", date(2025, 11, 30))
    post(facility, "repayment", "300.00", date(2025, 12, 1))
    post(facility, "sale_proceeds", "200.00", date(2025, 12, 2))
    post(facility, "adjustment", "0.50", date(2025, 12, 2), sign=-1)
    post(facility, "write_off", "514.50", date(2025, 12, 3))
    post(facility, "recovery", "100.00", date(2025, 12, 4))
    entries = list(FacilityTransaction.objects.filter(facility=facility).order_by("id").values_list("kind", "delta", "balance_after"))
    assert [e[2] for e in entries] == [Decimal(x) for x in ("1000.00", "1010.00", "1015.00", "715.00", "515.00", "514.50", "0.00", "0.00")]
    assert Facility.objects.get(pk=facility.pk).drawn_balance == sum(e[1] for e in entries) == Decimal("0.00")
    report = ledger_check()
    assert report.ok and report.entries == 8


def test_an_entry_cannot_take_the_balance_below_zero(alice, book):
    from portal.errors import PortalError

    facility = make_facility(alice)
    post(facility, "drawdown", "100.00", date(2025, 11, 1))
    with pytest.raises(PortalError, match="more than the drawn balance"):
        post(facility, "repayment", "100.01", date(2025, 11, 2))
    assert FacilityTransaction.objects.filter(facility=facility).count() == 1


def test_entries_are_immutable_in_the_orm(alice, book):
    facility = make_facility(alice)
    entry = post(facility, "drawdown", "100.00", date(2025, 11, 1))
    with pytest.raises(ImmutableLedgerError):
        FacilityTransaction.objects.filter(pk=entry.pk).update(amount=Decimal("1"))
    entry.amount = Decimal("1")
    with pytest.raises(ImmutableLedgerError):
        entry.save()
    with pytest.raises(ImmutableLedgerError):
        entry.delete()
    with pytest.raises(ImmutableLedgerError):
        FacilityTransaction.objects.filter(pk=entry.pk).delete()


def test_entries_are_immutable_in_sql(alice, book):
    facility = make_facility(alice)
    entry = post(facility, "drawdown", "100.00", date(2025, 11, 1))
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE lending_facilitytransaction SET amount = 1 WHERE id = %s", [entry.pk])
    assert FacilityTransaction.objects.get(pk=entry.pk).amount == Decimal("100.00")


def test_ledger_verify_names_a_facility_whose_balance_disagrees_with_its_entries(alice, book):
    facility = make_facility(alice)
    post(facility, "drawdown", "100.00", date(2025, 11, 1))
    call_command("ledger_verify")
    Facility.objects.filter(pk=facility.pk).update(drawn_balance=Decimal("150.00"))
    with pytest.raises(CommandError, match=f"facility {facility.pk}: drawn balance 150.00 but its entries sum to 100.00"):
        call_command("ledger_verify")


def test_ledger_verify_names_an_entry_whose_balance_after_is_wrong(alice, book):
    facility = make_facility(alice)
    post(facility, "drawdown", "100.00", date(2025, 11, 1))
    with connection.cursor() as cursor:  # a row written around the service, with a wrong running balance
        cursor.execute(
            "INSERT INTO lending_facilitytransaction (facility_id, kind, amount, delta, balance_after, value_date, reference, narrative, created_at) "
            "VALUES (%s, 'drawdown', 50, 50, 999, %s, '', '', %s)", [facility.pk, date(2025, 11, 2), "2025-11-02 00:00:00"])
        cursor.execute("SELECT MAX(id) FROM lending_facilitytransaction")
        bad = cursor.fetchone()[0]
    Facility.objects.filter(pk=facility.pk).update(drawn_balance=Decimal("150.00"))
    report = ledger_check()
    assert report.broken_entries == [bad] and not report.mismatched_facilities
    with pytest.raises(CommandError, match=str(bad)):
        call_command("ledger_verify")


def test_staff_drawdown_and_repayment_write_ledger_entries(alice, book, officer, facts):
    from lending import services

    facility = make_facility(alice)
    services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="1000.00", reference="D1")
    services.facility_repay(actor=officer, facility_id=facility.pk, amount="400.00", reference="R1")
    rows = list(FacilityTransaction.objects.filter(facility=facility).order_by("id").values_list("kind", "delta", "balance_after", "recorded_by"))
    assert rows == [("drawdown", Decimal("1000.00"), Decimal("1000.00"), officer.pk), ("repayment", Decimal("-400.00"), Decimal("600.00"), officer.pk)]
    assert ledger_check().ok


def test_a_value_date_is_never_in_the_future_nor_on_a_day_already_accrued(alice, prime):
    from datetime import timedelta

    from django.utils import timezone

    from lending.servicing import interest
    from portal.errors import PortalError

    facility = make_facility(alice)
    with pytest.raises(PortalError, match="future"):
        post(facility, "drawdown", "100.00", timezone.localdate() + timedelta(days=1))
    post(facility, "drawdown", "100.00", date(2025, 11, 1))
    interest.accrue_day(day=date(2025, 11, 1))
    with pytest.raises(PortalError, match="already been accrued for 2025-11-01"):
        post(facility, "drawdown", "100.00", date(2025, 11, 1))
    with pytest.raises(PortalError, match="already been accrued"):
        post(facility, "repayment", "50.00", date(2025, 10, 30))
    post(facility, "repayment", "50.00", date(2025, 11, 2))  # a day not yet accrued is fine
