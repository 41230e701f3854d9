from decimal import Decimal

import pytest

from lending import services
from lending.models import AppState, Facility, FacilityApplication, FacilityState
from portal.errors import ConflictError, ForbiddenError, PortalError
from tests.helpers import make_user

from .conftest import submitted


def test_officer_approves_within_authority_and_recommendation(reviewed, officer):
    app = services.application_approve(actor=officer, application_id=reviewed.pk, limit="3000000", conditions="Quarterly review")
    app = FacilityApplication.objects.get(pk=app.pk)
    assert app.state == AppState.APPROVED
    assert app.decision_policy.version == 1
    assert len(app.letter_sha256) == 64 and "HK$3,000,000.00" in app.letter_text


def test_above_authority_needs_a_credit_managers_second_approval(eligible_client, officer, credit_manager, django_capture_on_commit_callbacks):
    app = submitted(eligible_client, django_capture_on_commit_callbacks, limit="6000000")
    assert app.recommended_limit == Decimal("6000000.00")
    services.application_approve(actor=officer, application_id=app.pk, limit="6000000")
    app = FacilityApplication.objects.get(pk=app.pk)
    assert app.state == AppState.AWAITING_SECOND_APPROVAL
    assert "authority" in app.second_approval_reasons[0]
    services.application_second_approve(actor=credit_manager, application_id=app.pk)
    app = FacilityApplication.objects.get(pk=app.pk)
    assert app.state == AppState.APPROVED and app.second_approver == credit_manager


def test_overriding_the_recommendation_needs_a_second_approval(reviewed, officer):
    services.application_approve(actor=officer, application_id=reviewed.pk, limit="4000000")  # recommended 3,000,000
    app = FacilityApplication.objects.get(pk=reviewed.pk)
    assert app.state == AppState.AWAITING_SECOND_APPROVAL
    assert "recommended" in app.second_approval_reasons[0]


def test_the_first_approver_cannot_give_the_second_approval(reviewed, credit_manager):
    services.application_approve(actor=credit_manager, application_id=reviewed.pk, limit="4000000")
    with pytest.raises(ForbiddenError) as exc:
        services.application_second_approve(actor=credit_manager, application_id=reviewed.pk)
    assert exc.value.code == "four_eyes"
    assert FacilityApplication.objects.get(pk=reviewed.pk).state == AppState.AWAITING_SECOND_APPROVAL


def test_an_officer_cannot_give_a_second_approval(reviewed, officer, officer2):
    services.application_approve(actor=officer, application_id=reviewed.pk, limit="4000000")
    with pytest.raises(ForbiddenError):
        services.application_second_approve(actor=officer2, application_id=reviewed.pk)


def test_credit_manager_declines_at_second_approval(reviewed, officer, credit_manager):
    services.application_approve(actor=officer, application_id=reviewed.pk, limit="4000000")
    services.application_decline(actor=credit_manager, application_id=reviewed.pk, reason_codes=["credit_score"], note="Too high")
    assert FacilityApplication.objects.get(pk=reviewed.pk).state == AppState.DECLINED


def test_limit_above_lending_value_is_refused(reviewed, officer):
    with pytest.raises(PortalError) as exc:
        services.application_approve(actor=officer, application_id=reviewed.pk, limit="8000000")
    assert exc.value.code == "above_lending_value"
    assert FacilityApplication.objects.get(pk=reviewed.pk).state == AppState.AWAITING_DECISION


def test_staff_cannot_decide_their_own_client_record(facts, policy, prices, django_capture_on_commit_callbacks):
    from portal.permissions import Role
    from portal.services import user_add_role

    staff_client = make_user("account_officer", email="sam@example.com", full_name="Sam Staff")
    user_add_role(user=staff_client, role=Role.CLIENT)
    app = submitted(staff_client, django_capture_on_commit_callbacks)
    with pytest.raises(ForbiddenError) as exc:
        services.application_approve(actor=staff_client, application_id=app.pk, limit="1000000")
    assert exc.value.code == "own_record"
    assert FacilityApplication.objects.get(pk=app.pk).state == AppState.AWAITING_DECISION


def test_decline_needs_valid_reason_codes(reviewed, officer):
    with pytest.raises(PortalError):
        services.application_decline(actor=officer, application_id=reviewed.pk, reason_codes=["because"])
    assert FacilityApplication.objects.get(pk=reviewed.pk).state == AppState.AWAITING_DECISION


def test_second_decision_on_a_decided_application_is_a_conflict(reviewed, officer, officer2):
    services.application_approve(actor=officer, application_id=reviewed.pk, limit="3000000")
    with pytest.raises(ConflictError) as exc:
        services.application_decline(actor=officer2, application_id=reviewed.pk, reason_codes=["other"])
    assert exc.value.http_status == 409 and exc.value.code == "decision_conflict"


def _approved(reviewed, officer):
    services.application_approve(actor=officer, application_id=reviewed.pk, limit="3000000")
    return FacilityApplication.objects.get(pk=reviewed.pk)


def test_client_accepts_the_letter_and_the_facility_goes_live(reviewed, officer, eligible_client):
    app = _approved(reviewed, officer)
    facility = services.application_accept(user=eligible_client, application_id=app.pk, letter_sha256=app.letter_sha256)
    facility = Facility.objects.get(pk=facility.pk)
    assert FacilityApplication.objects.get(pk=app.pk).state == AppState.ACTIVE
    assert facility.state == FacilityState.ACTIVE and facility.limit == Decimal("3000000.00")
    assert facility.lending_value == Decimal("7304000.00") and facility.available == Decimal("3000000.00")
    assert facility.positions.count() == 2
    btc = facility.positions.get(asset="BTC")
    assert btc.quantity == Decimal("1") and btc.haircut == Decimal("0.6")


def test_accepting_a_different_letter_is_refused(reviewed, officer, eligible_client):
    app = _approved(reviewed, officer)
    with pytest.raises(PortalError):
        services.application_accept(user=eligible_client, application_id=app.pk, letter_sha256="0" * 64)
    assert not Facility.objects.exists()


@pytest.fixture
def facility(reviewed, officer, eligible_client):
    app = _approved(reviewed, officer)
    return services.application_accept(user=eligible_client, application_id=app.pk, letter_sha256=app.letter_sha256)


def test_drawdown_and_repayment_move_the_balance(facility, officer):
    services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="1000000", reference="T1")
    services.facility_repay(actor=officer, facility_id=facility.pk, amount="400000")
    facility = Facility.objects.get(pk=facility.pk)
    assert facility.drawn_balance == Decimal("600000.00") and facility.available == Decimal("2400000.00")


def test_drawdown_above_available_is_refused(facility, officer):
    with pytest.raises(PortalError) as exc:
        services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="3000000.01")
    assert exc.value.code == "above_available"
    assert Facility.objects.get(pk=facility.pk).drawn_balance == 0


def test_drawdown_refused_on_a_suspended_facility(facility, officer, credit_manager):
    services.facility_suspend(actor=credit_manager, facility_id=facility.pk, reason="KYC refresh")
    with pytest.raises(ConflictError):
        services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="1")
    services.facility_reinstate(actor=credit_manager, facility_id=facility.pk)
    services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="1")


def test_drawdown_refused_while_a_margin_call_is_open(facility, officer):
    Facility.objects.filter(pk=facility.pk).update(has_open_margin_call=True)  # as the monitoring engine would
    with pytest.raises(ConflictError) as exc:
        services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="1")
    assert exc.value.code == "margin_call_open"


def test_drawdown_refused_while_a_required_disclosure_is_stale(facility, officer, facts, eligible_client):
    facts.set(eligible_client, outstanding=[{"code": "va-margin-rds", "title": "VA margin RDS", "version_id": 2, "version_number": 2,
                                             "acknowledged": True, "stale": True, "reason": "New version", "url": "/disclosures/"}])
    with pytest.raises(ConflictError) as exc:
        services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="1")
    assert exc.value.code == "disclosure_outstanding"


def test_officer_cannot_suspend_only_a_credit_manager(facility, officer):
    with pytest.raises(ForbiddenError):
        services.facility_suspend(actor=officer, facility_id=facility.pk, reason="x")


def test_close_needs_a_zero_balance(facility, officer, credit_manager):
    services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="10")
    with pytest.raises(ConflictError):
        services.facility_close(actor=credit_manager, facility_id=facility.pk)
    services.facility_repay(actor=officer, facility_id=facility.pk, amount="10")
    services.facility_close(actor=credit_manager, facility_id=facility.pk)
    assert Facility.objects.get(pk=facility.pk).state == FacilityState.CLOSED
    with pytest.raises(ConflictError):
        services.facility_reinstate(actor=credit_manager, facility_id=facility.pk)


@pytest.mark.parametrize("lapse", [{"margin_account_confirmed": False}, {"unmet": ["suitability"]}, {"unmet": ["va_knowledge"]}])
def test_every_drawdown_rechecks_the_products_eligibility(facility, officer, facts, eligible_client, lapse):
    facts.set(eligible_client, **lapse)
    with pytest.raises(ConflictError) as exc:
        services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="1000")
    assert exc.value.code == "client_not_eligible" and exc.value.fields["requirements"]
    assert ".;" not in exc.value.message and "No drawdowns until they do." in exc.value.message
    assert Facility.objects.get(pk=facility.pk).drawn_balance == 0


def test_unmet_requirements_read_as_one_sentence_without_doubled_punctuation():
    text = services.requirements_text([{"label": "Securities margin client", "reason": "Give your margin account number."},
                                       {"label": "Complete profile", "reason": "Add your date of birth."}])
    assert text == "Securities margin client — Give your margin account number; Complete profile — Add your date of birth."
