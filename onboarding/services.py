"""Every change to onboarding records: profile, PI attestation, suitability, training, perpetuals access.

Each function refuses with a ``PortalError`` having changed nothing, or makes the change,
writes its audit row in the same transaction, and enqueues side effects on commit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

import filetype
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.access import ensure_not_own_record, ensure_staff_permission
from portal.audit import SYSTEM, audit_log, snapshot
from portal.errors import ConflictError, ForbiddenError, PortalError
from portal.models import User
from portal.notifications import notify
from portal.permissions import Perm
from portal.products import Product

from . import policy as floors
from . import scoring, training
from .models import (
    PI_CATEGORY_BASES,
    ClientProfile,
    EvidenceKind,
    KnowledgeBasis,
    OnboardingPolicy,
    PerpetualsAccessRequest,
    PerpetualsState,
    PIAttestation,
    PIBasis,
    PICategory,
    PIEvidence,
    PIState,
    Questionnaire,
    ReviewStatus,
    SuitabilityAssessment,
    SuitabilityState,
    TrainingAttempt,
    add_months,
)
from .policy import current_policy

# --- helpers -------------------------------------------------------------------


def _now():
    return timezone.now()


def _today() -> date:
    return timezone.localdate()


def hkd(amount: Decimal) -> str:
    return f"HK${amount:,.2f}"


def _ensure_client(user) -> None:
    if not (user and user.is_authenticated and user.is_client):
        raise ForbiddenError("not_client", _("Only clients can do this."))


def _ensure_staff(actor, perm: Perm, client_user) -> None:
    ensure_staff_permission(actor=actor, perm=perm)
    ensure_not_own_record(actor=actor, client_user=client_user)


def _lock_client(client) -> None:
    """Serialise a client's own concurrent requests (two tabs opening two drafts)."""
    User.objects.select_for_update(no_key=True).filter(pk=client.pk).first()


def _ensure_owner(actor, record) -> None:
    if record.client_id != getattr(actor, "pk", None):
        raise ForbiddenError("not_owner", _("Only the client can do this to their own record."))


# --- client profile --------------------------------------------------------------

PROFILE_EDITABLE = ClientProfile.EDITABLE_FIELDS


def _profile_audit(profile: ClientProfile) -> dict:
    """The profile as the audit trail keeps it: the identity number masked, with a hash to tell changes apart
    (the audit trail is read more widely than the people allowed to see the number)."""
    data = snapshot(profile, ClientProfile.AUDITED_FIELDS)
    number = data.pop("id_document_number") or ""
    data["id_document_number_masked"] = profile.masked_id_number
    data["id_document_number_sha256"] = hashlib.sha256(number.encode()).hexdigest()[:16] if number else ""
    return data


def profile_get_or_create(*, user) -> ClientProfile:
    profile = ClientProfile.objects.filter(user=user).first()
    if profile is not None:
        return profile
    return _profile_create(user=user)


@transaction.atomic
def _profile_create(*, user) -> ClientProfile:
    profile, created = ClientProfile.objects.get_or_create(
        user=user, defaults={"legal_name": user.full_name, "preferred_language": user.preferred_language}
    )
    if created:
        audit_log(actor=user, action="onboarding.profile.created", obj=profile, after=_profile_audit(profile))
    return profile


def _clean_profile(data: dict) -> tuple[dict, dict]:
    cleaned, errors = {}, {}
    for name, value in data.items():
        if name not in PROFILE_EDITABLE:
            continue
        if name in ClientProfile.FINANCIAL_FIELDS:
            if value in (None, ""):
                cleaned[name] = None
                continue
            try:
                amount = Decimal(str(value)).quantize(Decimal("0.01"))
            except (InvalidOperation, ValueError):
                errors[name] = [_("Enter an amount in Hong Kong dollars.")]
                continue
            if amount < 0:
                errors[name] = [_("The amount cannot be negative.")]
                continue
            cleaned[name] = amount
        elif name == "other_names":
            names = value if isinstance(value, list) else [n for n in str(value or "").split(",")]
            cleaned[name] = [str(n).strip() for n in names if str(n).strip()]
        elif name == "date_of_birth":
            if value in (None, ""):
                cleaned[name] = None
                continue
            if isinstance(value, str):
                try:
                    value = date.fromisoformat(value)
                except ValueError:
                    errors[name] = [_("Enter a date as YYYY-MM-DD.")]
                    continue
            if value > _today():
                errors[name] = [_("The date cannot be in the future.")]
                continue
            cleaned[name] = value
        else:
            cleaned[name] = (value or "").strip() if isinstance(value, str) or value is None else value
    field_choices = {f: dict(ClientProfile._meta.get_field(f).choices) for f in ("client_type", "id_document_type", "employment_status", "preferred_language")}
    for name, choices in field_choices.items():
        if name in cleaned and cleaned[name] not in choices and not (cleaned[name] == "" and name != "client_type"):
            errors[name] = [_("Choose one of the options.")]
    if cleaned.get("id_document_number"):
        cleaned["id_document_number"] = cleaned["id_document_number"].upper().replace(" ", "")
    return cleaned, errors


@transaction.atomic
def profile_update(*, user, data: dict) -> ClientProfile:
    """The client edits their own profile. A change of financial figures after a completed
    suitability assessment flags that assessment for review; a new margin account number
    needs confirming again."""
    _ensure_client(user)
    cleaned, errors = _clean_profile(data)
    if errors:
        raise PortalError("validation_error", _("Please correct the highlighted fields."), errors)
    profile_get_or_create(user=user)
    profile = ClientProfile.objects.select_for_update(no_key=True).get(user=user)
    before = {**_profile_audit(profile), "user_full_name": user.full_name}
    changed = [name for name, value in cleaned.items() if getattr(profile, name) != value]
    new_legal_name = cleaned.get("legal_name", profile.legal_name)
    # The legal name becomes the name the portal greets the client by and staff see in their queues.
    rename = bool(new_legal_name) and new_legal_name != user.full_name
    if not changed and not rename:
        return profile
    for name in changed:
        setattr(profile, name, cleaned[name])
    if "margin_account_number" in changed and profile.margin_account_confirmed_at:
        profile.margin_account_confirmed_at = None
        profile.margin_account_confirmed_by = None
    if changed:
        profile.updated_at = _now()
        profile.save()
    if rename:
        User.objects.filter(pk=user.pk).update(full_name=new_legal_name)
        user.full_name = new_legal_name
    audit_log(actor=user, action="onboarding.profile.updated", obj=profile, before=before, after={**_profile_audit(profile), "user_full_name": user.full_name})
    financial = [name for name in changed if name in ClientProfile.FINANCIAL_FIELDS]
    if financial:
        assessment = SuitabilityAssessment.objects.select_for_update(no_key=True).filter(client=user, state=SuitabilityState.COMPLETED).first()
        if assessment is not None:
            _assessment_flag(
                assessment=assessment,
                reasons=[_("The client changed their financial figures after the assessment: %(fields)s.") % {
                    "fields": ", ".join(str(ClientProfile._meta.get_field(n).verbose_name) for n in financial)}],
                actor=user,
            )
    return profile


def _margin_account_taken(number: str) -> ConflictError:
    return ConflictError("margin_account_taken", _(
        "Margin account %(number)s is already confirmed for another client. Check the number with the back office "
        "before confirming it.") % {"number": number})


@transaction.atomic
def profile_confirm_margin_account(*, profile_id: int, actor) -> ClientProfile:
    """Staff confirm the client holds the securities margin account they named."""
    profile = ClientProfile.objects.select_for_update(no_key=True).select_related("user").get(pk=profile_id)
    _ensure_staff(actor, Perm.ONBOARDING_REVIEW, profile.user)
    if not profile.margin_account_number:
        raise PortalError("no_margin_account", _("The client has not given a securities margin account number."))
    if profile.margin_account_confirmed_at:
        raise ConflictError("already_confirmed", _("This margin account is already confirmed."))
    if ClientProfile.objects.filter(margin_account_number=profile.margin_account_number,
                                    margin_account_confirmed_at__isnull=False).exclude(pk=profile.pk).exists():
        # The database constraint is the guarantee; this says why before it would be hit.
        raise _margin_account_taken(profile.margin_account_number)
    before = snapshot(profile, ["margin_account_number", "margin_account_confirmed_at", "margin_account_confirmed_by"])
    profile.margin_account_confirmed_at = _now()
    profile.margin_account_confirmed_by = actor
    try:
        with transaction.atomic():
            profile.save(update_fields=["margin_account_confirmed_at", "margin_account_confirmed_by"])
    except IntegrityError:
        # Another officer confirmed the same number for someone else in the same moment.
        raise _margin_account_taken(profile.margin_account_number) from None
    audit_log(actor=actor, action="onboarding.profile.margin_account_confirmed", obj=profile, before=before,
              after=snapshot(profile, ["margin_account_number", "margin_account_confirmed_at", "margin_account_confirmed_by"]))
    notify(user=profile.user, kind="onboarding.margin_account_confirmed",
           title=gettext_lazy("Your securities margin account is confirmed"),
           body=gettext_lazy("We confirmed margin account %(number)s."), params={"number": profile.margin_account_number},
           link="/onboarding/")
    return profile


# --- professional-investor attestation ---------------------------------------------

ATTESTATION_FIELDS = (
    "category",
    "basis",
    "declared_amount",
    "relevant_date",
    "includes_joint_with_associate",
    "includes_share_of_joint_with_others",
    "includes_wholly_owned_corporation",
    "understood_pi_treatment",
)
ATTESTATION_AUDITED = (*ATTESTATION_FIELDS, "state", "submitted_at", "decided_at", "decided_by", "verified_at", "expires_on", "decision_reason", "return_questions", "checklist")

VERIFY_CHECKLIST = (
    ("identity_matches", gettext_lazy("The name on every document matches the client (or the client's wholly owned corporation).")),
    ("issuer_acceptable", gettext_lazy("Each document is a custodian statement or certificate, an auditor's or CPA's certificate, a public filing or audited accounts.")),
    ("dates_in_window", gettext_lazy("Each document was issued within its window of the relevant date.")),
    ("amount_supported", gettext_lazy("The documents support the declared amount at the relevant date, in HKD or its equivalent.")),
    ("counting_correct", gettext_lazy("Joint accounts and company holdings are counted only as the rules allow.")),
)


def _clean_attestation(data: dict) -> tuple[dict, dict]:
    cleaned, errors = {}, {}
    for name in ATTESTATION_FIELDS:
        if name not in data:
            continue
        value = data[name]
        if name == "category":
            if value not in PICategory.values:
                errors[name] = [_("Choose one of the options.")]
            cleaned[name] = value
        elif name == "basis":
            if value not in PIBasis.values:
                errors[name] = [_("Choose one of the options.")]
            cleaned[name] = value
        elif name == "declared_amount":
            if value in (None, ""):
                cleaned[name] = None
                continue
            try:
                amount = Decimal(str(value))
            except (InvalidOperation, ValueError):
                errors[name] = [_("Enter an amount in Hong Kong dollars.")]
                continue
            if amount < 0 or amount != amount.quantize(Decimal("0.01")):
                errors[name] = [_("Enter a positive amount with at most two decimal places.")]
                continue
            cleaned[name] = amount
        elif name == "relevant_date":
            if value in (None, ""):
                cleaned[name] = None
                continue
            if isinstance(value, str):
                try:
                    value = date.fromisoformat(value)
                except ValueError:
                    errors[name] = [_("Enter a date as YYYY-MM-DD.")]
                    continue
            cleaned[name] = value
        else:
            cleaned[name] = bool(value) and value not in ("false", "False", "0", "off")
    return cleaned, errors


@transaction.atomic
def attestation_create(*, client, data: dict) -> PIAttestation:
    _ensure_client(client)
    cleaned, errors = _clean_attestation(data)
    if errors:
        raise PortalError("validation_error", _("Please correct the highlighted fields."), errors)
    # Lock the client's row so two concurrent requests cannot both open a draft.
    _lock_client(client)
    open_states = [PIState.DRAFT, PIState.SUBMITTED, PIState.RETURNED]
    if PIAttestation.objects.filter(client=client, state__in=open_states).exists():
        raise ConflictError("attestation_open", _("You already have an attestation in progress."))
    attestation = PIAttestation(client=client, policy=current_policy(), **cleaned)
    attestation.save()
    audit_log(actor=client, action="onboarding.attestation.created", obj=attestation, after=snapshot(attestation, ATTESTATION_AUDITED))
    return attestation


@transaction.atomic
def attestation_update(*, attestation_id: int, actor, data: dict) -> PIAttestation:
    attestation = PIAttestation.objects.select_for_update(no_key=True).get(pk=attestation_id)
    _ensure_owner(actor, attestation)
    if not attestation.editable:
        raise ConflictError("invalid_state", _("This attestation can no longer be changed."))
    cleaned, errors = _clean_attestation(data)
    if errors:
        raise PortalError("validation_error", _("Please correct the highlighted fields."), errors)
    before = snapshot(attestation, ATTESTATION_AUDITED)
    for name, value in cleaned.items():
        setattr(attestation, name, value)
    attestation.policy = current_policy()
    attestation.save()
    audit_log(actor=actor, action="onboarding.attestation.updated", obj=attestation, before=before, after=snapshot(attestation, ATTESTATION_AUDITED))
    return attestation


def _sniff(upload) -> tuple[str, bytes]:
    upload.seek(0)
    head = upload.read(8192)
    upload.seek(0)
    kind = filetype.guess(head)
    return (kind.mime if kind else ""), head


@transaction.atomic
def evidence_add(*, attestation_id: int, actor, upload, kind: str, issued_on) -> PIEvidence:
    """Attach one evidence file. The type is judged from the content, never the name."""
    attestation = PIAttestation.objects.select_for_update(no_key=True).get(pk=attestation_id)
    _ensure_owner(actor, attestation)
    if not attestation.editable:
        raise ConflictError("invalid_state", _("Evidence can only be added while the attestation is a draft or returned to you."))
    errors = {}
    if kind not in EvidenceKind.values:
        errors["kind"] = [_("Choose the kind of document.")]
    if isinstance(issued_on, str):
        try:
            issued_on = date.fromisoformat(issued_on)
        except ValueError:
            errors["issued_on"] = [_("Enter a date as YYYY-MM-DD.")]
    if issued_on is None:
        errors["issued_on"] = [_("Enter the date the document was issued.")]
    elif isinstance(issued_on, date) and issued_on > _today():
        errors["issued_on"] = [_("The issue date cannot be in the future.")]
    if upload is None:
        errors["file"] = [_("Choose a file to upload.")]
    else:
        if upload.size > floors.EVIDENCE_MAX_BYTES:
            errors["file"] = [_("The file is %(size)s MB; the limit is 10 MB.") % {"size": f"{upload.size / 1048576:.1f}"}]
        else:
            mime, _head = _sniff(upload)
            if mime not in floors.EVIDENCE_CONTENT_TYPES:
                errors["file"] = [_("Only PDF, PNG or JPEG files are accepted; this file's content is not one of them.")]
    if errors:
        raise PortalError("invalid_evidence", next(iter(errors.values()))[0], errors)
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    evidence = PIEvidence(
        attestation=attestation,
        kind=kind,
        issued_on=issued_on,
        original_name=(getattr(upload, "name", "") or "upload")[-200:],
        content_type=mime,
        size=upload.size,
        sha256=digest.hexdigest(),
        uploaded_by=actor,
    )
    evidence.file.save("ignored", upload, save=False)
    try:
        evidence.save()
        audit_log(actor=actor, action="onboarding.evidence.added", obj=attestation,
                  after={"evidence_id": evidence.pk, "kind": kind, "issued_on": issued_on, "sha256": evidence.sha256,
                         "content_type": mime, "size": evidence.size, "original_name": evidence.original_name})
    except Exception:
        # The row is rolled back; do not leave its file behind.
        evidence.file.storage.delete(evidence.file.name)
        raise
    return evidence


def attestation_problems(*, attestation: PIAttestation, evidence: list[PIEvidence] | None = None, policy: OnboardingPolicy | None = None, today: date | None = None) -> list[dict]:
    """What stops this attestation qualifying, each as {code, message}. Empty = the figures and
    evidence meet the rules (staff still verify the documents themselves)."""
    policy = policy or attestation.policy
    today = today or _today()
    evidence = list(attestation.evidence.all()) if evidence is None else evidence
    problems: list[dict] = []

    def add(code, message):
        problems.append({"code": code, "message": str(message)})

    category = PICategory(attestation.category)
    basis = PIBasis(attestation.basis)
    if basis not in PI_CATEGORY_BASES[category]:
        if category == PICategory.INDIVIDUAL:
            add("basis_not_allowed", _("An individual qualifies on their portfolio only, not on total assets."))
        else:
            add("basis_not_allowed", _("A trust corporation qualifies on the total assets entrusted to it, not on a portfolio."))
    threshold = policy.pi_portfolio_threshold if basis == PIBasis.PORTFOLIO else policy.pi_total_assets_threshold
    if attestation.declared_amount is None:
        add("amount_missing", _("Enter the amount of your %(basis)s.") % {"basis": basis.label.lower()})
    elif attestation.declared_amount < threshold:
        add("below_threshold", _("The declared %(basis)s of %(amount)s is below the minimum of %(threshold)s for the category “%(category)s”.") % {
            "basis": basis.label.lower(), "amount": hkd(attestation.declared_amount), "threshold": hkd(threshold), "category": category.label})
    relevant = attestation.relevant_date
    if relevant is None:
        add("relevant_date_missing", _("Enter the relevant date: the date your figures are as at."))
    elif relevant > today:
        add("relevant_date_future", _("The relevant date cannot be in the future."))
    elif relevant < add_months(today, -policy.evidence_window_months):
        add("relevant_date_stale", _("The relevant date must be within the last %(months)s months.") % {"months": policy.evidence_window_months})
    if category != PICategory.INDIVIDUAL and (
        attestation.includes_joint_with_associate or attestation.includes_share_of_joint_with_others or attestation.includes_wholly_owned_corporation
    ):
        add("counting_individual_only", _("Joint accounts and a wholly owned corporation count only towards an individual's portfolio."))
    if not evidence:
        add("evidence_missing", _("Upload at least one document: a statement, a custodian statement, an auditor's or CPA's certificate, or audited financial statements."))
    for item in evidence:
        if item.kind == EvidenceKind.AUDITED_ACCOUNTS and category == PICategory.INDIVIDUAL:
            add("audited_accounts_individual", _("Audited financial statements are evidence for a corporation or partnership; for an individual upload statements or a certificate."))
            continue
        corporate_accounts = item.kind == EvidenceKind.AUDITED_ACCOUNTS
        months = policy.audited_accounts_window_months if corporate_accounts else policy.evidence_window_months
        if relevant is None:
            continue
        earliest = add_months(relevant, -months)
        if item.issued_on < earliest:
            add("evidence_too_old", _("%(kind)s dated %(issued)s is more than %(months)s months before the relevant date %(relevant)s; it must be dated %(earliest)s or later.") % {
                "kind": item.get_kind_display(), "issued": item.issued_on.isoformat(), "months": months,
                "relevant": relevant.isoformat(), "earliest": earliest.isoformat()})
        elif item.issued_on > today:
            add("evidence_future", _("%(kind)s is dated in the future.") % {"kind": item.get_kind_display()})
    if not attestation.understood_pi_treatment:
        add("not_acknowledged", _("Confirm that you understand what being treated as a professional investor means and that you can withdraw it."))
    return problems


@transaction.atomic
def attestation_submit(*, attestation_id: int, actor) -> PIAttestation:
    attestation = PIAttestation.objects.select_for_update(no_key=True).get(pk=attestation_id)
    _ensure_owner(actor, attestation)
    if not attestation.editable:
        raise ConflictError("invalid_state", _("This attestation has already been submitted."))
    policy = current_policy()
    attestation.policy = policy
    evidence = list(attestation.evidence.all())
    problems = attestation_problems(attestation=attestation, evidence=evidence, policy=policy)
    from disclosures.selectors import outstanding_documents

    for document in outstanding_documents(user=actor, product=Product.PROFESSIONAL_INVESTOR):
        problems.append({"code": "disclosure_outstanding", "message": _("Read and acknowledge “%(title)s” first.") % {"title": document.title}})
    if problems:
        raise PortalError("attestation_incomplete", " ".join(p["message"] for p in problems), {"problems": [p["message"] for p in problems]})
    before = snapshot(attestation, ATTESTATION_AUDITED)
    record = {
        **policy.as_record(),
        "checked_at": _now().isoformat(),
        "category": attestation.category,
        "basis": attestation.basis,
        "declared_amount": str(attestation.declared_amount),
        "threshold_applied": str(policy.pi_portfolio_threshold if attestation.basis == PIBasis.PORTFOLIO else policy.pi_total_assets_threshold),
        "relevant_date": attestation.relevant_date.isoformat(),
        "counts": {
            "joint_with_associate": attestation.includes_joint_with_associate,
            "share_of_joint_with_others": attestation.includes_share_of_joint_with_others,
            "wholly_owned_corporation": attestation.includes_wholly_owned_corporation,
        },
        "evidence": [{"id": e.pk, "kind": e.kind, "issued_on": e.issued_on.isoformat(), "sha256": e.sha256} for e in evidence],
        "automatic_checks": "passed",
    }
    attestation.submit(at=_now(), record=record)
    attestation.save()
    audit_log(actor=actor, action="onboarding.attestation.submitted", obj=attestation, before=before, after=snapshot(attestation, ATTESTATION_AUDITED))
    return attestation


def _decision_checklist(checklist: dict) -> dict:
    return {code: bool(checklist.get(code)) for code, _label in VERIFY_CHECKLIST}


def _lock_for_decision(attestation_id: int, actor) -> PIAttestation:
    attestation = PIAttestation.objects.select_for_update(no_key=True).select_related("client").get(pk=attestation_id)
    _ensure_staff(actor, Perm.ONBOARDING_REVIEW, attestation.client)
    if attestation.state != PIState.SUBMITTED:
        raise ConflictError("invalid_state", _("Only a submitted attestation can be decided."))
    return attestation


@transaction.atomic
def attestation_verify(*, attestation_id: int, actor, checklist: dict, reason: str = "") -> PIAttestation:
    attestation = _lock_for_decision(attestation_id, actor)
    ticks = _decision_checklist(checklist)
    unticked = [str(label) for code, label in VERIFY_CHECKLIST if not ticks[code]]
    if unticked:
        raise PortalError("checklist_incomplete", _("Tick every checklist item before verifying, or reject or return the attestation."), {"checklist": unticked})
    # Figures are re-checked at the decision with the policy then in force.
    policy = current_policy()
    problems = attestation_problems(attestation=attestation, policy=policy)
    if problems:
        raise PortalError("attestation_fails_rules", " ".join(p["message"] for p in problems), {"problems": [p["message"] for p in problems]})
    before = snapshot(attestation, ATTESTATION_AUDITED)
    now = _now()
    expires_on = add_months(timezone.localdate(now), policy.pi_validity_months)
    attestation.assessment_record = {**attestation.assessment_record, "verified_with_policy": policy.as_record(), "verified_checklist": ticks}
    attestation.verify(by=actor, at=now, checklist=ticks, reason=reason.strip(), expires_on=expires_on)
    attestation.save()
    audit_log(actor=actor, action="onboarding.attestation.verified", obj=attestation, before=before, after=snapshot(attestation, ATTESTATION_AUDITED))
    # A renewal replaces the earlier verified status.
    for older in PIAttestation.objects.select_for_update(no_key=True).filter(client=attestation.client, state=PIState.VERIFIED).exclude(pk=attestation.pk):
        older_before = snapshot(older, ATTESTATION_AUDITED)
        older.expire(at=now)
        older.save()
        audit_log(actor=actor, action="onboarding.attestation.replaced", obj=older, before=older_before, after=snapshot(older, ATTESTATION_AUDITED))
    notify(user=attestation.client, kind="onboarding.pi_verified", title=gettext_lazy("You are now treated as a professional investor"),
           body=gettext_lazy("Your professional-investor status was verified and is valid until %(date)s. You can withdraw it at any time."),
           params={"date": expires_on.isoformat()}, link="/onboarding/professional-investor/")
    return attestation


@transaction.atomic
def attestation_reject(*, attestation_id: int, actor, checklist: dict, reason: str) -> PIAttestation:
    attestation = _lock_for_decision(attestation_id, actor)
    if not (reason or "").strip():
        raise PortalError("reason_required", _("Give the reasons for rejecting, for the client and the record."), {"reason": [_("This field is required.")]})
    before = snapshot(attestation, ATTESTATION_AUDITED)
    attestation.reject(by=actor, at=_now(), checklist=_decision_checklist(checklist), reason=reason.strip())
    attestation.save()
    audit_log(actor=actor, action="onboarding.attestation.rejected", obj=attestation, before=before, after=snapshot(attestation, ATTESTATION_AUDITED))
    notify(user=attestation.client, kind="onboarding.pi_rejected", title=gettext_lazy("Your professional-investor attestation was not accepted"),
           body=gettext_lazy("Reason: %(reason)s"), params={"reason": reason.strip()}, link="/onboarding/professional-investor/")
    return attestation


@transaction.atomic
def attestation_return(*, attestation_id: int, actor, questions: str, checklist: dict | None = None) -> PIAttestation:
    attestation = _lock_for_decision(attestation_id, actor)
    if not (questions or "").strip():
        raise PortalError("questions_required", _("Write the questions the client must answer."), {"questions": [_("This field is required.")]})
    before = snapshot(attestation, ATTESTATION_AUDITED)
    attestation.return_to_client(by=actor, at=_now(), checklist=_decision_checklist(checklist or {}), questions=questions.strip())
    attestation.save()
    audit_log(actor=actor, action="onboarding.attestation.returned", obj=attestation, before=before, after=snapshot(attestation, ATTESTATION_AUDITED))
    notify(user=attestation.client, kind="onboarding.pi_returned", title=gettext_lazy("We have questions about your professional-investor attestation"),
           body=gettext_lazy("%(questions)s"), params={"questions": questions.strip()}, link="/onboarding/professional-investor/")
    return attestation


@transaction.atomic
def attestation_withdraw(*, attestation_id: int, actor) -> PIAttestation:
    """The client stops being treated as a professional investor, with immediate effect."""
    attestation = PIAttestation.objects.select_for_update(no_key=True).get(pk=attestation_id)
    _ensure_owner(actor, attestation)
    if attestation.state != PIState.VERIFIED:
        raise ConflictError("invalid_state", _("Only a verified professional-investor status can be withdrawn."))
    before = snapshot(attestation, ATTESTATION_AUDITED)
    attestation.withdraw(at=_now())
    attestation.save()
    audit_log(actor=actor, action="onboarding.attestation.withdrawn", obj=attestation, before=before, after=snapshot(attestation, ATTESTATION_AUDITED))
    perpetuals_lapse_for(client=attestation.client, reason=gettext_lazy("Professional-investor status withdrawn."))
    return attestation


@dataclass(frozen=True)
class _Lapsing:
    """A record valid until a date (PI status, a suitability assessment): reminded once before, expired on the day."""

    model: type
    live_state: str
    until: str  # the date field it lapses on
    audited: tuple
    action: str  # audit action prefix
    link: str
    reminder_kind: str
    reminder_title: object
    reminder_body: object
    expired_kind: str
    expired_title: object
    expired_body: object
    lapse_reason: object  # why perpetual-contracts access lapses with it


def _lapsing_remind(rule: _Lapsing, pk: int, today: date | None) -> bool:
    """Remind the client once that the record is about to expire. False if already sent or not due."""
    today = today or _today()
    with transaction.atomic():
        record = rule.model.objects.select_related("client").filter(pk=pk).first()
        until = getattr(record, rule.until, None)
        if record is None or record.state != rule.live_state or until is None:
            return False
        if until - timedelta(days=current_policy().reminder_days_before_expiry) > today:
            return False
        if not rule.model.objects.filter(pk=pk, reminder_sent_at__isnull=True).update(reminder_sent_at=_now()):
            return False
        audit_log(actor=SYSTEM, action=f"{rule.action}.reminder_sent", obj=record, after={rule.until: until})
        notify(user=record.client, kind=rule.reminder_kind, title=rule.reminder_title, body=rule.reminder_body,
               params={"date": until.isoformat()}, link=rule.link)
    return True


def _lapsing_expire(rule: _Lapsing, pk: int, today: date | None) -> bool:
    today = today or _today()
    with transaction.atomic():
        record = rule.model.objects.select_for_update(no_key=True).select_related("client").filter(pk=pk).first()
        until = getattr(record, rule.until, None)
        if record is None or record.state != rule.live_state or until is None or until > today:
            return False
        before = snapshot(record, rule.audited)
        record.expire(at=_now())
        record.save()
        audit_log(actor=SYSTEM, action=f"{rule.action}.expired", obj=record, before=before, after=snapshot(record, rule.audited))
        notify(user=record.client, kind=rule.expired_kind, title=rule.expired_title, body=rule.expired_body, link=rule.link)
        perpetuals_lapse_for(client=record.client, reason=rule.lapse_reason)
    return True


PI_LAPSING = _Lapsing(
    model=PIAttestation, live_state=PIState.VERIFIED, until="expires_on", audited=ATTESTATION_AUDITED,
    action="onboarding.attestation", link="/onboarding/professional-investor/",
    reminder_kind="onboarding.pi_expiring", reminder_title=gettext_lazy("Your professional-investor status expires on %(date)s"),
    reminder_body=gettext_lazy("Submit a new attestation with recent evidence to keep it."),
    expired_kind="onboarding.pi_expired", expired_title=gettext_lazy("Your professional-investor status has expired"),
    expired_body=gettext_lazy("You are no longer treated as a professional investor. Submit a new attestation to regain it."),
    lapse_reason=gettext_lazy("Professional-investor status expired."),
)


def attestation_send_reminder(*, attestation_id: int, today: date | None = None) -> bool:
    """Remind the client once that their PI status is about to expire. False if already sent or not due."""
    return _lapsing_remind(PI_LAPSING, attestation_id, today)


def attestation_expire(*, attestation_id: int, today: date | None = None) -> bool:
    return _lapsing_expire(PI_LAPSING, attestation_id, today)


# --- suitability -------------------------------------------------------------------

ASSESSMENT_AUDITED = (
    "state", "questionnaire", "risk_score", "risk_profile", "va_knowledge", "va_knowledge_basis", "va_knowledge_detail",
    "derivative_knowledge", "derivative_knowledge_basis", "derivative_knowledge_detail", "warnings", "review_status",
    "flag_reasons", "reviewed_by", "review_note", "completed_at", "valid_until",
)


def current_questionnaire() -> Questionnaire:
    questionnaire = Questionnaire.objects.filter(published_at__isnull=False).order_by("-version").first()
    if questionnaire is None:
        raise PortalError("no_questionnaire", _("The suitability questionnaire is not available yet."))
    return questionnaire


def _questionnaire_definition_check(definition: dict) -> None:
    scoring.question_map(definition)  # fails loudly on a malformed definition
    for key in ("steps", "risk_bands"):
        if key not in definition:
            raise PortalError("invalid_definition", _("The definition needs “%(key)s”.") % {"key": key})


def _questionnaire_next_version() -> int:
    last = Questionnaire.objects.select_for_update(no_key=True).order_by("-version").values_list("version", flat=True).first()
    return (last or 0) + 1


@transaction.atomic
def questionnaire_publish(*, definition: dict, title: str, actor=SYSTEM) -> Questionnaire:
    """Add a new questionnaire version. Earlier versions and the answers given to them are untouched."""
    _questionnaire_definition_check(definition)
    version = _questionnaire_next_version()
    questionnaire = Questionnaire.objects.create(version=version, title=title, definition=definition, published_at=_now())
    audit_log(actor=actor, action="onboarding.questionnaire.published", obj=questionnaire, after={"version": version, "title": title})
    return questionnaire


@transaction.atomic
def onboarding_policy_create(*, actor, policy: OnboardingPolicy) -> OnboardingPolicy:
    """Put a new version of the firm's onboarding numbers in force, checked against the statutory floors."""
    last = OnboardingPolicy.objects.select_for_update(no_key=True).order_by("-version").values_list("version", flat=True).first()
    policy.version = (last or 0) + 1
    policy.full_clean()
    policy.save()
    audit_log(actor=actor, action="onboarding.policy.created", obj=policy, after=policy.as_record())
    return policy


@transaction.atomic
def questionnaire_draft_save(*, actor, questionnaire: Questionnaire) -> Questionnaire:
    """Save a draft questionnaire an administrator is editing; a new draft gets the next version number."""
    if questionnaire.pk is not None and Questionnaire.objects.filter(pk=questionnaire.pk, published_at__isnull=False).exists():
        raise PortalError("questionnaire_published", _("A published questionnaire never changes: answers point at it."))
    if questionnaire.pk is None:
        questionnaire.version = _questionnaire_next_version()
    questionnaire.save()
    audit_log(actor=actor, action="onboarding.questionnaire.saved", obj=questionnaire, after={"version": questionnaire.version, "title": questionnaire.title})
    return questionnaire


@transaction.atomic
def questionnaire_drafts_publish(*, actor, questionnaire_ids: list[int]) -> list[int]:
    """Publish the given drafts (already published ones are left as they are); returns the versions published."""
    published = []
    for questionnaire in Questionnaire.objects.select_for_update(no_key=True).filter(pk__in=questionnaire_ids, published_at__isnull=True).order_by("version"):
        _questionnaire_definition_check(questionnaire.definition)
        questionnaire.published_at = _now()
        questionnaire.save(update_fields=["published_at"])
        audit_log(actor=actor, action="onboarding.questionnaire.published", obj=questionnaire, after={"version": questionnaire.version})
        published.append(questionnaire.version)
    return published


@transaction.atomic
def assessment_start(*, client) -> SuitabilityAssessment:
    """Resume the client's assessment in progress, or start one on the current questionnaire."""
    _ensure_client(client)
    _lock_client(client)
    existing = SuitabilityAssessment.objects.filter(client=client, state=SuitabilityState.IN_PROGRESS).first()
    if existing is not None:
        return existing
    assessment = SuitabilityAssessment.objects.create(client=client, questionnaire=current_questionnaire(), policy=current_policy())
    audit_log(actor=client, action="onboarding.assessment.started", obj=assessment, after={"questionnaire_version": assessment.questionnaire.version})
    return assessment


@transaction.atomic
def assessment_save_step(*, assessment_id: int, actor, step: int, data: dict) -> SuitabilityAssessment:
    assessment = SuitabilityAssessment.objects.select_for_update(no_key=True).select_related("questionnaire").get(pk=assessment_id)
    _ensure_owner(actor, assessment)
    if assessment.state != SuitabilityState.IN_PROGRESS:
        raise ConflictError("invalid_state", _("This assessment is finished; start a new one to change your answers."))
    definition = assessment.questionnaire.definition
    if not 0 <= step < len(definition["steps"]):
        raise PortalError("invalid_step", _("There is no such step."))
    if step > assessment.current_step:
        raise PortalError("step_out_of_order", _("Answer the earlier steps first."))
    cleaned, errors = scoring.validate_step(definition, step, data, assessment.answers)
    if errors:
        raise PortalError("validation_error", _("Please answer the highlighted questions."), {k: [v] for k, v in errors.items()})
    before = {"answers": assessment.answers, "current_step": assessment.current_step}
    assessment.answers = {**assessment.answers, **cleaned}
    assessment.current_step = max(assessment.current_step, step + 1)
    assessment.save(update_fields=["answers", "current_step"])
    audit_log(actor=actor, action="onboarding.assessment.step_saved", obj=assessment, before=before,
              after={"answers": assessment.answers, "current_step": assessment.current_step, "step": step})
    return assessment


def _training_passed(client, module: str, since) -> TrainingAttempt | None:
    return TrainingAttempt.objects.filter(client=client, module=module, passed=True, created_at__gte=since).order_by("-created_at").first()


# The client's task when staff ask for the questionnaire again: resolved by completing it.
SUITABILITY_TASK_KEY = "onboarding.suitability.redo"


@transaction.atomic
def assessment_complete(*, assessment_id: int, actor) -> SuitabilityAssessment:
    assessment = SuitabilityAssessment.objects.select_for_update(no_key=True).select_related("questionnaire").get(pk=assessment_id)
    _ensure_owner(actor, assessment)
    if assessment.state != SuitabilityState.IN_PROGRESS:
        raise ConflictError("invalid_state", _("This assessment is already finished."))
    definition = assessment.questionnaire.definition
    missing = scoring.missing_steps(definition, assessment.answers)
    if missing:
        raise PortalError("assessment_incomplete", _("Some questions are unanswered, in step(s) %(steps)s.") % {"steps": ", ".join(str(i + 1) for i in missing)},
                          {"steps": missing})
    profile = ClientProfile.objects.filter(user=actor).first()
    if profile is None or any(getattr(profile, f) is None for f in ClientProfile.FINANCIAL_FIELDS):
        raise PortalError("profile_financials_missing", _("Enter your annual income, net worth and liquid assets in your profile first."))
    policy = current_policy()
    result = scoring.score(definition, assessment.answers, policy_numbers=policy.as_record(), language=actor.preferred_language)
    fields = result.as_fields()
    now = _now()
    since = now - timedelta(days=365)
    for module, flag, basis, detail in (("va", "va_knowledge", "va_knowledge_basis", "va_knowledge_detail"),
                                        ("derivatives", "derivative_knowledge", "derivative_knowledge_basis", "derivative_knowledge_detail")):
        if not fields[flag]:
            attempt = _training_passed(actor, module, since)
            if attempt is not None:
                fields.update({flag: True, basis: KnowledgeBasis.PORTAL_TRAINING,
                               detail: {"training_attempt": attempt.pk, "module_version": attempt.module_version, "score_pct": attempt.score_pct, "passed_at": attempt.created_at.isoformat()}})
    fields["financial_snapshot"] = {f: str(getattr(profile, f)) for f in ClientProfile.FINANCIAL_FIELDS}
    fields["policy"] = policy
    before = snapshot(assessment, ASSESSMENT_AUDITED)
    assessment.complete(at=now, valid_until=add_months(timezone.localdate(now), policy.suitability_validity_months), result=fields)
    assessment.save()
    audit_log(actor=actor, action="onboarding.assessment.completed", obj=assessment, before=before,
              after={**snapshot(assessment, ASSESSMENT_AUDITED), "risk_reasons": assessment.risk_reasons, "policy": policy.as_record()})
    for older in SuitabilityAssessment.objects.select_for_update(no_key=True).filter(client=actor, state=SuitabilityState.COMPLETED).exclude(pk=assessment.pk):
        older.supersede(at=now)
        older.save()
        audit_log(actor=actor, action="onboarding.assessment.superseded", obj=older, after={"superseded_by": assessment.pk})
    from portal.notifications import notifications_resolve

    notifications_resolve(user=actor, task_key=SUITABILITY_TASK_KEY)
    if result.warnings:
        _assessment_flag(assessment=assessment, reasons=result.warnings, actor=actor)
    if not assessment.derivative_knowledge:
        perpetuals_lapse_for(client=actor, reason=gettext_lazy("The latest assessment found no derivative knowledge."))
    return assessment


def _assessment_flag(*, assessment: SuitabilityAssessment, reasons: list, actor) -> None:
    """Mark a completed assessment for staff review (caller holds the row lock)."""
    before = snapshot(assessment, ["review_status", "flag_reasons"])
    assessment.review_status = ReviewStatus.FLAGGED
    assessment.flagged_at = assessment.flagged_at if before["review_status"] == ReviewStatus.FLAGGED else _now()
    assessment.flag_reasons = [*assessment.flag_reasons, *[str(r) for r in reasons]]
    assessment.save(update_fields=["review_status", "flagged_at", "flag_reasons"])
    audit_log(actor=actor, action="onboarding.assessment.flagged", obj=assessment, before=before, after=snapshot(assessment, ["review_status", "flag_reasons"]))


class ReviewOutcome:
    CONFIRM = "confirm"
    REASSESS = "reassess"
    choices = ((CONFIRM, gettext_lazy("Confirm the assessment stands")), (REASSESS, gettext_lazy("Require a new assessment")))


@transaction.atomic
def assessment_review(*, assessment_id: int, actor, outcome: str, note: str) -> SuitabilityAssessment:
    assessment = SuitabilityAssessment.objects.select_for_update(no_key=True).select_related("client").get(pk=assessment_id)
    _ensure_staff(actor, Perm.SUITABILITY_REVIEW, assessment.client)
    if assessment.review_status != ReviewStatus.FLAGGED or assessment.state != SuitabilityState.COMPLETED:
        raise ConflictError("invalid_state", _("Only a flagged, completed assessment can be reviewed."))
    if outcome not in (ReviewOutcome.CONFIRM, ReviewOutcome.REASSESS):
        raise PortalError("validation_error", _("Choose an outcome."), {"outcome": [_("Choose an outcome.")]})
    if not (note or "").strip():
        raise PortalError("validation_error", _("Write a note explaining the review."), {"note": [_("This field is required.")]})
    before = snapshot(assessment, ASSESSMENT_AUDITED)
    now = _now()
    assessment.review_status = ReviewStatus.CLEARED
    assessment.reviewed_at, assessment.reviewed_by, assessment.review_note = now, actor, note.strip()
    if outcome == ReviewOutcome.REASSESS:
        assessment.expire(at=now)
    assessment.save()
    audit_log(actor=actor, action=f"onboarding.assessment.reviewed_{outcome}", obj=assessment, before=before, after=snapshot(assessment, ASSESSMENT_AUDITED))
    if outcome == ReviewOutcome.REASSESS:
        notify(user=assessment.client, kind="onboarding.assessment_redo", title=gettext_lazy("Please complete your suitability assessment again"),
               body=gettext_lazy("Our staff reviewed your answers: %(note)s"), params={"note": note.strip()}, link="/onboarding/suitability/",
               task_key=SUITABILITY_TASK_KEY)
        perpetuals_lapse_for(client=assessment.client, reason=gettext_lazy("Suitability assessment must be redone."))
    return assessment


SUITABILITY_LAPSING = _Lapsing(
    model=SuitabilityAssessment, live_state=SuitabilityState.COMPLETED, until="valid_until", audited=ASSESSMENT_AUDITED,
    action="onboarding.assessment", link="/onboarding/suitability/",
    reminder_kind="onboarding.assessment_expiring", reminder_title=gettext_lazy("Your suitability assessment expires on %(date)s"),
    reminder_body=gettext_lazy("Answer the questionnaire again to keep your products available."),
    expired_kind="onboarding.assessment_expired", expired_title=gettext_lazy("Your suitability assessment has expired"),
    expired_body=gettext_lazy("Answer the questionnaire again before using VA margin financing or perpetual contracts."),
    lapse_reason=gettext_lazy("Suitability assessment expired, so derivative knowledge lapsed."),
)


def assessment_send_reminder(*, assessment_id: int, today: date | None = None) -> bool:
    return _lapsing_remind(SUITABILITY_LAPSING, assessment_id, today)


def assessment_expire(*, assessment_id: int, today: date | None = None) -> bool:
    return _lapsing_expire(SUITABILITY_LAPSING, assessment_id, today)


# --- training ------------------------------------------------------------------------


@transaction.atomic
def training_submit(*, client, module: str, answers: dict) -> TrainingAttempt:
    """Mark a quiz. A pass becomes the knowledge basis of the client's valid assessment if it had none."""
    _ensure_client(client)
    if module not in training.MODULES:
        raise PortalError("unknown_module", _("There is no such training module."))
    definition = training.MODULES[module]
    unanswered = [q.code for q in definition.quiz if answers.get(q.code) in (None, "")]
    if unanswered:
        raise PortalError("validation_error", _("Answer every question."), {code: [_("Please answer this question.")] for code in unanswered})
    policy = current_policy()
    score_pct = training.quiz_score_pct(definition, answers)
    attempt = TrainingAttempt.objects.create(
        client=client, module=module, module_version=definition.version, answers={k: str(v) for k, v in answers.items()},
        score_pct=score_pct, pass_mark_pct=policy.training_pass_mark_pct, passed=score_pct >= policy.training_pass_mark_pct,
    )
    audit_log(actor=client, action="onboarding.training.attempted", obj=attempt,
              after={"module": module, "module_version": definition.version, "score_pct": score_pct, "passed": attempt.passed, "pass_mark_pct": attempt.pass_mark_pct})
    if attempt.passed:
        flag, basis, detail = ("va_knowledge", "va_knowledge_basis", "va_knowledge_detail") if module == "va" else (
            "derivative_knowledge", "derivative_knowledge_basis", "derivative_knowledge_detail")
        assessment = SuitabilityAssessment.objects.select_for_update(no_key=True).filter(client=client, state=SuitabilityState.COMPLETED).first()
        if assessment is not None and not getattr(assessment, flag):
            before = snapshot(assessment, ASSESSMENT_AUDITED)
            setattr(assessment, flag, True)
            setattr(assessment, basis, KnowledgeBasis.PORTAL_TRAINING)
            setattr(assessment, detail, {"training_attempt": attempt.pk, "module_version": definition.version, "score_pct": score_pct,
                                         "passed_at": attempt.created_at.isoformat()})
            assessment.save(update_fields=[flag, basis, detail])
            audit_log(actor=client, action="onboarding.assessment.knowledge_from_training", obj=assessment, before=before, after=snapshot(assessment, ASSESSMENT_AUDITED))
    return attempt


# --- perpetual contracts access ----------------------------------------------------------


@transaction.atomic
def perpetuals_request(*, client) -> PerpetualsAccessRequest:
    from .selectors import product_eligibility

    _ensure_client(client)
    _lock_client(client)
    if PerpetualsAccessRequest.objects.filter(client=client, state__in=[PerpetualsState.REQUESTED, PerpetualsState.GRANTED]).exists():
        raise ConflictError("request_open", _("You already have perpetual-contracts access or a request awaiting an officer."))
    eligibility = product_eligibility(user=client, product=Product.PERPETUALS)
    if not eligibility.eligible:
        raise PortalError("not_eligible", " ".join(r.reason for r in eligibility.unmet), {"unmet": [r.code for r in eligibility.unmet]})
    request = PerpetualsAccessRequest.objects.create(client=client, eligibility_record=eligibility.as_record())
    audit_log(actor=client, action="onboarding.perpetuals.requested", obj=request, after={"state": request.state, "eligibility": request.eligibility_record})
    return request


def _lock_request(request_id: int, actor) -> PerpetualsAccessRequest:
    request = PerpetualsAccessRequest.objects.select_for_update(no_key=True).select_related("client").get(pk=request_id)
    _ensure_staff(actor, Perm.PERPETUALS_GRANT, request.client)
    if request.state != PerpetualsState.REQUESTED:
        raise ConflictError("invalid_state", _("This request has already been decided."))
    return request


@transaction.atomic
def perpetuals_grant(*, request_id: int, actor, reason: str = "") -> PerpetualsAccessRequest:
    from .selectors import product_eligibility

    request = _lock_request(request_id, actor)
    eligibility = product_eligibility(user=request.client, product=Product.PERPETUALS)
    if not eligibility.eligible:
        raise PortalError("not_eligible", _("The client no longer meets: %(unmet)s.") % {"unmet": ", ".join(str(r.label) for r in eligibility.unmet)})
    request.grant(by=actor, at=_now(), reason=(reason or "").strip(), record=eligibility.as_record())
    request.save()
    audit_log(actor=actor, action="onboarding.perpetuals.granted", obj=request, after={"state": request.state, "eligibility": request.eligibility_record, "reason": request.decision_reason})
    notify(user=request.client, kind="onboarding.perpetuals_granted", title=gettext_lazy("Perpetual-contracts access granted"),
           body=gettext_lazy("You can now trade VA perpetual contracts. Access lapses if your professional-investor status or derivative knowledge lapses."),
           link="/onboarding/perpetuals/")
    return request


@transaction.atomic
def perpetuals_refuse(*, request_id: int, actor, reason: str) -> PerpetualsAccessRequest:
    request = _lock_request(request_id, actor)
    if not (reason or "").strip():
        raise PortalError("reason_required", _("Give the reason for refusing."), {"reason": [_("This field is required.")]})
    request.refuse(by=actor, at=_now(), reason=reason.strip())
    request.save()
    audit_log(actor=actor, action="onboarding.perpetuals.refused", obj=request, after={"state": request.state, "reason": request.decision_reason})
    notify(user=request.client, kind="onboarding.perpetuals_refused", title=gettext_lazy("Perpetual-contracts access refused"),
           body=gettext_lazy("Reason: %(reason)s"), params={"reason": reason.strip()}, link="/onboarding/perpetuals/")
    return request


@transaction.atomic
def perpetuals_lapse_for(*, client, reason) -> int:
    """Lapse the client's perpetual-contracts access (and any pending request). Returns how many.

    ``reason`` should be a lazy translation: the record keeps it in the client's language and the
    notification renders it in theirs, whoever (or whichever task) caused the lapse."""
    count = 0
    with translation.override(client.preferred_language):
        client_reason = str(reason)[:200]
    for request in PerpetualsAccessRequest.objects.select_for_update(no_key=True).filter(
        client=client, state__in=[PerpetualsState.GRANTED, PerpetualsState.REQUESTED]
    ):
        request.lapse(at=_now(), reason=client_reason)
        request.save()
        audit_log(actor=SYSTEM, action="onboarding.perpetuals.lapsed", obj=request, after={"state": request.state, "reason": request.lapse_reason})
        notify(user=client, kind="onboarding.perpetuals_lapsed", title=gettext_lazy("Your perpetual-contracts access has lapsed"),
               body=gettext_lazy("%(reason)s"), params={"reason": reason}, link="/onboarding/perpetuals/")
        count += 1
    return count


# --- daily sweep ---------------------------------------------------------------------------


def due_for_reminder_or_expiry(*, today: date | None = None) -> dict[str, list[int]]:
    """Ids the daily task must process, so each can be handled by its own idempotent task."""
    today = today or _today()
    days = current_policy().reminder_days_before_expiry
    horizon = today + timedelta(days=days)
    pi = PIAttestation.objects.filter(state=PIState.VERIFIED)
    sa = SuitabilityAssessment.objects.filter(state=SuitabilityState.COMPLETED)
    return {
        "pi_remind": list(pi.filter(expires_on__lte=horizon, expires_on__gt=today, reminder_sent_at__isnull=True).values_list("pk", flat=True)),
        "pi_expire": list(pi.filter(expires_on__lte=today).values_list("pk", flat=True)),
        "sa_remind": list(sa.filter(valid_until__lte=horizon, valid_until__gt=today, reminder_sent_at__isnull=True).values_list("pk", flat=True)),
        "sa_expire": list(sa.filter(valid_until__lte=today).values_list("pk", flat=True)),
    }

