"""The credit review page in words: labels for codes, money and shares formatted, timings on demand,
the second-approval sentence complete."""

from __future__ import annotations

import pytest

from lending import services

pytestmark = pytest.mark.django_db


def test_the_review_page_shows_codes_as_words_and_figures_formatted(client, officer, reviewed, facts):
    facts.set(reviewed.client, client_type="individual", va_knowledge_basis="trading_experience", risk_profile_label="Growth")
    client.force_login(officer)
    body = client.get(f"/lending/staff/applications/{reviewed.pk}/").content.decode()
    assert "<dd>Individual</dd>" in body and "<dd>Trading experience</dd>" in body
    assert ">individual<" not in body and "trading_experience" not in body
    assert "<dd>HK$3,000,000.00</dd>" in body and "<dd>30%</dd>" in body  # annual income; VA exposure limit
    assert ">ms<" not in body and "Inputs and timing" in body  # timings only on demand
    assert "HK$" in body.split('data-testid="recommendation"')[0]  # the requested limit in HK$


def test_the_second_approval_sentence_names_the_approver_and_the_reason(client, officer2, credit_manager, reviewed):
    from decimal import Decimal

    officer2.authority_limit = Decimal("1000000")
    officer2.save(update_fields=["authority_limit"])
    services.application_approve(actor=officer2, application_id=reviewed.pk, limit="2500000")
    reviewed.refresh_from_db()
    assert reviewed.state == "awaiting_second_approval"
    client.force_login(credit_manager)
    body = client.get(f"/lending/staff/applications/{reviewed.pk}/").content.decode()
    sentence = body.split('data-testid="second-approval-why">')[1].split("</p>")[0]
    assert sentence.startswith(f"{officer2.full_name} approved a limit of HK$2,500,000.00; a credit manager")
    assert "because the limit of HK$2,500,000.00 is above the approving officer&#x27;s authority of HK$1,000,000." in sentence
