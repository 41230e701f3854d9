"""The debt left after a close-out sold everything: overdue interest, collections, payments, write-off by two
people, recoveries, the compliance register."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from lending.models import Facility, FacilityTransaction
from lending.recovery import selectors, services
from lending.recovery.models import Debt, DebtState, LiquidationPlan, PlanState
from lending.risk import services as risk
from lending.risk.models import MarginCall
from portal.errors import ConflictError, ForbiddenError, PortalError

from .conftest import ledger_ok, pledged_facility, set_prices

pytestmark = pytest.mark.django_db


@pytest.fixture
def debt(book, alice, officer, credit_manager, django_capture_on_commit_callbacks):
    facility = pledged_facility(alice, holdings={"BTC": "1", "00005": "4000"}, drawn="600000", officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        set_prices(BTC="100000", s00005="50")
    call = MarginCall.objects.get(facility_id=facility.pk)
    risk.margin_call_propose(actor=officer, call_id=call.pk, resolution="close_out", reason="Close-out level")
    risk.margin_call_decide(actor=credit_manager, call_id=call.pk, approve=True, note="Sell everything")
    plan = LiquidationPlan.objects.get(call=call, state=PlanState.APPROVED)
    services.execution_record(actor=officer, plan_id=plan.pk, instrument="BTC", quantity="1", price="100000", venue_reference="V-1")
    services.execution_record(actor=officer, plan_id=plan.pk, instrument="00005", quantity="4000", price="50", venue_reference="V-2")
    return Debt.objects.get(facility_id=facility.pk)


def test_shortfall_after_everything_is_sold_is_a_debt(debt):
    assert debt.state == DebtState.OPEN and debt.principal_at_open == Decimal("303000.00")  # 600,000 + fees 3,000 − 300,000
    assert debt.due_on > debt.opened_at.date()


def test_overdue_interest_accrues_on_the_debt_after_its_due_date(debt, officer, credit_manager):
    from lending.servicing.interest import accrue_day
    from lending.servicing.models import InterestAccrual
    from tests.servicing.helpers import fixing

    fixing(rate="0.052500", effective=debt.opened_at.date() - timedelta(days=1), maker=officer, checker=credit_manager)
    accrue_day(day=debt.due_on)
    on_due = InterestAccrual.objects.get(facility_id=debt.facility_id, day=debt.due_on)
    assert on_due.overdue_amount == 0  # due that day: not yet overdue
    accrue_day(day=debt.due_on + timedelta(days=1))
    after = InterestAccrual.objects.get(facility_id=debt.facility_id, day=debt.due_on + timedelta(days=1))
    assert after.overdue_principal == Decimal("303000.00")
    assert after.overdue_amount == Decimal("33.21")  # 303,000 × 4% ÷ 365, rounded half up


def test_a_payment_in_full_repays_the_debt(debt, officer, credit_manager):
    services.debt_payment_record(actor=officer, debt_id=debt.pk, amount="303000", reference="CHATS 123")
    debt.refresh_from_db()
    assert debt.state == DebtState.REPAID and Facility.objects.get(pk=debt.facility_id).drawn_balance == 0
    assert ledger_ok()
    with pytest.raises(ConflictError):
        services.write_off_propose(actor=credit_manager, debt_id=debt.pk, reason="x")  # nothing is owed any more


def test_write_off_rules(debt, officer, credit_manager, credit_manager2):
    with pytest.raises(ForbiddenError):
        services.write_off_propose(actor=officer, debt_id=debt.pk, reason="Client unreachable")  # an officer cannot propose
    with pytest.raises(ConflictError):
        services.write_off_decide(actor=credit_manager2, debt_id=debt.pk, approve=True, note="x")  # nothing proposed
    with pytest.raises(ConflictError):
        services.recovery_record(actor=officer, debt_id=debt.pk, amount="100", reference="R")  # not written off
    with pytest.raises(PortalError):
        services.write_off_propose(actor=credit_manager, debt_id=debt.pk, reason=" ")  # reasons are required
    services.write_off_propose(actor=credit_manager, debt_id=debt.pk, reason="Client deceased; estate insolvent")
    with pytest.raises(ConflictError):
        services.write_off_propose(actor=credit_manager2, debt_id=debt.pk, reason="again")
    services.write_off_decide(actor=credit_manager2, debt_id=debt.pk, approve=False, note="Try the estate's executor first")
    debt.refresh_from_db()
    assert debt.state == DebtState.OPEN and debt.write_off_proposed_by is None
    services.write_off_propose(actor=credit_manager, debt_id=debt.pk, reason="Executor confirms no assets")
    services.write_off_decide(actor=credit_manager2, debt_id=debt.pk, approve=True, note="Agreed")
    debt.refresh_from_db()
    assert debt.state == DebtState.WRITTEN_OFF
    entries = FacilityTransaction.objects.count()
    with pytest.raises(PortalError) as exc:
        services.recovery_record(actor=officer, debt_id=debt.pk, amount="303000.01", reference="R")
    assert exc.value.code == "above_written_off" and FacilityTransaction.objects.count() == entries
    with pytest.raises(ConflictError):
        services.write_off_propose(actor=credit_manager, debt_id=debt.pk, reason="twice")


def test_collections_queue_shows_days_past_due_and_buckets(client, debt, officer, django_assert_num_queries):
    today = debt.due_on + timedelta(days=45)
    services.debts_review(today=today)
    debt.refresh_from_db()
    assert debt.state == DebtState.IN_COLLECTIONS and debt.dunning_step == 30
    assert [d.pk for d in selectors.debts(bucket="31-60", today=today)] == [debt.pk]
    assert not list(selectors.debts(bucket="1-30", today=today))
    client.force_login(officer)
    page = client.get(reverse("recovery:collections")).content.decode()
    assert debt.reference in page and "303,000.00" in page
    assert client.get(reverse("recovery:collections") + "?bucket=nonsense").status_code == 400
    assert client.get(reverse("recovery:debt", args=[debt.pk])).status_code == 200


def test_register_csv_for_compliance(client, debt, credit_manager, credit_manager2, compliance_user):
    services.write_off_propose(actor=credit_manager, debt_id=debt.pk, reason="Irrecoverable")
    services.write_off_decide(actor=credit_manager2, debt_id=debt.pk, approve=True, note="Agreed")
    client.force_login(compliance_user)
    page = client.get(reverse("recovery:register")).content.decode()
    assert debt.reference in page and "Irrecoverable" in page
    response = client.get(reverse("recovery:register") + "?format=csv")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert response.status_code == 200 and debt.reference in body and "303000.00" in body


@pytest.mark.django_db(transaction=True)
def test_register_csv_outside_a_test_transaction_is_downloaded_and_audited(client, debt, credit_manager, credit_manager2,
                                                                             compliance_user, alice):
    """A real request has no transaction around it (the test's own would hide an audit row written outside one)."""
    from portal.models import AuditEvent

    services.write_off_propose(actor=credit_manager, debt_id=debt.pk, reason="Irrecoverable")
    services.write_off_decide(actor=credit_manager2, debt_id=debt.pk, approve=True, note="Agreed")
    url = reverse("recovery:register") + "?format=csv"
    client.force_login(alice)
    assert client.get(url).status_code == 403
    assert not AuditEvent.objects.filter(action="reporting.export.downloaded").exists()
    client.force_login(compliance_user)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = b"".join(response.streaming_content).decode("utf-8-sig").splitlines()
    assert rows[0].startswith("Debt,Facility,Client,State") and len(rows) == 2
    assert rows[1].startswith(f"{debt.reference},{debt.facility.reference},") and "303000.00" in rows[1] and "Irrecoverable" in rows[1]
    event = AuditEvent.objects.get(action="reporting.export.downloaded")
    assert (event.actor, event.object_id, event.after["format"]) == (compliance_user, "write-off-register", "csv")
    assert client.get(reverse("recovery:register") + "?format=pdf").status_code == 400


def test_debt_page_actions(client, debt, credit_manager, credit_manager2):
    client.force_login(credit_manager)
    url = reverse("recovery:debt", args=[debt.pk])
    client.post(url, {"action": "write_off_propose", "note": "No assets"})
    client.force_login(credit_manager2)
    client.post(url, {"action": "write_off_approve", "note": "Agreed"})
    client.post(url, {"action": "recovery", "amount": "1000", "reference": "R-1", "final": "1"})
    debt.refresh_from_db()
    assert debt.state == DebtState.RECOVERED and debt.recovered_total == Decimal("1000.00")


def test_client_sees_the_sales_and_the_amount_owing(client, api_client, debt, alice):
    client.force_login(alice)
    page = client.get(reverse("recovery:client-facility", args=[debt.facility_id])).content.decode()
    assert "V-2" in page and "303,000.00" in page
    api_client.force_authenticate(alice)
    data = api_client.get(f"/api/v1/recovery/facilities/{debt.facility_id}/close-out/").json()
    assert len(data["sales"]) == 2 and data["debt"]["owed"] == "303000.00"


def test_the_proposer_of_a_write_off_sees_no_approve_button(client, debt, credit_manager, credit_manager2):
    services.write_off_propose(actor=credit_manager, debt_id=debt.pk, reason="Client deceased; estate insolvent")
    url = reverse("recovery:debt", args=[debt.pk])
    client.force_login(credit_manager)
    body = client.get(url).content.decode()
    assert 'data-testid="write-off-approve"' not in body and 'data-testid="write-off-awaiting"' in body
    client.force_login(credit_manager2)
    assert 'data-testid="write-off-approve"' in client.get(url).content.decode()


def _debt_row(debt_id):
    from portal.models import AuditEvent

    row = Debt.objects.values().get(pk=debt_id)
    row.pop("updated_at")
    return row, FacilityTransaction.objects.count(), AuditEvent.objects.count()


def test_a_write_off_decided_cannot_be_decided_again(client, debt, credit_manager, credit_manager2, compliance_user):
    """Approved, the write-off is final: sending it back (API, page or service) or approving it again is a 409
    and changes nothing; the register still names who proposed it and why."""
    services.write_off_propose(actor=credit_manager, debt_id=debt.pk, reason="Estate insolvent")
    services.write_off_decide(actor=credit_manager2, debt_id=debt.pk, approve=True, note="Agreed")
    before = _debt_row(debt.pk)
    for approve in (False, True):
        with pytest.raises(ConflictError) as exc:
            services.write_off_decide(actor=credit_manager2, debt_id=debt.pk, approve=approve, note="again")
        assert exc.value.code == "invalid_state" and "written off" in exc.value.message
    client.force_login(credit_manager2)
    url = f"/api/v1/recovery/staff/debts/{debt.pk}/write-off/decide/"
    response = client.post(url, {"approve": False, "note": "again"}, content_type="application/json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_state"
    client.post(reverse("recovery:debt", args=[debt.pk]), {"action": "write_off_reject", "note": "again"})
    assert _debt_row(debt.pk) == before
    client.force_login(compliance_user)
    page = client.get(reverse("recovery:register")).content.decode()
    assert "Estate insolvent" in page and "None" not in page
    body = b"".join(client.get(reverse("recovery:register") + "?format=csv").streaming_content).decode("utf-8-sig")
    assert "Mandy Manager" in body and "Estate insolvent" in body and ",Agreed," in body


def test_a_recovered_debt_takes_no_write_off_decision(debt, officer, credit_manager, credit_manager2):
    services.write_off_propose(actor=credit_manager, debt_id=debt.pk, reason="Estate insolvent")
    services.write_off_decide(actor=credit_manager2, debt_id=debt.pk, approve=True, note="Agreed")
    services.recovery_record(actor=officer, debt_id=debt.pk, amount="1000", reference="R-1", final=True)
    before = _debt_row(debt.pk)
    for approve in (False, True):
        with pytest.raises(ConflictError):
            services.write_off_decide(actor=credit_manager2, debt_id=debt.pk, approve=approve, note="again")
    with pytest.raises(ConflictError):
        services.recovery_record(actor=officer, debt_id=debt.pk, amount="1000", reference="R-2")
    with pytest.raises(ConflictError):
        services.debt_to_collections(actor=officer, debt_id=debt.pk)
    assert _debt_row(debt.pk) == before


def test_a_write_off_proposed_on_a_debt_since_repaid_is_not_decided(debt, officer, credit_manager, credit_manager2):
    """Paid in full while the proposal waited: there is nothing left to write off or to send back."""
    services.write_off_propose(actor=credit_manager, debt_id=debt.pk, reason="Client unreachable")
    services.debt_payment_record(actor=officer, debt_id=debt.pk, amount="303000", reference="CHATS 9")
    before = _debt_row(debt.pk)
    assert before[0]["state"] == DebtState.REPAID
    for approve in (False, True):
        with pytest.raises(ConflictError) as exc:
            services.write_off_decide(actor=credit_manager2, debt_id=debt.pk, approve=approve, note="late")
        assert "repaid" in exc.value.message
    assert _debt_row(debt.pk) == before


def test_a_debt_already_in_collections_is_not_moved_again(debt, officer):
    services.debt_to_collections(actor=officer, debt_id=debt.pk, note="No answer")
    before = _debt_row(debt.pk)
    with pytest.raises(ConflictError):
        services.debt_to_collections(actor=officer, debt_id=debt.pk, note="again")
    assert _debt_row(debt.pk) == before
