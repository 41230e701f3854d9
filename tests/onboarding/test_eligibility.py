"""Product eligibility flips as each requirement is met or lapses; perpetual-contracts access; the credit-review snapshot."""

from __future__ import annotations

import pytest

from onboarding import services
from onboarding.models import PerpetualsAccessRequest, PerpetualsState, SuitabilityAssessment
from onboarding.selectors import client_snapshot, product_eligibility
from portal.errors import ConflictError, ForbiddenError, PortalError
from portal.products import Product
from tests.onboarding.conftest import (
    acknowledge,
    answers_with,
    complete_assessment,
    make_profile,
    onboard_fully,
    verified_attestation,
)

pytestmark = pytest.mark.django_db


def met(user, product):
    return {r.code: r.met for r in product_eligibility(user=user, product=product).requirements}


def test_new_client_meets_nothing_and_is_told_how_to_fix_each(alice):
    eligibility = product_eligibility(user=alice, product=Product.VA_MARGIN)
    assert not eligibility.eligible
    assert [r.code for r in eligibility.unmet] == ["margin_account", "profile_complete", "suitability", "risk_profile", "va_knowledge", "disclosures"]
    assert all(r.fix_url for r in eligibility.unmet)
    assert eligibility.unmet[0].reason == "VA financing is only for the firm's securities margin clients: tell us your securities margin account number."


def test_va_margin_flips_as_each_requirement_is_met(alice, officer):
    make_profile(alice)
    assert met(alice, Product.VA_MARGIN) == {"margin_account": False, "profile_complete": True, "suitability": False, "risk_profile": False, "va_knowledge": False, "disclosures": False}
    assert product_eligibility(user=alice, product=Product.VA_MARGIN).requirements[0].reason == "Waiting for your account officer to confirm your securities margin account M-100234."
    services.profile_confirm_margin_account(profile_id=alice.client_profile.pk, actor=officer)
    assert met(alice, Product.VA_MARGIN)["margin_account"] is True
    complete_assessment(alice)
    assert met(alice, Product.VA_MARGIN) == {"margin_account": True, "profile_complete": True, "suitability": True, "risk_profile": True, "va_knowledge": True, "disclosures": False}
    acknowledge(alice, Product.VA_MARGIN)
    assert product_eligibility(user=alice, product=Product.VA_MARGIN).eligible


def test_risk_profile_below_growth_is_not_enough(alice, officer):
    make_profile(alice)
    complete_assessment(alice, answers_with(objective="income", loss_reaction="sell_some", max_loss="lt5", va_share="lt10"))
    requirement = next(r for r in product_eligibility(user=alice, product=Product.VA_MARGIN).requirements if r.code == "risk_profile")
    assert requirement.met is False
    assert requirement.reason.startswith("VA margin financing needs a risk profile of at least 4 (Growth); yours is")


def test_changing_the_margin_account_number_needs_confirming_again(alice, officer):
    make_profile(alice)
    services.profile_confirm_margin_account(profile_id=alice.client_profile.pk, actor=officer)
    make_profile(alice, margin_account_number="M-999")
    assert met(alice, Product.VA_MARGIN)["margin_account"] is False


def test_flagged_or_expired_suitability_lapses_eligibility(alice, officer):
    onboard_fully(alice, officer)
    assert product_eligibility(user=alice, product=Product.VA_MARGIN).eligible
    make_profile(alice, liquid_assets="100000.00")
    eligibility = product_eligibility(user=alice, product=Product.VA_MARGIN)
    assert not eligibility.eligible
    assert [r.code for r in eligibility.unmet] == ["suitability", "risk_profile", "va_knowledge"]


def test_perpetuals_needs_verified_pi_derivative_knowledge_and_disclosures(alice, officer):
    make_profile(alice)
    complete_assessment(alice, answers_with(derivative_transactions_3y=2))
    assert met(alice, Product.PERPETUALS) == {"professional_investor": False, "derivative_knowledge": False, "disclosures": False}
    verified_attestation(alice, officer)
    assert met(alice, Product.PERPETUALS)["professional_investor"] is True
    complete_assessment(alice, answers_with(derivative_transactions_3y=5))
    assert met(alice, Product.PERPETUALS)["derivative_knowledge"] is True
    acknowledge(alice, Product.PERPETUALS)
    assert product_eligibility(user=alice, product=Product.PERPETUALS).eligible


def test_perpetuals_request_grant_and_lapse_when_pi_is_withdrawn(alice, officer):
    onboard_fully(alice, officer)
    request = services.perpetuals_request(client=alice)
    assert request.eligibility_record["eligible"] is True
    with pytest.raises(ConflictError):
        services.perpetuals_request(client=alice)
    with pytest.raises(ForbiddenError):
        services.perpetuals_grant(request_id=request.pk, actor=alice)
    granted = services.perpetuals_grant(request_id=request.pk, actor=officer, reason="Meets all requirements")
    assert granted.state == PerpetualsState.GRANTED
    services.attestation_withdraw(attestation_id=alice.pi_attestations.get(state="verified").pk, actor=alice)
    lapsed = PerpetualsAccessRequest.objects.get(pk=request.pk)
    assert lapsed.state == PerpetualsState.LAPSED and lapsed.lapse_reason == "Professional-investor status withdrawn."
    assert not product_eligibility(user=alice, product=Product.PERPETUALS).eligible


def test_perpetuals_access_lapses_when_derivative_knowledge_lapses(alice, officer):
    onboard_fully(alice, officer)
    services.perpetuals_grant(request_id=services.perpetuals_request(client=alice).pk, actor=officer)
    complete_assessment(alice, answers_with(derivative_transactions_3y=1))
    assert PerpetualsAccessRequest.objects.get(client=alice).state == PerpetualsState.LAPSED


def test_perpetuals_access_lapses_when_the_assessment_expires(alice, officer):
    onboard_fully(alice, officer)
    services.perpetuals_grant(request_id=services.perpetuals_request(client=alice).pk, actor=officer)
    assessment = SuitabilityAssessment.objects.get(client=alice, state="completed")
    assert services.assessment_expire(assessment_id=assessment.pk, today=assessment.valid_until)
    assert PerpetualsAccessRequest.objects.get(client=alice).state == PerpetualsState.LAPSED


def test_ineligible_client_cannot_request_and_officer_refusal_needs_a_reason(alice, charlie, officer):
    with pytest.raises(PortalError) as exc:
        services.perpetuals_request(client=charlie)
    assert exc.value.code == "not_eligible"
    assert not PerpetualsAccessRequest.objects.exists()
    onboard_fully(alice, officer)
    request = services.perpetuals_request(client=alice)
    with pytest.raises(PortalError):
        services.perpetuals_refuse(request_id=request.pk, actor=officer, reason="")
    assert services.perpetuals_refuse(request_id=request.pk, actor=officer, reason="Trading history unclear").state == PerpetualsState.REFUSED
    with pytest.raises(ConflictError):
        services.perpetuals_grant(request_id=request.pk, actor=officer)


def test_client_snapshot_for_the_credit_review(alice, charlie, officer):
    assert client_snapshot(user=charlie) is None
    onboard_fully(alice, officer)
    snap = client_snapshot(user=alice)
    import json

    json.dumps(snap)
    assert snap["client_type"] == "individual"
    assert snap["other_names"] == ["黃愛麗"]
    assert snap["date_of_birth"] == "1985-04-02"
    assert snap["margin_account_confirmed"] is True
    assert snap["net_worth"] == "30000000.00"
    assert snap["risk_profile"] == 4 and snap["risk_profile_label"] == "Growth"
    assert snap["va_knowledge"] is True and snap["va_knowledge_basis"] == "training"
    assert snap["derivative_knowledge_basis"] == "trading_experience"
    assert snap["professional_investor"] is True and snap["pi_valid_until"]
    assert snap["va_exposure_limit_pct"] == "20.00"


def test_a_margin_account_confirmed_for_one_client_cannot_be_confirmed_for_another(alice, charlie, officer):
    from django.db import IntegrityError, transaction

    from onboarding.models import ClientProfile

    make_profile(alice, margin_account_number="M-555001")
    make_profile(charlie, margin_account_number="M-555001")
    services.profile_confirm_margin_account(profile_id=alice.client_profile.pk, actor=officer)
    with pytest.raises(ConflictError) as refused:
        services.profile_confirm_margin_account(profile_id=charlie.client_profile.pk, actor=officer)
    assert refused.value.code == "margin_account_taken"
    assert "M-555001 is already confirmed for another client" in str(refused.value.message)
    assert ClientProfile.objects.get(user=charlie).margin_account_confirmed_at is None
    # The database holds the rule too, not only the service.
    with pytest.raises(IntegrityError), transaction.atomic():
        ClientProfile.objects.filter(user=charlie).update(margin_account_confirmed_at=ClientProfile.objects.get(user=alice).margin_account_confirmed_at)
