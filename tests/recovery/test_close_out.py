"""Close-out: the plan (policy order, whole board lots, target), executions and their bad input, amendments,
illegal transitions, the pages and API (outsiders refused, query counts pinned), the policy's validation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from lending.collateral.models import CustodyEntry
from lending.models import CollateralPosition, Facility, FacilityTransaction
from lending.recovery import services
from lending.recovery.models import AmendmentState, Execution, ExecutionStatus, LineStatus, LiquidationPlan, PlanState
from lending.risk import services as risk
from lending.risk.models import MarginCall
from portal.errors import ConflictError, ForbiddenError, PortalError

from .conftest import custody_consistent, ledger_ok, pledged_facility, set_prices

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_close_out(book, alice, officer, django_capture_on_commit_callbacks):
    facility = pledged_facility(alice, holdings={"BTC": "3", "00005": "20000"}, drawn="1900000", officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        set_prices(BTC="250000", s00005="70")  # LV 980,000 + 300,000: utilisation 1.48, close-out
    return MarginCall.objects.get(facility_id=facility.pk)


@pytest.fixture
def approved(in_close_out, officer, credit_manager):
    risk.margin_call_propose(actor=officer, call_id=in_close_out.pk, resolution="close_out", reason="Close-out level")
    risk.margin_call_decide(actor=credit_manager, call_id=in_close_out.pk, approve=True, note="Sell per plan")
    return LiquidationPlan.objects.get(call=in_close_out, state=PlanState.APPROVED)


def _state(plan):
    facility = Facility.objects.get(pk=plan.facility_id)
    return (facility.drawn_balance, FacilityTransaction.objects.count(), CustodyEntry.objects.count(), Execution.objects.count(),
            list(CollateralPosition.objects.filter(facility=facility).order_by("id").values_list("quantity", flat=True)))


def test_plan_sells_va_first_then_whole_board_lots_to_the_target(approved):
    lines = list(approved.lines.all())
    # All 3 BTC (750,000 less 1% fee) leaves 1,157,500 against 980,000 of securities lending value; then
    # 33 board lots of 400 HSBC: 32 lots would leave utilisation at 0.7666, above the 0.75 target.
    assert [(x.code, x.planned_quantity, x.lot) for x in lines] == [("BTC", Decimal("3"), Decimal("0.0001")), ("00005", Decimal("13200"), Decimal("400"))]
    assert approved.reaches_target and approved.expected_utilisation_after == Decimal("0.7285")
    assert approved.expected_drawn_after == Decimal("242740.00")


def test_the_plan_is_on_the_call_page_before_the_credit_manager_decides(client, in_close_out, officer, credit_manager):
    risk.margin_call_propose(actor=officer, call_id=in_close_out.pk, resolution="close_out", reason="Close-out level")
    client.force_login(credit_manager)
    page = client.get(reverse("risk:call", args=[in_close_out.pk])).content.decode()
    assert 'data-testid="call-plan"' in page and "13,200" in page and "0.7285" in page


def test_executions_apply_proceeds_release_custody_and_revalue(approved, officer):
    services.execution_record(actor=officer, plan_id=approved.pk, instrument="BTC", quantity="3", price="250000", venue_reference="V-1")
    services.execution_record(actor=officer, plan_id=approved.pk, instrument="00005", status="halted", note="HKEX trading halt on HSBC")
    line = approved.lines.get(code="00005")
    assert line.status == LineStatus.HALTED
    services.execution_record(actor=officer, plan_id=approved.pk, instrument="00005", quantity="13200", price="70", venue_reference="V-2")
    approved.refresh_from_db()
    facility = Facility.objects.get(pk=approved.facility_id)
    assert approved.state == PlanState.COMPLETED
    assert facility.drawn_balance == Decimal("242740.00") and facility.utilisation == Decimal("0.7285")
    assert facility.positions.get(instrument__code="00005").quantity == Decimal("6800")
    assert ledger_ok() and custody_consistent(facility)
    from lending.collateral.models import CustodyBalance

    hsbc = CustodyBalance.objects.get(client_id=facility.client_id, instrument__code="00005")
    assert hsbc.pledged == Decimal("6800") and hsbc.held == Decimal("1000000") - Decimal("13200")  # sold shares left the holding


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"instrument": "00005", "quantity": "13600", "price": "70", "venue_reference": "X"}, "above_planned"),  # more than planned
    ({"instrument": "00005", "quantity": "400", "price": "-70", "venue_reference": "X"}, "validation_error"),  # negative price
    ({"instrument": "00700", "quantity": "400", "price": "70", "venue_reference": "X"}, "unknown_instrument"),  # not in the plan
    ({"instrument": "00005", "quantity": "450", "price": "70", "venue_reference": "X"}, "not_whole_lots"),
    ({"instrument": "00005", "quantity": "400", "price": "70", "venue_reference": ""}, "validation_error"),
    ({"instrument": "00005", "quantity": "0", "price": "70", "venue_reference": "X"}, "validation_error"),
    ({"instrument": "00005", "status": "failed", "quantity": "400"}, "validation_error"),  # a failed sale needs a note
])
def test_bad_execution_input_is_refused_and_changes_nothing(approved, officer, kwargs, code):
    before = _state(approved)
    with pytest.raises(PortalError) as exc:
        services.execution_record(actor=officer, plan_id=approved.pk, **kwargs)
    assert exc.value.code == code and exc.value.message
    assert _state(approved) == before


def test_the_same_venue_reference_twice_is_refused(approved, officer):
    services.execution_record(actor=officer, plan_id=approved.pk, instrument="00005", quantity="400", price="70", venue_reference="V-9")
    before = _state(approved)
    with pytest.raises(ConflictError):
        services.execution_record(actor=officer, plan_id=approved.pk, instrument="00005", quantity="400", price="70", venue_reference="V-9")
    assert _state(approved) == before


def test_illegal_transitions_are_refused(in_close_out, officer, credit_manager, credit_manager2):
    risk.margin_call_propose(actor=officer, call_id=in_close_out.pk, resolution="close_out", reason="Close-out level")
    plan = LiquidationPlan.objects.get(call=in_close_out, state=PlanState.PROPOSED)
    with pytest.raises(ConflictError):  # not approved yet: nothing may be sold
        services.execution_record(actor=officer, plan_id=plan.pk, instrument="BTC", quantity="1", price="250000", venue_reference="V")
    with pytest.raises(ConflictError):
        services.plan_amend_propose(actor=officer, plan_id=plan.pk, quantities={"1": "0"}, reason="x")
    with pytest.raises(ForbiddenError):  # the proposer of the close-out never approves it
        risk.margin_call_decide(actor=officer, call_id=in_close_out.pk, approve=True, note="x")
    risk.margin_call_decide(actor=credit_manager, call_id=in_close_out.pk, approve=False, note="Try a top-up first")
    plan.refresh_from_db()
    assert plan.state == PlanState.WITHDRAWN
    with pytest.raises(ConflictError):
        services.execution_record(actor=officer, plan_id=plan.pk, instrument="BTC", quantity="1", price="250000", venue_reference="V")


def test_amendment_needs_a_second_person_and_continues_as_a_new_version(approved, officer, credit_manager):
    services.execution_record(actor=officer, plan_id=approved.pk, instrument="BTC", quantity="1", price="250000", venue_reference="V-1")
    btc, hsbc = approved.lines.order_by("sequence")
    amendment = services.plan_amend_propose(actor=officer, plan_id=approved.pk, quantities={str(hsbc.pk): "12000"},
                                            reason="Price moved up: fewer shares reach the target")
    with pytest.raises(ForbiddenError):
        services.plan_amend_decide(actor=officer, amendment_id=amendment.pk, approve=True, note="mine")  # not a credit manager
    with pytest.raises(PortalError):
        services.plan_amend_decide(actor=credit_manager, amendment_id=amendment.pk, approve=True, note="")  # a note is required
    services.plan_amend_decide(actor=credit_manager, amendment_id=amendment.pk, approve=True, note="Agreed")
    amendment.refresh_from_db()
    approved.refresh_from_db()
    assert amendment.state == AmendmentState.APPROVED and approved.state == PlanState.AMENDED
    successor = amendment.new_plan
    assert successor.version == 2 and successor.state == PlanState.APPROVED and successor.supersedes_id == approved.pk
    assert [(x.code, x.planned_quantity) for x in successor.lines.all()] == [("BTC", Decimal("2")), ("00005", Decimal("12000"))]
    with pytest.raises(ConflictError):  # the old version takes no more executions
        services.execution_record(actor=officer, plan_id=approved.pk, instrument="BTC", quantity="1", price="250000", venue_reference="V-2")
    services.execution_record(actor=officer, plan_id=successor.pk, instrument="BTC", quantity="2", price="250000", venue_reference="V-2")
    assert ledger_ok()


def test_outsider_and_client_are_refused_every_staff_page_and_api(client, api_client, approved, alice, charlie):
    from lending.recovery.models import Debt

    pages = [reverse("recovery:plans"), reverse("recovery:plan", args=[approved.pk]), reverse("recovery:collections"),
             reverse("recovery:register"), reverse("recovery:policy")]
    apis = [("get", "/api/v1/recovery/staff/plans/"), ("get", f"/api/v1/recovery/staff/plans/{approved.pk}/"),
            ("post", f"/api/v1/recovery/staff/plans/{approved.pk}/executions/"), ("post", f"/api/v1/recovery/staff/plans/{approved.pk}/amendments/"),
            ("post", "/api/v1/recovery/staff/amendments/1/decide/"), ("get", "/api/v1/recovery/staff/debts/"),
            ("post", "/api/v1/recovery/staff/debts/1/payments/"), ("post", "/api/v1/recovery/staff/debts/1/write-off/"),
            ("post", "/api/v1/recovery/staff/debts/1/write-off/decide/"), ("post", "/api/v1/recovery/staff/debts/1/recoveries/")]
    for user in (alice, charlie):
        client.force_login(user)
        for url in pages:
            assert client.get(url).status_code == 403, url
        api_client.force_authenticate(user)
        for method, url in apis:
            assert getattr(api_client, method)(url, {}, format="json").status_code == 403, url
    client.force_login(charlie)
    assert client.get(reverse("recovery:client-facility", args=[approved.facility_id])).status_code == 404
    api_client.force_authenticate(charlie)
    assert api_client.get(f"/api/v1/recovery/facilities/{approved.facility_id}/close-out/").status_code == 404
    assert not Debt.objects.exists() and Execution.objects.count() == 0
    client.force_login(alice)
    assert client.get(reverse("recovery:client-facility", args=[approved.facility_id])).status_code == 200


def test_compliance_reads_the_register_but_not_the_desk(client, approved, compliance_user):
    client.force_login(compliance_user)
    assert client.get(reverse("recovery:register")).status_code == 200
    assert client.get(reverse("recovery:plans")).status_code == 403


def test_api_execution_with_an_idempotency_key_sells_once(api_client, client, approved, officer):
    client.force_login(officer)  # staff API calls ride on an MFA-verified session
    body = {"instrument": "00005", "quantity": "400", "price": "70", "venue_reference": "HKEX-1"}
    first = client.post(f"/api/v1/recovery/staff/plans/{approved.pk}/executions/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post(f"/api/v1/recovery/staff/plans/{approved.pk}/executions/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201 and again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert Execution.objects.filter(status=ExecutionStatus.FILLED).count() == 1
    bad = client.post(f"/api/v1/recovery/staff/plans/{approved.pk}/executions/", {**body, "quantity": "99999", "venue_reference": "HKEX-2"},
                      content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "above_planned"


def test_desk_page_records_an_execution(client, approved, officer):
    client.force_login(officer)
    line = approved.lines.get(code="BTC")
    response = client.post(reverse("recovery:plan", args=[approved.pk]), {"action": "execution", "line": line.pk, "status": "filled", "quantity": "1.5",
                                                                          "price": "250000", "venue_reference": "HKVAX-9"})
    assert response.status_code == 302
    line.refresh_from_db()
    assert line.status == LineStatus.PARTIAL and line.filled_quantity == Decimal("1.5")


def test_list_pages_have_pinned_query_counts(client, approved, officer, compliance_user, django_assert_num_queries):
    client.force_login(officer)
    pages = ((reverse("recovery:plans"), 8), (reverse("recovery:collections"), 9), (reverse("recovery:plan", args=[approved.pk]), 11))
    for url, expected in pages:
        client.get(url)  # warm the session and the navigation
        with django_assert_num_queries(expected):
            assert client.get(url).status_code == 200
    # More executions, a halted line, a pending amendment: the plan page costs the same.
    services.execution_record(actor=officer, plan_id=approved.pk, instrument="BTC", quantity="1", price="250000", venue_reference="V-1")
    services.execution_record(actor=officer, plan_id=approved.pk, instrument="00005", status="halted", note="Trading halt")
    services.plan_amend_propose(actor=officer, plan_id=approved.pk, quantities={str(approved.lines.get(code="00005").pk): "0"}, reason="Halted")
    with django_assert_num_queries(pages[2][1]):
        assert client.get(pages[2][0]).status_code == 200
    client.force_login(compliance_user)
    client.get(reverse("recovery:register"))
    with django_assert_num_queries(8):
        assert client.get(reverse("recovery:register")).status_code == 200


@pytest.mark.parametrize(("change", "code"), [
    ({"target_utilisation": "0.95"}, "target_above_watch"),
    ({"liquidation_order": ["BTC", "securities"]}, "validation_error"),
    ({"dunning_days": []}, "validation_error"),
    ({"securities_order": "random"}, "validation_error"),
])
def test_recovery_policy_is_validated(book, officer, change, code):
    from lending.recovery.models import RecoveryPolicy
    from tests.recovery.helpers import RECOVERY_NUMBERS

    count = RecoveryPolicy.objects.count()
    with pytest.raises(PortalError) as exc:
        services.recovery_policy_propose(actor=officer, numbers=RECOVERY_NUMBERS | change, reason="x")
    assert exc.value.code == code
    assert RecoveryPolicy.objects.count() == count


def test_recovery_policy_is_maker_checker(book, officer, credit_manager2):
    from tests.recovery.helpers import RECOVERY_NUMBERS

    proposed = services.recovery_policy_propose(actor=officer, numbers=RECOVERY_NUMBERS | {"target_utilisation": "0.60"}, reason="Stricter")
    with pytest.raises(ForbiddenError):
        services.recovery_policy_decide(actor=officer, policy_id=proposed.pk, approve=True)
    services.recovery_policy_decide(actor=credit_manager2, policy_id=proposed.pk, approve=True)
    from lending.recovery.selectors import recovery_policy_current

    assert recovery_policy_current().target_utilisation == Decimal("0.6000")


def _amendment_state(plan):
    from lending.recovery.models import PlanAmendment
    from portal.models import AuditEvent

    return (list(PlanAmendment.objects.order_by("id").values_list("state", "decided_by", "decision_note", "new_plan")),
            list(LiquidationPlan.objects.order_by("id").values_list("state", "note")), AuditEvent.objects.count(), _state(plan))


def test_a_decided_amendment_cannot_be_decided_again(client, approved, officer, credit_manager, credit_manager2):
    hsbc = approved.lines.get(code="00005")
    first = services.plan_amend_propose(actor=officer, plan_id=approved.pk, quantities={str(hsbc.pk): "12000"}, reason="Fewer shares")
    services.plan_amend_decide(actor=credit_manager, amendment_id=first.pk, approve=True, note="Agreed")
    successor = LiquidationPlan.objects.get(supersedes=approved)
    second = services.plan_amend_propose(actor=officer, plan_id=successor.pk, quantities={str(successor.lines.get(code="00005").pk): "0"},
                                         reason="Halted")
    services.plan_amend_decide(actor=credit_manager, amendment_id=second.pk, approve=False, note="Wait for the market")
    before = _amendment_state(successor)
    for amendment in (first, second):
        for approve in (True, False):
            with pytest.raises(ConflictError) as exc:
                services.plan_amend_decide(actor=credit_manager2, amendment_id=amendment.pk, approve=approve, note="again")
            assert exc.value.code == "invalid_state"
    client.force_login(credit_manager2)
    response = client.post(f"/api/v1/recovery/staff/amendments/{first.pk}/decide/", {"approve": False, "note": "again"}, content_type="application/json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_state"
    client.post(reverse("recovery:plan", args=[successor.pk]), {"action": "amend_reject", "amendment": second.pk, "note": "again"})
    assert _amendment_state(successor) == before


def test_an_amendment_of_a_plan_completed_meanwhile_cannot_be_approved(approved, officer, credit_manager):
    hsbc = approved.lines.get(code="00005")
    amendment = services.plan_amend_propose(actor=officer, plan_id=approved.pk, quantities={str(hsbc.pk): "12000"}, reason="Fewer shares")
    for line in approved.lines.order_by("sequence"):
        services.execution_record(actor=officer, plan_id=approved.pk, line_id=line.pk, quantity=str(line.planned_quantity), price="250000" if line.code == "BTC" else "70",
                                  venue_reference=f"V-{line.pk}")
    approved.refresh_from_db()
    assert approved.state == PlanState.COMPLETED
    before = _amendment_state(approved)
    with pytest.raises(ConflictError):
        services.plan_amend_decide(actor=credit_manager, amendment_id=amendment.pk, approve=True, note="late")
    assert _amendment_state(approved) == before


def test_a_decided_recovery_policy_or_close_out_cannot_be_decided_again(approved, in_close_out, officer, credit_manager, credit_manager2):
    from lending.recovery.models import RecoveryPolicy
    from tests.recovery.helpers import RECOVERY_NUMBERS

    proposed = services.recovery_policy_propose(actor=officer, numbers=RECOVERY_NUMBERS | {"target_utilisation": "0.7"}, reason="Lower target")
    services.recovery_policy_decide(actor=credit_manager, policy_id=proposed.pk, approve=False, note="Not now")
    statuses = list(RecoveryPolicy.objects.order_by("id").values_list("status", "decided_by", "decision_note"))
    for approve in (True, False):
        with pytest.raises(ConflictError):
            services.recovery_policy_decide(actor=credit_manager2, policy_id=proposed.pk, approve=approve, note="again")
    assert list(RecoveryPolicy.objects.order_by("id").values_list("status", "decided_by", "decision_note")) == statuses
    plan = _amendment_state(approved)
    for approve in (True, False):
        with pytest.raises(ConflictError):
            risk.margin_call_decide(actor=credit_manager2, call_id=in_close_out.pk, approve=approve, note="again")
    assert _amendment_state(approved) == plan
