"""Onboarding fixtures: complete profiles, questionnaire answers, evidence files, attestations at each state."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from portal.products import Product

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def png_bytes() -> bytes:
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"\x00\xff\xff\xff"
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def pdf_upload(name="statement.pdf", content=PDF):
    return SimpleUploadedFile(name, content, content_type="application/pdf")


PROFILE = {
    "client_type": "individual",
    "legal_name": "WONG, Alice",
    "other_names": ["黃愛麗"],
    "id_document_type": "hkid",
    "id_document_number": "A1234567",
    "date_of_birth": "1985-04-02",
    "nationality": "Hong Kong",
    "residential_address": "Flat 12A, 1 Harbour Road, Wan Chai",
    "phone": "+852 9123 4567",
    "preferred_language": "en",
    "employment_status": "employed",
    "employer": "Harbour Trading Ltd",
    "occupation": "Finance director",
    "annual_income": "2400000.00",
    "net_worth": "30000000.00",
    "liquid_assets": "12000000.00",
    "source_of_wealth": "Salary and investments",
    "margin_account_number": "M-100234",
}

# A growth-profile client with VA knowledge from training and derivative knowledge from trading.
ANSWERS = [
    {"income_stability": "stable", "emergency_reserve": "six_months", "va_share": "10_30"},
    {"objective": "growth", "horizon": "1_3"},
    {"loss_reaction": "hold", "max_loss": "15_30"},
    {"shares_years": 10, "shares_transactions_3y": 120, "margin_years": 5, "margin_transactions_3y": 40, "derivative_years": 3,
     "derivative_transactions_3y": 12, "va_years": 2, "va_transactions_3y": 30, "va_assets": "BTC and ETH on a licensed platform", "va_frequency": "monthly"},
    {"va_training": True, "va_course": "HKU SPACE Certificate in Virtual Assets", "va_course_provider": "HKU SPACE, 2024",
     "va_work": False, "derivative_training": False, "derivative_work": False},
]


def answers_with(**changes) -> list[dict]:
    """ANSWERS with some answers changed, each put in the step of questionnaire v1 that asks it."""
    from onboarding.questionnaires.v1 import QUESTIONNAIRE_V1

    steps = [dict(s) for s in ANSWERS]
    where = {q["code"]: i for i, st in enumerate(QUESTIONNAIRE_V1["steps"]) for q in st["questions"]}
    for code, value in changes.items():
        steps[where[code]][code] = value
    return steps


@pytest.fixture(autouse=True)
def _private_media(media_root):
    return media_root


def acknowledge(user, product) -> None:
    """Acknowledge every outstanding disclosure ``product`` needs, through the disclosures services."""
    from disclosures import selectors as dsel
    from disclosures import services as dsvc

    for status in dsel.outstanding_documents(user=user, product=product):
        version = dsel.current_version_by_code(code=status.code)
        serving = dsvc.version_serve(user=user, version=version, language="en")
        dsvc.acknowledgement_record(
            user=user, version_id=version.pk, language="en", content_hash=version.hash_in("en"), serving_token=serving.token,
            confirmed_read_and_understood=True, confirmed_invited_to_ask_and_seek_advice=True,
        )


def make_profile(user, **overrides):
    """The standard profile; a second client in the same test gets a margin account number of their own,
    since a confirmed number belongs to one client."""
    from onboarding import services
    from onboarding.models import ClientProfile

    data = {**PROFILE, **overrides}
    if "margin_account_number" not in overrides and ClientProfile.objects.filter(
            margin_account_number=PROFILE["margin_account_number"]).exclude(user=user).exists():
        data["margin_account_number"] = f"M-1{user.pk:05d}"
    return services.profile_update(user=user, data=data)


def complete_assessment(user, steps=None):
    from onboarding import services

    assessment = services.assessment_start(client=user)
    for index, answers in enumerate(steps or ANSWERS):
        services.assessment_save_step(assessment_id=assessment.pk, actor=user, step=index, data=answers)
    return services.assessment_complete(assessment_id=assessment.pk, actor=user)


def draft_attestation(user, *, amount="8000000.00", category="individual", basis="portfolio", kind="statement", issued_on=None, relevant_date=None, **extra):
    from onboarding import services

    today = timezone.localdate()
    attestation = services.attestation_create(client=user, data={
        "category": category, "basis": basis, "declared_amount": Decimal(amount), "relevant_date": relevant_date or today,
        "understood_pi_treatment": True, **extra,
    })
    services.evidence_add(attestation_id=attestation.pk, actor=user, upload=pdf_upload(), kind=kind, issued_on=issued_on or today - timedelta(days=10))
    return attestation


def submitted_attestation(user, **kwargs):
    from onboarding import services

    acknowledge(user, Product.PROFESSIONAL_INVESTOR)
    attestation = draft_attestation(user, **kwargs)
    return services.attestation_submit(attestation_id=attestation.pk, actor=user)


ALL_TICKED = {"identity_matches": True, "issuer_acceptable": True, "dates_in_window": True, "amount_supported": True, "counting_correct": True}


def verified_attestation(user, officer, **kwargs):
    from onboarding import services

    attestation = submitted_attestation(user, **kwargs)
    return services.attestation_verify(attestation_id=attestation.pk, actor=officer, checklist=ALL_TICKED, reason="Custodian statement checked")


def onboard_fully(user, officer):
    """Profile with a confirmed margin account, growth assessment with both knowledges, verified PI, disclosures read."""
    from onboarding import services

    profile = make_profile(user)
    services.profile_confirm_margin_account(profile_id=profile.pk, actor=officer)
    complete_assessment(user, answers_with(derivative_transactions_3y=12))
    verified_attestation(user, officer)
    acknowledge(user, Product.VA_MARGIN)
    acknowledge(user, Product.PERPETUALS)


def on_day(day, hour=9):
    """Travel to ``day`` in Hong Kong, at ``hour``:10."""
    from datetime import datetime, time

    import time_machine

    return time_machine.travel(timezone.make_aware(datetime.combine(day, time(hour, 10))), tick=False)
