"""One locking module: book → prices → application → facility → margin call → audit chain, inside a transaction."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connections, transaction

from lending import locks
from portal.audit import audit_chain_verify, audit_log
from tests.helpers import need_postgres


@pytest.mark.django_db(transaction=True)
def test_every_lock_refuses_to_run_outside_a_transaction():
    from lending.models import Facility

    with pytest.raises(locks.LockOutsideTransaction):
        locks.book()
    with pytest.raises(locks.LockOutsideTransaction):
        locks.facility(1, Facility.objects.all())


@pytest.mark.django_db
def test_the_book_lock_after_an_audit_row_is_refused_as_a_lock_order_inversion(officer):
    with pytest.raises(locks.LockOrderError) as exc, transaction.atomic():
        audit_log(actor=officer, action="test.first", object_type="test")
        locks.book()
    assert "after AUDIT" in str(exc.value)


@pytest.mark.django_db
def test_a_facility_row_needs_the_book_lock_and_a_new_one_after_a_call_row_is_refused(book_facility):
    from lending.models import Facility
    from lending.risk.models import MarginCall

    with pytest.raises(locks.LockOrderError), transaction.atomic():
        locks.facility(book_facility.pk, Facility.objects.all())
    with pytest.raises(locks.LockOrderError), transaction.atomic():
        locks.book()
        locks.rows(locks.Level.MARGIN_CALL, MarginCall.objects.all(), [1])
        locks.facility(book_facility.pk, Facility.objects.all())


@pytest.mark.django_db
def test_what_is_already_held_may_be_asked_for_again_and_each_transaction_starts_clean(book_facility, officer):
    from lending.models import Facility

    with transaction.atomic():
        locks.book()
        locks.facility(book_facility.pk, Facility.objects.all())
        audit_log(actor=officer, action="test.first", object_type="test")
        locks.book()  # held: no new wait
        locks.facility(book_facility.pk, Facility.objects.all())  # the same row: held
        assert locks.held() == {locks.Level.BOOK, locks.Level.FACILITY, locks.Level.AUDIT}
    with transaction.atomic():
        assert locks.held() == frozenset()
        locks.book()


@pytest.fixture
def book_facility(db, officer, credit_manager, alice):
    from tests.lending.conftest import approved_policy, set_prices
    from tests.risk.conftest import make_facility

    approved_policy(officer=officer, credit_manager=credit_manager)
    set_prices()
    return make_facility(alice, drawn="1000000", securities=(("10000000", "0.30"),), btc="2", eth="10")


# --- PostgreSQL: the paths that used to invert the order, run at once ------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_acceptance_close_out_and_drawdowns_run_concurrently_with_whole_book_revaluations(
    facts, alice, charlie, officer, officer2, credit_manager, credit_manager2,
):
    """No deadlock (PostgreSQL reports one within its deadlock_timeout), no lost update (every balance is
    the sum of its drawdowns), the audit chain intact."""
    need_postgres()
    from lending import services
    from lending.models import AppState, Facility, FacilityApplication, FacilityTransaction
    from lending.risk import services as risk_services
    from lending.risk.models import CallState, MarginCall
    from lending.risk.revaluation import revalue_book
    from tests.helpers import make_user
    from tests.lending.conftest import CLASS_INSTRUMENT, SECURITY_PRICE, approved_policy, draft, set_prices
    from tests.risk.conftest import make_facility

    approved_policy(officer=officer, credit_manager=credit_manager)
    set_prices(securities={code: SECURITY_PRICE for code in CLASS_INSTRUMENT.values()})  # the application pledges holdings
    mixed = {"securities": (("10000000", "0.30"),), "btc": "2", "eth": "10"}
    # 1. An application approved and waiting for the client's acceptance.
    app = draft(alice, limit="3000000")
    services.application_submit(user=alice, application_id=app.pk, confirm_terms=True)  # reviewed eagerly on commit
    services.application_approve(actor=officer, application_id=app.pk, limit="3000000")
    app = FacilityApplication.objects.get(pk=app.pk)
    assert app.state == AppState.APPROVED
    # 2. A facility in margin call, escalated, with a close-out proposed by an officer.
    in_call = make_facility(charlie, drawn="8000000", officer=officer, **mixed)
    revalue_book()
    call = MarginCall.objects.get(facility=in_call)
    risk_services.margin_call_escalate(actor=officer, call_id=call.pk, reason="Client unreachable")
    risk_services.margin_call_propose(actor=officer, call_id=call.pk, resolution="close_out", reason="No response by the deadline")
    # 3. Healthy facilities to draw on.
    borrowers = [make_user("client", email=f"d{i}@example.com") for i in range(3)]
    drawn = [make_facility(u, drawn="1000000", **mixed) for u in borrowers]

    errors: list = []
    barrier = threading.Barrier(7)

    def run(fn):
        try:
            barrier.wait(timeout=30)
            fn()
        except Exception as exc:  # noqa: BLE001 - every failure is reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def accept():
        services.application_accept(user=alice, application_id=app.pk, letter_sha256=app.letter_sha256)

    def close_out():
        risk_services.margin_call_decide(actor=credit_manager, call_id=call.pk, approve=True, note="Approved: liquidate")

    def draws(facility):
        def go():
            for _ in range(5):
                services.facility_drawdown(actor=officer2, facility_id=facility.pk, amount="10000.00", reference="concurrency")
        return go

    def revaluations(prices):
        def go():
            for btc in prices:
                set_prices(btc=Decimal(btc))
                revalue_book(trigger="tick")
        return go

    threads = [threading.Thread(target=run, args=(fn,)) for fn in (
        accept, close_out, draws(drawn[0]), draws(drawn[1]), draws(drawn[2]),
        revaluations(["750000", "740000", "755000"]), revaluations(["745000", "760000", "752000"]),
    )]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a thread is still waiting: a lock cycle"
    assert not errors, errors
    assert time.monotonic() - started < 60
    assert FacilityApplication.objects.get(pk=app.pk).state == AppState.ACTIVE
    assert MarginCall.objects.get(pk=call.pk).state == CallState.CLOSED_OUT
    assert Facility.objects.get(pk=in_call.pk).state == "suspended"
    for facility in drawn:
        txns = FacilityTransaction.objects.filter(facility=facility)
        assert txns.count() == 5
        assert Facility.objects.get(pk=facility.pk).drawn_balance == Decimal("1000000.00") + sum(t.amount for t in txns)
    assert audit_chain_verify().ok
