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


def _lines(text):
    return [line.strip() for line in text.split("\n") if line.strip()]


def test_the_formatted_letter_keeps_every_line_of_the_accepted_text(opened):
    from lending.servicing.letter import letter_blocks

    text = opened.application.letter_text
    rebuilt = []
    for block in letter_blocks(text):
        if block.kind == "list":
            rebuilt += [f"- {item}" for item in block.items]
        elif block.kind == "labelled":
            rebuilt.append(f"{block.label} {block.text}")
        else:
            rebuilt.append(block.text)
    assert rebuilt == _lines(text)  # nothing added, dropped or reworded: the document is the accepted text
    kinds = [b.kind for b in letter_blocks(text)]
    assert kinds[0] == "title" and "heading" in kinds and "list" in kinds and "labelled" in kinds


def test_a_chinese_client_reads_and_accepts_the_letter_in_chinese(db, alice, facts, policy, prices, officer, officer2,
                                                                  django_capture_on_commit_callbacks):
    from datetime import date

    from lending import services
    from portal.pdf import pdf_text
    from portal.services import user_set_language
    from tests.lending.conftest import give_holdings, submitted
    from tests.servicing.helpers import fixing

    user_set_language(user=alice, language="zh-hant")
    give_holdings(alice)
    fixing(rate="0.052500", effective=date(2025, 1, 1), maker=officer, checker=officer2)
    app = submitted(alice, django_capture_on_commit_callbacks)
    app = services.application_approve(actor=officer, application_id=app.pk, limit="3000000")
    assert app.letter_text.startswith("融資函件") and "÷ 365" in app.letter_text and "HK$3,000,000.00" in app.letter_text
    facility = services.application_accept(user=alice, application_id=app.pk, letter_sha256=app.letter_sha256)
    assert facility.letter_sha256 == hashlib.sha256(app.letter_text.encode()).hexdigest()

    from django.test import Client

    client = Client()
    client.force_login(alice)
    page = client.get(f"/servicing/facilities/{facility.pk}/letter/").content.decode()
    assert 'data-testid="letter-document"' in page and "<pre" not in page and "融資函件" in page
    assert facility.letter_sha256 in page and "與上文相符" in page
    text = pdf_text(b"".join(client.get(f"/servicing/facilities/{facility.pk}/letter.pdf").streaming_content))
    assert "融資函件" in text and "接受" in text and facility.letter_sha256[:32] in text.replace("\n", "")


def test_the_letter_page_is_the_owners_and_staffs_only(client, opened, eligible_client, charlie, officer):
    client.force_login(charlie)
    assert client.get(f"/servicing/facilities/{opened.pk}/letter/").status_code == 404
    assert client.get(f"/servicing/staff/facilities/{opened.pk}/letter/").status_code == 403
    client.force_login(officer)
    page = client.get(f"/servicing/staff/facilities/{opened.pk}/letter/").content.decode()
    assert "FACILITY LETTER" in page and opened.letter_sha256 in page
    client.force_login(eligible_client)
    facility_page = client.get(f"/lending/facilities/{opened.pk}/").content.decode()
    assert f"/servicing/facilities/{opened.pk}/letter/" in facility_page
