"""Demo clients at different onboarding stages. Run by ``manage.py seed_demo`` (demo mode only). Idempotent.

Every record is made through the onboarding (and disclosures) services, exactly as the pages would,
so the audit trail of the demo reads like real use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from portal.demo import DEMO_PASSWORD, DemoPerson, person_ensure
from portal.models import User
from portal.permissions import Role
from portal.products import Product

from . import selectors, services


class Stage:
    ONBOARDED = "onboarded"
    MID_WAY = "mid_way"
    NEW = "new"  # has just opened an account: no profile, no assessment, no disclosures acknowledged
    CORPORATE = "corporate"


@dataclass(frozen=True)
class DemoClient:
    email: str
    full_name: str
    description: str
    language: str = "en"
    stage: str = Stage.NEW


DEMO_CLIENTS = [
    DemoClient("lee.kaying@demo.vamargin.hk", "Lee Ka Ying", "fully onboarded: confirmed margin account, growth profile with VA and derivative knowledge, verified PI, perpetuals access granted",
               stage=Stage.ONBOARDED),
    DemoClient("wong.siuming@demo.vamargin.hk", "Wong Siu Ming", "mid-way: PI attestation submitted awaiting an officer, margin account awaiting confirmation, assessment flagged for review",
               stage=Stage.MID_WAY),
    DemoClient("chan.taiman@demo.vamargin.hk", "陳大文 Chan Tai Man", "new: has just opened an account, nothing acknowledged yet (Traditional Chinese)", "zh-hant",
               stage=Stage.NEW),
    DemoClient("harbourview.capital@demo.vamargin.hk", "Harbourview Capital Limited", "corporate: verified PI on total assets (audited accounts), no derivative knowledge yet",
               stage=Stage.CORPORATE),
]
DEMO_CLIENTS_BY_EMAIL = {c.email: c for c in DEMO_CLIENTS}

BASE_PROFILE = {
    "client_type": "individual",
    "id_document_type": "hkid",
    "nationality": "Hong Kong",
    "residential_address": "Flat 8B, 18 Harbour Road, Wan Chai, Hong Kong",
    "phone": "+852 9000 0000",
    "employment_status": "employed",
    "employer": "Demo Holdings Ltd",
    "occupation": "Managing director",
    "annual_income": "3600000.00",
    "net_worth": "42000000.00",
    "liquid_assets": "15000000.00",
    "source_of_wealth": "Salary, bonuses and long-term investments",
}

GROWTH_ANSWERS = [
    {"income_stability": "stable", "emergency_reserve": "six_months", "va_share": "10_30"},
    {"objective": "growth", "horizon": "3_5"},
    {"loss_reaction": "hold", "max_loss": "15_30"},
    {"shares_years": 12, "shares_transactions_3y": 150, "margin_years": 6, "margin_transactions_3y": 45, "derivative_years": 4,
     "derivative_transactions_3y": 18, "va_years": 3, "va_transactions_3y": 40, "va_assets": "BTC and ETH on an SFC-licensed platform",
     "va_frequency": "weekly"},
    {"va_training": True, "va_course": "Professional Certificate in Virtual Assets and Web3", "va_course_provider": "HKU SPACE, March 2025",
     "va_work": False, "derivative_training": False, "derivative_work": False},
]


def _answers(**changes) -> list[dict]:
    steps = [dict(s) for s in GROWTH_ANSWERS]
    for code, value in changes.items():
        for step in steps:
            if code in step:
                step[code] = value
                break
    return steps


def demo_pdf(lines: list[str]) -> bytes:
    """A small, valid one-page PDF with ``lines`` of text: demo evidence an officer can open inline."""
    text = "BT /F1 12 Tf 56 780 Td 16 TL " + " ".join(f"({line.replace('(', '[').replace(')', ']')}) '" for line in lines) + " ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(text)).encode() + b" >>\nstream\n" + text.encode("latin-1") + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _acknowledge(user, product) -> None:
    from disclosures import selectors as dsel
    from disclosures import services as dsvc

    for status in dsel.outstanding_documents(user=user, product=product):
        version = dsel.current_version_by_code(code=status.code)
        language = "zh-hant" if user.preferred_language == "zh-hant" else "en"
        serving = dsvc.version_serve(user=user, version=version, language=language)
        dsvc.acknowledgement_record(
            user=user, version_id=version.pk, language=language, content_hash=serving.content_hash, serving_token=serving.token,
            confirmed_read_and_understood=True, confirmed_invited_to_ask_and_seek_advice=True,
        )


def _assess(user, answers) -> None:
    assessment = services.assessment_start(client=user)
    for step, data in enumerate(answers):
        services.assessment_save_step(assessment_id=assessment.pk, actor=user, step=step, data=data)
    services.assessment_complete(assessment_id=assessment.pk, actor=user)


def _attest(user, *, category, basis, amount, kind, evidence_lines) -> int:
    today = timezone.localdate()
    _acknowledge(user, Product.PROFESSIONAL_INVESTOR)
    attestation = services.attestation_create(client=user, data={
        "category": category, "basis": basis, "declared_amount": amount, "relevant_date": today - timedelta(days=20),
        "includes_joint_with_associate": category == "individual", "understood_pi_treatment": True,
    })
    upload = SimpleUploadedFile("evidence.pdf", demo_pdf(evidence_lines), content_type="application/pdf")
    services.evidence_add(attestation_id=attestation.pk, actor=user, upload=upload, kind=kind, issued_on=today - timedelta(days=25))
    services.attestation_submit(attestation_id=attestation.pk, actor=user)
    return attestation.pk


CHECKLIST_ALL = {"identity_matches": True, "issuer_acceptable": True, "dates_in_window": True, "amount_supported": True, "counting_correct": True}


def _fully_onboarded(user, officer) -> None:
    profile = services.profile_update(user=user, data={**BASE_PROFILE, "legal_name": "LEE, Ka Ying", "other_names": ["李嘉盈"],
                                                       "id_document_number": "Y1234567", "date_of_birth": "1979-09-14",
                                                       "margin_account_number": "M-200118"})
    services.profile_confirm_margin_account(profile_id=profile.pk, actor=officer)
    _assess(user, GROWTH_ANSWERS)
    pk = _attest(user, category="individual", basis="portfolio", amount="12500000.00", kind="custodian_statement",
                 evidence_lines=["Demo Custodian Bank (Hong Kong) Limited", "Custodian statement", "Account holder: LEE, Ka Ying",
                                 "Securities and cash held: HK$12,500,000.00"])
    services.attestation_verify(attestation_id=pk, actor=officer, checklist=CHECKLIST_ALL, reason="Custodian statement matches; above HK$8m.")
    for product in (Product.VA_MARGIN, Product.PERPETUALS):
        _acknowledge(user, product)
    request = services.perpetuals_request(client=user)
    services.perpetuals_grant(request_id=request.pk, actor=officer, reason="Verified PI with 18 derivative trades in three years.")


def _mid_way(user) -> None:
    services.profile_update(user=user, data={**BASE_PROFILE, "legal_name": "WONG, Siu Ming", "id_document_number": "K7654321",
                                            "date_of_birth": "1988-02-29", "net_worth": "11000000.00", "liquid_assets": "9000000.00",
                                            "annual_income": "1500000.00", "margin_account_number": "M-200342"})
    # Aggressive tolerance with a horizon under a year: flagged for compliance to review.
    _assess(user, _answers(horizon="lt1", loss_reaction="buy_more", derivative_transactions_3y=2))
    _attest(user, category="individual", basis="portfolio", amount="8600000.00", kind="statement",
            evidence_lines=["Demo Securities Limited", "Monthly statement", "Account holder: WONG, Siu Ming", "Portfolio value: HK$8,600,000.00"])


def _corporate(user, officer) -> None:
    profile = services.profile_update(user=user, data={
        **BASE_PROFILE, "client_type": "corporate", "legal_name": "Harbourview Capital Limited", "other_names": ["海景資本有限公司"],
        "id_document_type": "ci", "id_document_number": "CI3141592", "date_of_birth": "2012-06-01", "nationality": "Hong Kong",
        "residential_address": "20/F, 1 Connaught Place, Central, Hong Kong", "employment_status": "not_applicable", "employer": "",
        "occupation": "Investment holding", "annual_income": "8000000.00", "net_worth": "52000000.00", "liquid_assets": "20000000.00",
        "source_of_wealth": "Retained profits of the group", "margin_account_number": "M-900007",
    })
    services.profile_confirm_margin_account(profile_id=profile.pk, actor=officer)
    _assess(user, _answers(derivative_transactions_3y=0))
    pk = _attest(user, category="corporation", basis="total_assets", amount="52000000.00", kind="audited_accounts",
                 evidence_lines=["Harbourview Capital Limited", "Audited financial statements", "Total assets: HK$52,000,000.00",
                                 "Auditor: Demo & Co., Certified Public Accountants"])
    services.attestation_verify(attestation_id=pk, actor=officer, checklist=CHECKLIST_ALL, reason="Audited accounts within 16 months; total assets above HK$40m.")


def seed(stdout) -> None:
    officer = User.objects.get(email="officer@demo.vamargin.hk")
    stdout.write(f"Clients (password {DEMO_PASSWORD}):")
    for client in DEMO_CLIENTS:
        user, created = person_ensure(DemoPerson(client.email, client.full_name, Role.CLIENT, client.language))
        if created:
            with transaction.atomic():
                if client.stage == Stage.ONBOARDED:
                    _fully_onboarded(user, officer)
                elif client.stage == Stage.MID_WAY:
                    _mid_way(user)
                elif client.stage == Stage.CORPORATE:
                    _corporate(user, officer)
        facts = selectors.client_facts(user=user)
        pi = "verified PI" if facts.pi_valid else (facts.attestation.get_state_display() if facts.attestation else "no PI")
        stdout.write(f"  client           {client.email:40} password {DEMO_PASSWORD}  — {client.description} [{pi}]")
