"""Margin-facility lending: collateral policy, prices, applications, the credit review, facilities.

Shape chosen for the risk engine (issue 6), which revalues the whole book set-based:

* ``CurrentPrice`` holds one row per virtual asset (BTC, ETH), the price the book is valued at;
  ``Price`` keeps every observation (source, time).
* ``CollateralPosition`` holds one row per facility and collateral line: a quantity for BTC/ETH
  (valued at the current price) or a market value for a securities line, and the haircut
  applied. Lending value of the book is therefore one grouped SELECT:
  ``SUM(COALESCE(quantity * price, market_value) * (1 - haircut)) GROUP BY facility``.
* ``Facility`` carries the drawn balance and the last stored valuation and band, so a
  revaluation only writes the rows whose band changes.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

ZERO = Decimal("0")
HKD = {"max_digits": 18, "decimal_places": 2}
RATIO = {"max_digits": 7, "decimal_places": 4}  # 0.6000 = 60%

# Prices in HKD. HKEX quotes a security to HK$0.001 (its smallest spread, for prices up to HK$0.25), so a price
# is kept to three places; BTC and ETH are quoted to the cent.
PRICE_QUANTUM = Decimal("0.001")
VA_PRICE_QUANTUM = Decimal("0.01")


def price_quantum(asset: str) -> Decimal:
    """The smallest step a price of ``asset`` is quoted in (BTC, ETH: the cent; a security: HK$0.001)."""
    return VA_PRICE_QUANTUM if asset in ("BTC", "ETH") else PRICE_QUANTUM


class PriceField(models.DecimalField):
    """A price to three places, read back to the cent when its third place is zero: HK$760,000.00 and HK$44.85 read
    as they always have, a sub-dollar security keeps its HK$0.305."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", 20)
        kwargs.setdefault("decimal_places", 3)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        value = Decimal(value)
        cents = value.quantize(VA_PRICE_QUANTUM)
        return cents if cents == value else value
QTY = {"max_digits": 24, "decimal_places": 8}

# Regulatory floor (SFC circular 26EC5, 11 Feb 2026): a haircut of at least 60% on VA collateral.
VA_HAIRCUT_FLOOR = Decimal("0.60")


class Asset(models.TextChoices):
    BTC = "BTC", _("Bitcoin")
    ETH = "ETH", _("Ether")


class CollateralKind(models.TextChoices):
    SECURITIES = "securities", _("Securities in the margin account")
    VIRTUAL_ASSET = "virtual_asset", _("Virtual asset")


# --- Collateral policy ----------------------------------------------------------


class PolicyStatus(models.TextChoices):
    PROPOSED = "proposed", _("Proposed")
    SCHEDULED = "scheduled", _("Approved, takes effect on its date")
    APPROVED = "approved", _("In force")
    REJECTED = "rejected", _("Rejected")
    SUPERSEDED = "superseded", _("Superseded")


class MakerCheckerPolicy(ConcurrentTransitionMixin, models.Model):
    """A versioned policy that one member of staff proposes and a different credit manager approves.

    Approving supersedes the version in force; approved versions are never edited, so every
    decision can point at the exact numbers it used. Shared by the collateral and risk policies.
    """

    version = models.PositiveIntegerField(unique=True)
    status = FSMField(default=PolicyStatus.PROPOSED, choices=PolicyStatus.choices, protected=True)
    reason = models.TextField(_("reason for the change"))
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    # The Hong Kong day from which an approved version is in force; empty: from its approval. An approval
    # before that day schedules the version; the take-effect job puts it in force on the day.
    effective_from = models.DateField(_("takes effect on"), null=True, blank=True)

    class Meta:
        abstract = True

    @transition(field=status, source=PolicyStatus.PROPOSED, target=PolicyStatus.APPROVED)
    def approve(self, *, by, at, note=""):
        self.decided_by, self.decided_at, self.decision_note = by, at, note

    @transition(field=status, source=PolicyStatus.PROPOSED, target=PolicyStatus.SCHEDULED)
    def schedule(self, *, by, at, note=""):
        self.decided_by, self.decided_at, self.decision_note = by, at, note

    @transition(field=status, source=PolicyStatus.SCHEDULED, target=PolicyStatus.APPROVED)
    def take_effect(self):
        pass

    @transition(field=status, source=PolicyStatus.PROPOSED, target=PolicyStatus.REJECTED)
    def reject(self, *, by, at, note=""):
        self.decided_by, self.decided_at, self.decision_note = by, at, note

    @transition(field=status, source=PolicyStatus.APPROVED, target=PolicyStatus.SUPERSEDED)
    def supersede(self):
        pass


# Early warnings before a margin call unless a policy says otherwise (80% and 90% utilisation).
DEFAULT_WARNING_LEVELS = ("0.8000", "0.9000")
MAX_WARNING_LEVELS = 4


def default_warning_levels() -> list[str]:
    return list(DEFAULT_WARNING_LEVELS)


class CollateralPolicy(MakerCheckerPolicy):
    """One version of the firm's collateral and credit policy."""

    btc_haircut = models.DecimalField(_("bitcoin haircut"), **RATIO)
    eth_haircut = models.DecimalField(_("ether haircut"), **RATIO)
    # {"A": "0.30", ...}: securities haircut class → haircut.
    securities_haircuts = models.JSONField(_("securities haircut classes"))
    va_max_share = models.DecimalField(
        _("largest share of lending value from virtual assets"), **RATIO,
        help_text=_("Securities must be the main support: VA lending value above this share is not counted."),
    )
    price_max_age_minutes = models.PositiveIntegerField(_("price freshness limit (minutes)"))
    officer_authority_default = models.DecimalField(_("default officer authority (HKD)"), **HKD)
    watch_level = models.DecimalField(_("watch level (utilisation)"), **RATIO)
    # ["0.8000", "0.9000"]: utilisation levels below the margin-call level at which the client is warned, once per crossing.
    warning_levels = models.JSONField(_("early-warning levels (utilisation)"), default=default_warning_levels, blank=True,
                                      help_text=_("Levels below the margin-call level at which the client is warned, e.g. 0.80 and 0.90."))
    margin_call_level = models.DecimalField(_("margin-call level (utilisation)"), **RATIO)
    close_out_level = models.DecimalField(_("close-out level (utilisation)"), **RATIO)
    cure_days = models.PositiveSmallIntegerField(_("margin-call cure period (HK business days)"))
    client_exposure_limit = models.DecimalField(_("largest total limit per client (HKD)"), **HKD)
    firm_exposure_limit = models.DecimalField(_("largest total of facility limits, firm-wide (HKD)"), **HKD)
    client_concentration_max = models.DecimalField(
        _("largest share of the firm's book for one client"), **RATIO
    )
    class Meta:
        ordering = ["-version"]
        verbose_name = _("collateral policy")
        verbose_name_plural = _("collateral policies")
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="approved"), name="one_policy_in_force"),
            models.CheckConstraint(
                condition=Q(btc_haircut__gte=VA_HAIRCUT_FLOOR, eth_haircut__gte=VA_HAIRCUT_FLOOR),
                name="va_haircut_at_least_60pct",
            ),
        ]

    def __str__(self) -> str:
        return f"Policy v{self.version} ({self.status})"

    NUMBERS = (
        "btc_haircut", "eth_haircut", "securities_haircuts", "va_max_share", "price_max_age_minutes",
        "officer_authority_default", "watch_level", "warning_levels", "margin_call_level", "close_out_level", "cure_days",
        "client_exposure_limit", "firm_exposure_limit", "client_concentration_max",
    )

    def warnings(self) -> list[Decimal]:
        """The early-warning levels, ascending."""
        return sorted(Decimal(str(v)) for v in (self.warning_levels or []))

    def va_haircut(self, asset: str) -> Decimal:
        return self.btc_haircut if asset == Asset.BTC else self.eth_haircut

    def securities_haircut(self, haircut_class: str) -> Decimal | None:
        value = self.securities_haircuts.get(haircut_class)
        return Decimal(str(value)) if value is not None else None


# --- Prices and the watch list ---------------------------------------------------


class Price(models.Model):
    """One observed price of a virtual asset in HKD: the history."""

    asset = models.CharField(max_length=8, choices=Asset.choices)
    price_hkd = PriceField(validators=[MinValueValidator(PRICE_QUANTUM)])
    source = models.CharField(max_length=60)
    as_of = models.DateTimeField()
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-as_of", "-id"]
        indexes = [models.Index(fields=["asset", "-as_of"])]

    def __str__(self) -> str:
        return f"{self.asset} HK${self.price_hkd} ({self.source}, {timezone.localtime(self.as_of):%Y-%m-%d %H:%M} HKT)"


class CurrentPrice(models.Model):
    """The price each virtual asset is valued at now: one row per asset (the revaluation joins it)."""

    asset = models.CharField(max_length=8, choices=Asset.choices, primary_key=True)
    price_hkd = PriceField()
    source = models.CharField(max_length=60)
    as_of = models.DateTimeField()
    price = models.ForeignKey(Price, on_delete=models.PROTECT, related_name="+")

    def __str__(self) -> str:
        return f"{self.asset} HK${self.price_hkd}"


class WatchListCategory(models.TextChoices):
    """The lists a watch-list name comes from; each page and the credit review's reasons name them in words."""

    SANCTIONS = "sanctions", _("sanctions list")
    PEP = "pep", _("politically exposed person")
    INTERNAL = "internal", _("internal list")


def watchlist_category_label(code: str) -> str:
    """A category in the reader's language (a value stored before the categories were closed: as it is)."""
    return str(dict(WatchListCategory.choices).get(code, code))


class WatchListEntry(models.Model):
    """A name to screen applicants against (sanctions, PEP, internal). Deactivated, never deleted."""

    name = models.CharField(_("name"), max_length=200)
    aliases = models.TextField(_("other names (one per line)"), blank=True)
    category = models.CharField(_("category"), max_length=40, choices=WatchListCategory.choices, default=WatchListCategory.SANCTIONS)
    note = models.TextField(_("note"), blank=True)
    active = models.BooleanField(default=True)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = _("watch list entries")

    def __str__(self) -> str:
        return self.name

    def all_names(self) -> list[str]:
        return [self.name, *[a.strip() for a in self.aliases.splitlines() if a.strip()]]


# --- Applications ------------------------------------------------------------------


class AppState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SUBMITTED = "submitted", _("Submitted")
    IN_REVIEW = "in_review", _("Credit review running")
    AWAITING_DECISION = "awaiting_decision", _("Awaiting decision")
    AWAITING_SECOND_APPROVAL = "awaiting_second_approval", _("Awaiting second approval")
    RETURNED = "returned_to_client", _("Returned to client")
    APPROVED = "approved", _("Approved — awaiting your acceptance")
    DECLINED = "declined", _("Declined")
    ACTIVE = "active", _("Accepted — facility opened")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class ApplicationStateCount(models.Model):
    """How many applications are in each state, kept by the database itself: triggers on the applications
    table (migration 0010) add and subtract as rows are inserted, change state or are deleted, whatever writes
    them (a transition, a bulk insert, a cascade). The credit queue shows these counts without counting the
    book (every facility keeps its accepted application for good)."""

    state = models.CharField(max_length=50, primary_key=True)
    n = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.state}: {self.n}"


# The states in staff words (AppState's labels are the client's: "Approved — awaiting your acceptance").
STAFF_STATE_LABELS = {
    AppState.DRAFT: _("a draft"),
    AppState.SUBMITTED: _("submitted, waiting for the credit review"),
    AppState.IN_REVIEW: _("in the credit review"),
    AppState.AWAITING_DECISION: _("awaiting a decision"),
    AppState.AWAITING_SECOND_APPROVAL: _("awaiting a credit manager's second approval"),
    AppState.RETURNED: _("returned to the client with questions"),
    AppState.APPROVED: _("approved, waiting for the client to accept the facility letter"),
    AppState.DECLINED: _("declined"),
    AppState.ACTIVE: _("accepted by the client (the facility is open)"),
    AppState.WITHDRAWN: _("withdrawn by the client"),
}


# The states as the credit queue names them (staff words, short enough for a filter and a column).
STAFF_QUEUE_LABELS = {
    AppState.DRAFT: _("Draft"),
    AppState.SUBMITTED: _("Waiting for the credit review"),
    AppState.IN_REVIEW: _("Credit review running"),
    AppState.AWAITING_DECISION: _("Awaiting decision"),
    AppState.AWAITING_SECOND_APPROVAL: _("Awaiting second approval"),
    AppState.RETURNED: _("Returned to the client"),
    AppState.APPROVED: _("Approved, awaiting the client's acceptance"),
    AppState.DECLINED: _("Declined"),
    AppState.ACTIVE: _("Facility opened"),
    AppState.WITHDRAWN: _("Withdrawn by the client"),
}


class Recommendation(models.TextChoices):
    APPROVE = "approve", _("Approve")
    REFER = "refer", _("Refer to officer")
    DECLINE = "decline", _("Decline")


class DeclineReason(models.TextChoices):
    NOT_ELIGIBLE = "not_eligible", _("Eligibility not met")
    UNSUITABLE = "unsuitable", _("Not suitable for the client")
    INSUFFICIENT_COLLATERAL = "insufficient_collateral", _("Insufficient collateral")
    CREDIT_SCORE = "credit_score", _("Credit assessment below policy")
    EXPOSURE_LIMIT = "exposure_limit", _("Exposure or concentration limit")
    SCREENING = "screening", _("Name-screening result")
    INCOMPLETE = "incomplete", _("Information incomplete")
    OTHER = "other", _("Other")


# What a declined client reads: a vetted, translated text per internal reason. Several internal reasons
# share one text, and the screening reason reads like any other refusal: a client is never told they
# matched a watch list (tipping-off), nor shown the officer's internal note.
CLIENT_DECLINE_TEXTS = {
    DeclineReason.NOT_ELIGIBLE: ("eligibility", _("You do not meet the eligibility requirements for this facility at present.")),
    DeclineReason.UNSUITABLE: ("suitability", _("On your suitability assessment, this facility is not suitable for you at present.")),
    DeclineReason.INSUFFICIENT_COLLATERAL: ("collateral", _("The collateral offered does not support the facility requested.")),
    DeclineReason.CREDIT_SCORE: ("credit", _("The application does not meet our credit criteria.")),
    DeclineReason.EXPOSURE_LIMIT: ("limits", _("The facility requested is above the limits we can offer you.")),
    DeclineReason.INCOMPLETE: ("incomplete", _("The information provided was not complete enough for us to decide.")),
    DeclineReason.SCREENING: ("general", _("We are unable to offer you this facility at present.")),
    DeclineReason.OTHER: ("general", _("We are unable to offer you this facility at present.")),
}


def client_decline_reasons(codes) -> list[dict]:
    """The client-facing reasons for internal decline codes, each text once, in a stable order."""
    seen, result = set(), []
    for code in codes or []:
        client_code, text = CLIENT_DECLINE_TEXTS.get(code, CLIENT_DECLINE_TEXTS[DeclineReason.OTHER])
        if client_code not in seen:
            seen.add(client_code)
            result.append({"code": client_code, "text": str(text)})
    return result


class ScreeningStatus(models.TextChoices):
    NONE = "", _("No match")
    PENDING = "pending", _("Possible match: awaiting compliance")
    CLEARED = "cleared", _("Cleared by compliance (not the listed person)")
    CONFIRMED = "confirmed", _("Match confirmed by compliance")


class FacilityApplication(ConcurrentTransitionMixin, models.Model):
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="facility_applications")
    state = FSMField(default=AppState.DRAFT, choices=AppState.choices, protected=True, db_index=True)
    requested_limit = models.DecimalField(_("requested limit (HKD)"), **HKD, validators=[MinValueValidator(Decimal("1"))])
    purpose = models.TextField(_("purpose"))
    terms_confirmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Each (re)submission starts a new review run; ReviewStep rows are keyed by it.
    review_run = models.PositiveIntegerField(default=0)
    review_completed_at = models.DateTimeField(null=True, blank=True)
    # The policy version the review valued the collateral with.
    policy = models.ForeignKey(CollateralPolicy, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # Result of the review.
    market_value = models.DecimalField(**HKD, null=True, blank=True)
    lending_value = models.DecimalField(**HKD, null=True, blank=True)
    va_share = models.DecimalField(**RATIO, null=True, blank=True)
    score = models.IntegerField(null=True, blank=True)
    recommendation = models.CharField(max_length=10, choices=Recommendation.choices, blank=True)
    recommended_limit = models.DecimalField(**HKD, null=True, blank=True)
    recommendation_reasons = models.JSONField(default=list, blank=True)
    # The decision.
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_policy = models.ForeignKey(CollateralPolicy, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_limit = models.DecimalField(**HKD, null=True, blank=True)
    conditions = models.TextField(blank=True)
    second_approval_reasons = models.JSONField(default=list, blank=True)
    second_approver = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    second_decided_at = models.DateTimeField(null=True, blank=True)
    decline_reasons = models.JSONField(default=list, blank=True)
    decision_note = models.TextField(blank=True)
    questions = models.TextField(blank=True)
    client_response = models.TextField(blank=True)
    # The facility letter shown for acceptance: kept exactly, with its hash.
    letter_text = models.TextField(blank=True)
    letter_sha256 = models.CharField(max_length=64, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    # A name-screening match blocks approval until compliance clears (false positive) or confirms it.
    screening_status = models.CharField(max_length=10, choices=ScreeningStatus.choices, blank=True, default="", db_index=True)
    screening_decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    screening_decided_at = models.DateTimeField(null=True, blank=True)
    screening_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["state", "submitted_at"]), models.Index(fields=["client", "state"]),
            # The credit queue oldest first: read in order among the applications still in the queue, not past
            # every accepted one (each facility keeps its application for good).
            models.Index(fields=["submitted_at", "id"], name="lending_queue_by_age", condition=Q(state__in=[
                "submitted", "in_review", "awaiting_decision", "awaiting_second_approval", "returned_to_client", "approved"])),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        return f"APP-{self.pk:06d}" if self.pk else "APP-new"

    # Transitions: pure; services lock the row, call one, save and audit.
    @transition(field=state, source=[AppState.DRAFT, AppState.RETURNED], target=AppState.SUBMITTED)
    def submit(self, *, at):
        self.submitted_at = at
        self.review_run += 1
        self.review_completed_at = None
        self.recommendation = ""
        self.screening_status, self.screening_decided_by, self.screening_decided_at, self.screening_note = "", None, None, ""

    @transition(field=state, source=AppState.SUBMITTED, target=AppState.IN_REVIEW)
    def start_review(self):
        pass

    @transition(field=state, source=AppState.IN_REVIEW, target=AppState.AWAITING_DECISION)
    def complete_review(self, *, at):
        self.review_completed_at = at

    @transition(field=state, source=AppState.AWAITING_DECISION, target=AppState.APPROVED)
    def approve(self):
        pass

    @transition(field=state, source=AppState.AWAITING_DECISION, target=AppState.AWAITING_SECOND_APPROVAL)
    def refer_for_second_approval(self):
        pass

    @transition(field=state, source=AppState.AWAITING_SECOND_APPROVAL, target=AppState.APPROVED)
    def second_approve(self):
        pass

    @transition(field=state, source=[AppState.AWAITING_DECISION, AppState.AWAITING_SECOND_APPROVAL], target=AppState.DECLINED)
    def decline(self):
        pass

    @transition(field=state, source=AppState.AWAITING_DECISION, target=AppState.RETURNED)
    def return_to_client(self):
        pass

    @transition(field=state, source=AppState.APPROVED, target=AppState.ACTIVE)
    def accept(self):
        pass

    @transition(field=state, source=[AppState.DRAFT, AppState.SUBMITTED, AppState.RETURNED], target=AppState.WITHDRAWN)
    def withdraw(self, *, at):
        self.withdrawn_at = at


class CollateralLine(models.Model):
    """Collateral the client offers: a securities holding or a BTC/ETH quantity."""

    application = models.ForeignKey(FacilityApplication, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(max_length=20, choices=CollateralKind.choices)
    # The holding offered (a security in the margin account, or BTC/ETH in custody): the client
    # chooses a quantity of what the back office reports; price and haircut come from the book.
    instrument = models.ForeignKey("collateral.Instrument", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    asset = models.CharField(max_length=8, choices=Asset.choices, blank=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    haircut_class = models.CharField(_("haircut class"), max_length=8, blank=True)
    market_value = models.DecimalField(_("market value (HKD)"), **HKD, null=True, blank=True)
    quantity = models.DecimalField(_("quantity"), **QTY, null=True, blank=True)
    custody_reference = models.CharField(_("custody reference"), max_length=100, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.description or self.asset


class StepCode(models.TextChoices):
    ELIGIBILITY = "eligibility", _("Eligibility")
    SUITABILITY = "suitability", _("Suitability and knowledge")
    DISCLOSURES = "disclosures", _("Risk disclosures current")
    VALUATION = "valuation", _("Collateral valuation")
    SCORECARD = "scorecard", _("Credit scorecard")
    EXPOSURE = "exposure", _("Exposure and concentration limits")
    SCREENING = "screening", _("Name screening")


STEP_ORDER = [
    StepCode.ELIGIBILITY, StepCode.SUITABILITY, StepCode.DISCLOSURES, StepCode.VALUATION,
    StepCode.SCORECARD, StepCode.EXPOSURE, StepCode.SCREENING,
]


class StepStatus(models.TextChoices):
    PENDING = "pending", _("Waiting")
    RUNNING = "running", _("Running")
    RETRYING = "retrying", _("Retrying after a fault")
    DONE = "done", _("Done")


class StepOutcome(models.TextChoices):
    PASS = "pass", _("Passed")
    REFER = "refer", _("Refer")
    FAIL = "fail", pgettext_lazy("review step", "Failed")


class ReviewStep(models.Model):
    """One step of one credit-review run: what it used, what it found, how often it ran."""

    application = models.ForeignKey(FacilityApplication, on_delete=models.CASCADE, related_name="steps")
    run = models.PositiveIntegerField()
    code = models.CharField(max_length=20, choices=StepCode.choices)
    position = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.PENDING)
    outcome = models.CharField(max_length=8, choices=StepOutcome.choices, blank=True)
    reasons = models.JSONField(default=list, blank=True)  # the English sentences, as the step gave them
    # Beside each sentence its code and parameters ({} for one without), so each reader gets it in their language.
    reason_codes = models.JSONField(default=list, blank=True)
    inputs = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["application", "run", "position"]
        constraints = [models.UniqueConstraint(fields=["application", "run", "code"], name="one_step_row_per_run")]

    def __str__(self) -> str:
        return f"{self.application_id}#{self.run} {self.code} {self.status}"


# --- Facilities ----------------------------------------------------------------------


class FacilityState(models.TextChoices):
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")
    CLOSED = "closed", _("Closed")


# A facility valued at the current prices on its pages (lending.risk.selectors.facility_risk): an open one.
LIVE_STATES = (FacilityState.ACTIVE, FacilityState.SUSPENDED)


class Band(models.TextChoices):
    HEALTHY = "healthy", _("Healthy")
    WATCH = "watch", _("Watch")
    MARGIN_CALL = "margin_call", _("Margin call")
    CLOSE_OUT = "close_out", _("Close-out")


class Facility(ConcurrentTransitionMixin, models.Model):
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="facilities")
    application = models.OneToOneField(FacilityApplication, on_delete=models.PROTECT, related_name="facility")
    state = FSMField(default=FacilityState.ACTIVE, choices=FacilityState.choices, protected=True, db_index=True)
    limit = models.DecimalField(_("limit (HKD)"), **HKD)
    drawn_balance = models.DecimalField(_("drawn balance (HKD)"), **HKD, default=ZERO)
    conditions = models.TextField(blank=True)
    policy = models.ForeignKey(CollateralPolicy, on_delete=models.PROTECT, related_name="+")
    letter_sha256 = models.CharField(max_length=64)
    accepted_at = models.DateTimeField()
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Last stored valuation (the risk engine rewrites these set-based; see module docstring).
    market_value = models.DecimalField(**HKD, default=ZERO)
    va_market_value = models.DecimalField(**HKD, default=ZERO)
    lending_value = models.DecimalField(**HKD, default=ZERO)
    utilisation = models.DecimalField(max_digits=12, decimal_places=4, default=ZERO)
    band = models.CharField(max_length=12, choices=Band.choices, default=Band.HEALTHY, db_index=True)
    valued_at = models.DateTimeField(null=True, blank=True)
    # The collateral-policy version whose haircuts valued the stored figures (written by the revaluation engine).
    valued_policy_version = models.PositiveIntegerField(null=True, blank=True)
    # Owned by the monitoring issue (margin calls): True while a margin call is open.
    # Drawdowns are refused while it is set (lending.selectors.facility_has_open_margin_call).
    has_open_margin_call = models.BooleanField(default=False, db_index=True)
    # The highest early-warning level (CollateralPolicy.warning_levels) the facility's utilisation is at or
    # above and was warned about; 0 while below every level. Written only by the revaluation engine: a
    # warning goes out when this rises, and it falls (re-arming the level) when utilisation falls back.
    warned_level = models.DecimalField(**RATIO, default=ZERO)
    suspended_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = _("facilities")
        constraints = [models.CheckConstraint(condition=Q(drawn_balance__gte=0), name="drawn_not_negative")]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        return f"FAC-{self.pk:06d}" if self.pk else "FAC-new"

    @property
    def valued_live(self) -> bool:
        """The pages show (and poll) this facility's live valuation: while it is open (``LIVE_STATES``)."""
        return self.state in LIVE_STATES

    @property
    def available(self) -> Decimal:
        """What may still be drawn: the smaller of limit and lending value, less what is drawn; nothing unless the
        facility is active (a suspended one refuses drawdowns, a closed one has ended)."""
        if self.state != FacilityState.ACTIVE:
            return ZERO
        return max(ZERO, min(self.limit, self.lending_value) - self.drawn_balance)

    @transition(field=state, source=FacilityState.ACTIVE, target=FacilityState.SUSPENDED)
    def suspend(self, *, reason):
        self.suspended_reason = reason

    @transition(field=state, source=FacilityState.SUSPENDED, target=FacilityState.ACTIVE)
    def reinstate(self):
        self.suspended_reason = ""

    @transition(field=state, source=[FacilityState.ACTIVE, FacilityState.SUSPENDED], target=FacilityState.CLOSED)
    def close(self, *, at):
        self.closed_at = at


class CollateralPosition(models.Model):
    """One collateral line held against a facility (per facility, per asset or securities line)."""

    facility = models.ForeignKey(Facility, on_delete=models.CASCADE, related_name="positions")
    kind = models.CharField(max_length=20, choices=CollateralKind.choices)
    # Positions pledged from the custody ledger name their instrument and are valued at its price
    # (lines booked before the instrument master keep their recorded market value).
    instrument = models.ForeignKey("collateral.Instrument", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    asset = models.CharField(max_length=8, choices=Asset.choices, blank=True, db_index=True)
    description = models.CharField(max_length=200, blank=True)
    haircut_class = models.CharField(max_length=8, blank=True)
    quantity = models.DecimalField(**QTY, null=True, blank=True)
    # Securities: the market value; VA: the value at the last valuation.
    market_value = models.DecimalField(**HKD, default=ZERO)
    haircut = models.DecimalField(**RATIO)
    custody_reference = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["id"]
        # By instrument: a price tick finds the facilities holding what moved without scanning the book.
        indexes = [models.Index(fields=["facility", "asset"]), models.Index(fields=["instrument", "facility"], name="position_by_instrument")]

    def __str__(self) -> str:
        return f"{self.facility_id} {self.asset or self.description}"


class TxnKind(models.TextChoices):
    DRAWDOWN = "drawdown", _("Drawdown")
    REPAYMENT = "repayment", _("Repayment")
    INTEREST = "interest", _("Interest posted")
    FEE = "fee", _("Fee")
    SALE_PROCEEDS = "sale_proceeds", _("Sale proceeds applied")
    ADJUSTMENT = "adjustment", _("Adjustment")
    WRITE_OFF = "write_off", _("Written off")
    RECOVERY = "recovery", _("Recovery after write-off")


# How each kind moves the drawn balance: +1 adds to what the client owes, -1 reduces it.
# An adjustment carries its own sign. A recovery is cash received on a debt already written
# off: it is on the ledger (and the statement) but the written-off amount is no longer drawn.
TXN_SIGN = {
    TxnKind.DRAWDOWN: 1, TxnKind.INTEREST: 1, TxnKind.FEE: 1,
    TxnKind.REPAYMENT: -1, TxnKind.SALE_PROCEEDS: -1, TxnKind.WRITE_OFF: -1,
    TxnKind.RECOVERY: 0,
}


class LedgerEntryQuerySet(models.QuerySet):
    """Ledger entries are immutable: corrections are new entries (an adjustment), never edits."""

    def update(self, **kwargs):
        raise ImmutableLedgerError("ledger entries are immutable: post an adjustment instead of an UPDATE")

    def delete(self):
        raise ImmutableLedgerError("ledger entries are immutable: they are never deleted")


class ImmutableLedgerError(Exception):
    pass


class FacilityTransaction(models.Model):
    """One immutable entry of a facility's ledger: the only way money moves on a facility.

    ``delta`` is the signed change to the drawn balance and ``balance_after`` the drawn balance
    once it is applied, so the drawn balance is always the sum of the facility's deltas (checked
    by ``manage.py ledger_verify``). ``value_date`` is the Hong Kong business date the entry
    counts from (interest accrues on the balance at the end of each day). Written only by
    ``lending.ledger.ledger_post`` and the set-based interest posting, under the facility lock.
    """

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="transactions")
    kind = models.CharField(max_length=16, choices=TxnKind.choices)
    amount = models.DecimalField(**HKD, validators=[MinValueValidator(Decimal("0.01"))])
    delta = models.DecimalField(**HKD, default=ZERO)
    balance_after = models.DecimalField(**HKD)
    value_date = models.DateField(default=timezone.localdate, db_index=True)
    reference = models.CharField(max_length=100, blank=True)
    narrative = models.CharField(max_length=200, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    objects = LedgerEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["facility", "value_date"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_amount_positive"),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="ledger_balance_not_negative"),
            # One interest posting per facility and posting date: a rerun of the monthly posting never doubles.
            models.UniqueConstraint(fields=["facility", "value_date"], condition=Q(kind="interest"), name="one_interest_posting_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ImmutableLedgerError("ledger entries are immutable: post an adjustment instead")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableLedgerError("ledger entries are immutable: they are never deleted")
