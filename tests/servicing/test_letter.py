"""The facility letter states the rate, how it is computed, when it is charged, fees and the review date."""

from __future__ import annotations

import hashlib

import pytest

from lending.models import FacilityTransaction
from lending.servicing.models import FacilityTerms
from lending.servicing.services import add_months

pytestmark = pytest.mark.django_db


def test_the_letter_states_rate_computation_charging_fees_and_review(opened):
    letter = opened.application.letter_text
    assert "HKD Prime plus a margin of 3.000% a year (today 5.250% + 3.000% = 8.250% a year)" in letter
    assert "÷ 365" in letter and "rounded half up to the cent" in letter
    assert "last day of each calendar month" in letter
    assert "Arrangement fee: none." in letter and "Liquidation fee: 1.00%" in letter
    assert "reviewed every 12 months" in letter
    # The client accepted exactly that text, by its hash.
    assert opened.letter_sha256 == hashlib.sha256(letter.encode()).hexdigest()


def test_accepting_attaches_the_terms_and_sets_the_review_date(opened):
    from django.utils import timezone

    terms = FacilityTerms.objects.get(facility=opened)
    assert terms.tier == "standard" and str(terms.margin) == "0.030000"
    assert terms.review_date == add_months(timezone.localdate(), 12)


def test_an_arrangement_fee_is_charged_to_the_ledger_on_acceptance(db, eligible_client, officer, officer2, credit_manager,
                                                                   django_capture_on_commit_callbacks):
    from lending import services
    from lending.ledger import ledger_check
    from lending.servicing import services as servicing
    from tests.lending.conftest import approved_policy, submitted
    from tests.servicing.helpers import SERVICING_NUMBERS, fixing

    approved_policy(officer=officer, credit_manager=credit_manager)
    proposed = servicing.servicing_policy_propose(actor=officer, numbers={**SERVICING_NUMBERS, "arrangement_fee": "2500"}, reason="fee")
    servicing.servicing_policy_decide(actor=credit_manager, policy_id=proposed.pk, approve=True)
    from datetime import date

    fixing(rate="0.052500", effective=date(2025, 1, 1), maker=officer, checker=officer2)
    from tests.risk.conftest import set_prices

    set_prices()
    app = submitted(eligible_client, django_capture_on_commit_callbacks)
    app = services.application_approve(actor=officer, application_id=app.pk, limit="3000000")
    assert "Arrangement fee: HK$2,500.00, added to the drawn balance when you accept this letter." in app.letter_text
    facility = services.application_accept(user=eligible_client, application_id=app.pk, letter_sha256=app.letter_sha256)
    fee = FacilityTransaction.objects.get(facility=facility)
    assert fee.kind == "fee" and str(fee.amount) == "2500.00" and str(facility.drawn_balance) == "2500.00"
    assert ledger_check().ok
