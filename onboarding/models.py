"""Onboarding records: client profile, professional-investor attestations, suitability assessments.

Nothing here is ever hard-deleted: regulated records are kept at least 7 years, and every
change goes through ``onboarding.services`` which writes the audit trail.
"""

from __future__ import annotations

import calendar
import secrets
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from . import policy as floors

MONEY = {"max_digits": 18, "decimal_places": 2}


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, clamped to the month's last day (31 Jan + 1 = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class OnboardingPolicy(models.Model):
    """The firm's onboarding numbers, versioned. The newest version is in force.

    A version is never edited once saved (the admin makes it read-only); decisions point at
    the version they used and copy its numbers into their assessment record.
    """

    version = models.PositiveIntegerField(_("version"), unique=True)
    pi_portfolio_threshold = models.DecimalField(_("PI portfolio threshold (HKD)"), **MONEY)
    pi_total_assets_threshold = models.DecimalField(_("PI total assets threshold (HKD)"), **MONEY)
    evidence_window_months = models.PositiveSmallIntegerField(_("evidence window (months)"))
    audited_accounts_window_months = models.PositiveSmallIntegerField(_("audited accounts window (months)"))
    pi_validity_months = models.PositiveSmallIntegerField(_("PI status valid for (months)"))
    suitability_validity_months = models.PositiveSmallIntegerField(_("suitability valid for (months)"))
    reminder_days_before_expiry = models.PositiveSmallIntegerField(_("reminder (days before expiry)"))
    derivative_min_transactions = models.PositiveSmallIntegerField(_("derivative transactions for knowledge"))
    va_margin_min_risk_profile = models.PositiveSmallIntegerField(_("minimum risk profile for VA margin financing"))
    va_exposure_limit_pct_growth = models.DecimalField(_("VA exposure limit, growth profile (percent of net worth)"), max_digits=5, decimal_places=2)
    va_exposure_limit_pct_aggressive = models.DecimalField(_("VA exposure limit, aggressive profile (percent of net worth)"), max_digits=5, decimal_places=2)
    training_pass_mark_pct = models.PositiveSmallIntegerField(_("training quiz pass mark (percent)"))
    # Firm service level, stated to the client when they submit: how long verification takes.
    pi_review_business_days = models.PositiveSmallIntegerField(_("PI verification turnaround (Hong Kong business days)"), default=2)
    note = models.TextField(_("reason for this version"), blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("onboarding policy")
        verbose_name_plural = _("onboarding policies")
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"Onboarding policy v{self.version}"

    def clean(self):
        errors = {}
        if self.pi_portfolio_threshold is not None and self.pi_portfolio_threshold < floors.PI_PORTFOLIO_FLOOR:
            errors["pi_portfolio_threshold"] = _("Cannot be below the statutory HK$8,000,000.")
        if self.pi_total_assets_threshold is not None and self.pi_total_assets_threshold < floors.PI_TOTAL_ASSETS_FLOOR:
            errors["pi_total_assets_threshold"] = _("Cannot be below the statutory HK$40,000,000.")
        if self.evidence_window_months and self.evidence_window_months > floors.PI_EVIDENCE_WINDOW_MONTHS_MAX:
            errors["evidence_window_months"] = _("Evidence may be at most 12 months old.")
        if self.audited_accounts_window_months and self.audited_accounts_window_months > floors.PI_AUDITED_ACCOUNTS_WINDOW_MONTHS_MAX:
            errors["audited_accounts_window_months"] = _("Audited accounts may be at most 16 months old.")
        if self.pi_validity_months and self.pi_validity_months > floors.PI_VALIDITY_MONTHS_MAX:
            errors["pi_validity_months"] = _("PI status must be reconfirmed at least every 12 months.")
        if self.suitability_validity_months and self.suitability_validity_months > floors.SUITABILITY_VALIDITY_MONTHS_MAX:
            errors["suitability_validity_months"] = _("Suitability must be redone at least every 12 months.")
        if self.derivative_min_transactions is not None and self.derivative_min_transactions < floors.DERIVATIVE_TRANSACTIONS_FLOOR:
            errors["derivative_min_transactions"] = _("At least five derivative transactions are required.")
        if self.va_margin_min_risk_profile is not None and not 1 <= self.va_margin_min_risk_profile <= 5:
            errors["va_margin_min_risk_profile"] = _("A risk profile is between 1 and 5.")
        if self.pi_review_business_days is not None and not 1 <= self.pi_review_business_days <= 20:
            errors["pi_review_business_days"] = _("The verification turnaround is between 1 and 20 business days.")
        if self.training_pass_mark_pct is not None and not 50 <= self.training_pass_mark_pct <= 100:
            errors["training_pass_mark_pct"] = _("The pass mark is between 50 and 100 percent.")
        if errors:
            raise ValidationError(errors)

    def va_exposure_limit_pct(self, risk_profile: int | None) -> Decimal:
        if risk_profile == 5:
            return self.va_exposure_limit_pct_aggressive
        if risk_profile == 4:
            return self.va_exposure_limit_pct_growth
        return Decimal("0.00")

    def as_record(self) -> dict:
        """The numbers to copy into a decision's assessment record."""
        return {
            "policy_version": self.version,
            "pi_portfolio_threshold": str(self.pi_portfolio_threshold),
            "pi_total_assets_threshold": str(self.pi_total_assets_threshold),
            "evidence_window_months": self.evidence_window_months,
            "audited_accounts_window_months": self.audited_accounts_window_months,
            "pi_validity_months": self.pi_validity_months,
            "suitability_validity_months": self.suitability_validity_months,
            "derivative_min_transactions": self.derivative_min_transactions,
            "va_margin_min_risk_profile": self.va_margin_min_risk_profile,
        }


class ClientType(models.TextChoices):
    INDIVIDUAL = "individual", _("Individual")
    CORPORATE = "corporate", _("Corporate")


class IdDocumentType(models.TextChoices):
    HKID = "hkid", _("Hong Kong identity card")
    PASSPORT = "passport", _("Passport")
    MAINLAND_ID = "mainland_id", _("Mainland resident identity card")
    BUSINESS_REGISTRATION = "br", _("Business registration certificate")
    CERTIFICATE_OF_INCORPORATION = "ci", _("Certificate of incorporation")


class EmploymentStatus(models.TextChoices):
    EMPLOYED = "employed", _("Employed")
    SELF_EMPLOYED = "self_employed", _("Self-employed")
    RETIRED = "retired", _("Retired")
    STUDENT = "student", _("Student")
    UNEMPLOYED = "unemployed", _("Not employed")
    NOT_APPLICABLE = "not_applicable", _("Not applicable (corporate client)")


def mask_identifier(value: str) -> str:
    """Show only the first character and the last two: ``A123456(7)`` → ``A•••••••7)``."""
    value = value or ""
    if len(value) <= 3:
        return "•" * len(value)
    return value[0] + "•" * (len(value) - 3) + value[-2:]


class ClientProfile(models.Model):
    """KYC basics of one client (a person or a company) and their securities margin account."""

    FINANCIAL_FIELDS = ("annual_income", "net_worth", "liquid_assets")
    REQUIRED_FIELDS = (
        "legal_name",
        "id_document_type",
        "id_document_number",
        "date_of_birth",
        "nationality",
        "residential_address",
        "phone",
        "employment_status",
        "annual_income",
        "net_worth",
        "liquid_assets",
        "source_of_wealth",
        "margin_account_number",
    )
    # What the client may edit; confirmation of the margin account is staff-only.
    EDITABLE_FIELDS = (
        "client_type",
        "legal_name",
        "other_names",
        "id_document_type",
        "id_document_number",
        "date_of_birth",
        "nationality",
        "residential_address",
        "correspondence_address",
        "phone",
        "preferred_language",
        "employment_status",
        "employer",
        "occupation",
        "annual_income",
        "net_worth",
        "liquid_assets",
        "source_of_wealth",
        "margin_account_number",
    )
    AUDITED_FIELDS = (*EDITABLE_FIELDS, "margin_account_confirmed_at", "margin_account_confirmed_by")

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="client_profile")
    client_type = models.CharField(_("client type"), max_length=20, choices=ClientType.choices, default=ClientType.INDIVIDUAL)
    legal_name = models.CharField(_("legal name"), max_length=200, blank=True)
    other_names = models.JSONField(_("other names"), default=list, blank=True, help_text=_("Chinese name, former names, trading names."))
    id_document_type = models.CharField(_("identity document type"), max_length=20, choices=IdDocumentType.choices, blank=True)
    id_document_number = models.CharField(_("identity document number"), max_length=40, blank=True)
    date_of_birth = models.DateField(_("date of birth or incorporation"), null=True, blank=True)
    nationality = models.CharField(_("nationality or place of incorporation"), max_length=100, blank=True)
    residential_address = models.TextField(_("residential or registered address"), blank=True)
    correspondence_address = models.TextField(_("correspondence address"), blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    preferred_language = models.CharField(_("preferred language"), max_length=10, choices=settings.LANGUAGES, default="en")
    employment_status = models.CharField(_("employment"), max_length=20, choices=EmploymentStatus.choices, blank=True)
    employer = models.CharField(_("employer"), max_length=200, blank=True)
    occupation = models.CharField(_("occupation or business"), max_length=200, blank=True)
    annual_income = models.DecimalField(_("annual income (HKD)"), null=True, blank=True, **MONEY)
    net_worth = models.DecimalField(_("net worth (HKD)"), null=True, blank=True, **MONEY)
    liquid_assets = models.DecimalField(_("liquid assets (HKD)"), null=True, blank=True, **MONEY)
    source_of_wealth = models.TextField(_("source of wealth"), blank=True)
    margin_account_number = models.CharField(_("securities margin account number"), max_length=40, blank=True)
    margin_account_confirmed_at = models.DateTimeField(_("margin account confirmed at"), null=True, blank=True)
    margin_account_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("client profile")
        verbose_name_plural = _("client profiles")
        constraints = [
            # A securities margin account is one client's: once an officer has confirmed it for one
            # profile it cannot be confirmed for another (back-office positions are matched by it).
            models.UniqueConstraint(
                fields=["margin_account_number"], condition=models.Q(margin_account_confirmed_at__isnull=False),
                name="onboarding_margin_account_confirmed_once",
            ),
        ]
        indexes = [
            # The onboarding queue's margin accounts to confirm, oldest first: read in order from the few
            # waiting, not by sorting every client's profile.
            models.Index(fields=["updated_at", "id"], condition=models.Q(margin_account_confirmed_at__isnull=True),
                         name="onboarding_account_to_confirm"),
        ]

    def __str__(self) -> str:
        return self.legal_name or self.user.email

    @property
    def masked_id_number(self) -> str:
        return mask_identifier(self.id_document_number)

    @property
    def missing_fields(self) -> list[str]:
        missing = [name for name in self.REQUIRED_FIELDS if getattr(self, name) in (None, "")]
        if self.client_type == ClientType.INDIVIDUAL and self.employment_status in ("employed", "self_employed") and not self.occupation:
            missing.append("occupation")
        return missing

    @property
    def is_complete(self) -> bool:
        return not self.missing_fields

    @property
    def margin_account_confirmed(self) -> bool:
        return self.margin_account_confirmed_at is not None


class PIState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SUBMITTED = "submitted", _("Submitted, awaiting verification")
    RETURNED = "returned", _("Returned with questions")
    VERIFIED = "verified", _("Verified")
    REJECTED = "rejected", _("Rejected")
    EXPIRED = "expired", _("Expired")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class PICategory(models.TextChoices):
    INDIVIDUAL = "individual", _("Individual")
    CORPORATION = "corporation", _("Corporation")
    PARTNERSHIP = "partnership", _("Partnership")
    TRUST_CORPORATION = "trust_corporation", _("Trust corporation")


class PIBasis(models.TextChoices):
    PORTFOLIO = "portfolio", _("Portfolio")
    TOTAL_ASSETS = "total_assets", _("Total assets")


# Which bases each category may use (Cap. 571D).
PI_CATEGORY_BASES = {
    PICategory.INDIVIDUAL: {PIBasis.PORTFOLIO},
    PICategory.CORPORATION: {PIBasis.PORTFOLIO, PIBasis.TOTAL_ASSETS},
    PICategory.PARTNERSHIP: {PIBasis.PORTFOLIO, PIBasis.TOTAL_ASSETS},
    PICategory.TRUST_CORPORATION: {PIBasis.TOTAL_ASSETS},
}


class PIAttestation(ConcurrentTransitionMixin, models.Model):
    """A client's claim to be treated as a professional investor, with evidence and the staff decision."""

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="pi_attestations")
    state = FSMField(_("status"), default=PIState.DRAFT, choices=PIState.choices, protected=True)
    category = models.CharField(_("category"), max_length=20, choices=PICategory.choices, default=PICategory.INDIVIDUAL)
    basis = models.CharField(_("basis"), max_length=20, choices=PIBasis.choices, default=PIBasis.PORTFOLIO)
    declared_amount = models.DecimalField(_("declared amount (HKD)"), null=True, blank=True, **MONEY)
    relevant_date = models.DateField(_("relevant date"), null=True, blank=True)
    includes_joint_with_associate = models.BooleanField(
        _("includes joint accounts with my spouse or child"), default=False
    )
    includes_share_of_joint_with_others = models.BooleanField(
        _("includes my share of joint accounts with other people"), default=False
    )
    includes_wholly_owned_corporation = models.BooleanField(
        _("includes the portfolio of a corporation I wholly own"), default=False
    )
    understood_pi_treatment = models.BooleanField(
        _("I understand what being treated as a professional investor means and that I can withdraw it"), default=False
    )
    policy = models.ForeignKey(OnboardingPolicy, on_delete=models.PROTECT, related_name="+")
    # How the client was assessed: the numbers used, each check and its outcome, the staff checklist.
    assessment_record = models.JSONField(default=dict, blank=True)
    checklist = models.JSONField(default=dict, blank=True)
    decision_reason = models.TextField(_("reasons"), blank=True)
    return_questions = models.TextField(_("questions for the client"), blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    verified_at = models.DateTimeField(null=True, blank=True)
    expires_on = models.DateField(null=True, blank=True, db_index=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("professional-investor attestation")
        verbose_name_plural = _("professional-investor attestations")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "submitted_at"])]

    def __str__(self) -> str:
        return f"PI attestation #{self.pk} ({self.state})"

    @property
    def editable(self) -> bool:
        return self.state in (PIState.DRAFT, PIState.RETURNED)

    @transition(field=state, source=[PIState.DRAFT, PIState.RETURNED], target=PIState.SUBMITTED)
    def submit(self, *, at, record: dict):
        self.submitted_at = at
        self.assessment_record = record

    @transition(field=state, source=PIState.SUBMITTED, target=PIState.VERIFIED)
    def verify(self, *, by, at, checklist: dict, reason: str, expires_on: date):
        self.decided_by, self.decided_at, self.verified_at = by, at, at
        self.checklist, self.decision_reason, self.expires_on = checklist, reason, expires_on

    @transition(field=state, source=PIState.SUBMITTED, target=PIState.REJECTED)
    def reject(self, *, by, at, checklist: dict, reason: str):
        self.decided_by, self.decided_at = by, at
        self.checklist, self.decision_reason = checklist, reason

    @transition(field=state, source=PIState.SUBMITTED, target=PIState.RETURNED)
    def return_to_client(self, *, by, at, checklist: dict, questions: str):
        self.decided_by, self.decided_at = by, at
        self.checklist, self.return_questions = checklist, questions

    @transition(field=state, source=PIState.VERIFIED, target=PIState.EXPIRED)
    def expire(self, *, at):
        self.ended_at = at

    @transition(field=state, source=PIState.VERIFIED, target=PIState.WITHDRAWN)
    def withdraw(self, *, at):
        self.ended_at = at


class EvidenceKind(models.TextChoices):
    ACCOUNT_STATEMENT = "statement", _("Bank or broker statement")
    CUSTODIAN_STATEMENT = "custodian_statement", _("Custodian statement or certificate")
    AUDITOR_CERTIFICATE = "auditor_certificate", _("Auditor's or CPA's certificate")
    AUDITED_ACCOUNTS = "audited_accounts", _("Audited financial statements")
    PUBLIC_FILING = "public_filing", _("Public filing")


def evidence_upload_to(instance, filename: str) -> str:
    # The client's file name is never used on disk: a random name, the extension
    # chosen from the sniffed content type.
    return f"pi-evidence/{secrets.token_hex(20)}.{floors.EVIDENCE_CONTENT_TYPES[instance.content_type]}"


class PIEvidence(models.Model):
    attestation = models.ForeignKey(PIAttestation, on_delete=models.PROTECT, related_name="evidence")
    kind = models.CharField(_("document"), max_length=30, choices=EvidenceKind.choices)
    issued_on = models.DateField(_("issue date"), help_text=_("The date the statement, certificate or accounts were issued or made up to."))
    file = models.FileField(upload_to=evidence_upload_to, max_length=200)
    original_name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=50)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("PI evidence")
        verbose_name_plural = _("PI evidence")
        ordering = ["uploaded_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.issued_on})"

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


class Questionnaire(models.Model):
    """One version of the suitability questionnaire, kept as data.

    ``definition`` holds the steps, questions, options and scoring rules in both languages.
    Once published it never changes: a new version is a new row, and assessments keep
    pointing at the version they answered.
    """

    version = models.PositiveIntegerField(_("version"), unique=True)
    title = models.CharField(_("title"), max_length=200)
    definition = models.JSONField(_("definition"))
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("suitability questionnaire")
        verbose_name_plural = _("suitability questionnaires")
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"{self.title} v{self.version}"

    @property
    def steps(self) -> list[dict]:
        return self.definition["steps"]


class SuitabilityState(models.TextChoices):
    IN_PROGRESS = "in_progress", _("In progress")
    COMPLETED = "completed", _("Completed")
    EXPIRED = "expired", _("Expired")
    SUPERSEDED = "superseded", _("Superseded")


class KnowledgeBasis(models.TextChoices):
    TRAINING = "training", _("Training or courses")
    WORK_EXPERIENCE = "work_experience", _("Work experience")
    TRADING_EXPERIENCE = "trading_experience", _("Trading experience")
    PORTAL_TRAINING = "portal_training", _("The portal's training module and quiz")


class ReviewStatus(models.TextChoices):
    NONE = "", _("Not flagged")
    FLAGGED = "flagged", _("Flagged for review")
    CLEARED = "cleared", _("Reviewed and confirmed")


RISK_PROFILE_LABELS = {
    1: _("Conservative"),
    2: _("Moderately conservative"),
    3: _("Balanced"),
    4: _("Growth"),
    5: _("Aggressive"),
}


class SuitabilityAssessment(ConcurrentTransitionMixin, models.Model):
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="suitability_assessments")
    questionnaire = models.ForeignKey(Questionnaire, on_delete=models.PROTECT, related_name="assessments")
    policy = models.ForeignKey(OnboardingPolicy, on_delete=models.PROTECT, related_name="+")
    state = FSMField(_("status"), default=SuitabilityState.IN_PROGRESS, choices=SuitabilityState.choices, protected=True)
    current_step = models.PositiveSmallIntegerField(default=0)
    answers = models.JSONField(default=dict, blank=True)
    risk_score = models.IntegerField(null=True, blank=True)
    risk_profile = models.PositiveSmallIntegerField(null=True, blank=True)
    risk_reasons = models.JSONField(default=list, blank=True)
    va_knowledge = models.BooleanField(default=False)
    va_knowledge_basis = models.CharField(max_length=30, choices=KnowledgeBasis.choices, blank=True)
    va_knowledge_detail = models.JSONField(default=dict, blank=True)
    derivative_knowledge = models.BooleanField(default=False)
    derivative_knowledge_basis = models.CharField(max_length=30, choices=KnowledgeBasis.choices, blank=True)
    derivative_knowledge_detail = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    # The client's financial figures when they answered, to tell a later material change.
    financial_snapshot = models.JSONField(default=dict, blank=True)
    review_status = models.CharField(max_length=10, choices=ReviewStatus.choices, blank=True, default="")
    flagged_at = models.DateTimeField(null=True, blank=True)
    flag_reasons = models.JSONField(default=list, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    review_note = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateField(null=True, blank=True, db_index=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("suitability assessment")
        verbose_name_plural = _("suitability assessments")
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["review_status", "flagged_at"])]

    def __str__(self) -> str:
        return f"Suitability #{self.pk} ({self.state})"

    @property
    def risk_profile_label(self) -> str | None:
        return str(RISK_PROFILE_LABELS[self.risk_profile]) if self.risk_profile else None

    @transition(field=state, source=SuitabilityState.IN_PROGRESS, target=SuitabilityState.COMPLETED)
    def complete(self, *, at, valid_until: date, result: dict):
        self.completed_at, self.valid_until = at, valid_until
        for name, value in result.items():
            setattr(self, name, value)

    @transition(field=state, source=SuitabilityState.COMPLETED, target=SuitabilityState.EXPIRED)
    def expire(self, *, at):
        self.ended_at = at

    @transition(field=state, source=[SuitabilityState.COMPLETED, SuitabilityState.IN_PROGRESS], target=SuitabilityState.SUPERSEDED)
    def supersede(self, *, at):
        self.ended_at = at


class TrainingAttempt(models.Model):
    """One go at a portal training module's quiz; a pass is recorded as the knowledge basis."""

    class Module(models.TextChoices):
        VA = "va", _("Virtual assets: nature and risks")
        DERIVATIVES = "derivatives", _("Derivatives and perpetual contracts")

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="training_attempts")
    module = models.CharField(max_length=20, choices=Module.choices)
    module_version = models.PositiveSmallIntegerField(default=1)
    answers = models.JSONField(default=dict)
    score_pct = models.PositiveSmallIntegerField()
    pass_mark_pct = models.PositiveSmallIntegerField()
    passed = models.BooleanField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.module} {self.score_pct}%"


class PerpetualsState(models.TextChoices):
    REQUESTED = "requested", _("Requested, awaiting an officer")
    GRANTED = "granted", _("Granted")
    REFUSED = "refused", _("Refused")
    LAPSED = "lapsed", _("Lapsed")


class PerpetualsAccessRequest(ConcurrentTransitionMixin, models.Model):
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="perpetuals_requests")
    state = FSMField(_("status"), default=PerpetualsState.REQUESTED, choices=PerpetualsState.choices, protected=True)
    # What the client met when they asked, and what the officer saw when deciding.
    eligibility_record = models.JSONField(default=dict, blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decision_reason = models.TextField(blank=True)
    lapsed_at = models.DateTimeField(null=True, blank=True)
    lapse_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = _("perpetual-contracts access request")
        verbose_name_plural = _("perpetual-contracts access requests")
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"Perpetuals access #{self.pk} ({self.state})"

    @transition(field=state, source=PerpetualsState.REQUESTED, target=PerpetualsState.GRANTED)
    def grant(self, *, by, at, reason: str, record: dict):
        self.decided_by, self.decided_at, self.decision_reason, self.eligibility_record = by, at, reason, record

    @transition(field=state, source=PerpetualsState.REQUESTED, target=PerpetualsState.REFUSED)
    def refuse(self, *, by, at, reason: str):
        self.decided_by, self.decided_at, self.decision_reason = by, at, reason

    @transition(field=state, source=[PerpetualsState.GRANTED, PerpetualsState.REQUESTED], target=PerpetualsState.LAPSED)
    def lapse(self, *, at, reason: str):
        self.lapsed_at, self.lapse_reason = at, reason
