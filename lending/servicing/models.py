"""Servicing records: the servicing policy (rates, fees, thresholds), base-rate fixings, each facility's
contractual terms, daily interest accruals, and statements of account.

Interest: each day's accrual is one row per facility and day (unique), inserted set-based for
the whole book by ``interest.accrue_day``; the month's rows are posted to the ledger at month end
as one ``interest`` entry per facility (``lending.models.FacilityTransaction``).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from lending.models import MakerCheckerPolicy

HKD = {"max_digits": 18, "decimal_places": 2}
RATE = {"max_digits": 9, "decimal_places": 6}  # 0.052500 = 5.25% a year
RATIO = {"max_digits": 7, "decimal_places": 4}
ZERO = Decimal("0")


class BaseRate(models.TextChoices):
    HKD_PRIME = "hkd_prime", _("HKD Prime")
    HIBOR_1M = "hibor_1m", _("1-month HIBOR")


class ServicingPolicy(MakerCheckerPolicy):
    """One version of the firm's servicing terms: the price of credit and the thresholds of servicing.

    The rate a facility pays is the base rate (a published fixing) plus the margin of its pricing
    tier, fixed in its facility letter; a new version changes the terms of new letters only.
    """

    base_rate = models.CharField(_("base rate"), max_length=12, choices=BaseRate.choices)
    tier_margins = models.JSONField(_("margin over the base rate per pricing tier"))  # {"standard": "0.035000"}
    default_tier = models.CharField(_("default pricing tier"), max_length=20)
    overdue_margin = models.DecimalField(
        _("overdue margin"), **RATE,
        help_text=_("Added to the facility rate on a margin-call shortfall left unmet after its cure deadline."),
    )
    arrangement_fee = models.DecimalField(_("arrangement fee (HKD, charged when the letter is accepted)"), **HKD, default=ZERO)
    liquidation_fee_rate = models.DecimalField(_("liquidation fee (share of sale proceeds)"), **RATIO, default=ZERO)
    client_drawdown_auto_max = models.DecimalField(
        _("client drawdown executed at once up to (HKD)"), **HKD,
        help_text=_("A client's drawdown request above this waits for an account officer."),
    )
    staff_four_eyes_above = models.DecimalField(
        _("second person needed above (HKD)"), **HKD,
        help_text=_("Drawdowns and repayments recorded by staff above this need a second member of staff."),
    )
    release_initial_level = models.DecimalField(
        _("initial level for collateral releases (utilisation)"), **RATIO,
        help_text=_("A release is allowed only if utilisation after it is at or below this level (below the watch level)."),
    )
    whitelist_cooling_off_hours = models.PositiveIntegerField(_("cooling-off for a new withdrawal address (hours)"), default=24)
    withdrawal_officer_above = models.DecimalField(_("VA withdrawal needs an officer above (HKD)"), **HKD)
    withdrawal_second_above = models.DecimalField(_("VA withdrawal needs a second approver above (HKD)"), **HKD)
    review_months = models.PositiveSmallIntegerField(_("annual review every (months)"), default=12)
    unpaid_interest_grace_days = models.PositiveSmallIntegerField(
        _("interest unpaid for more than this many days is overdue"), default=30,
        help_text=_("Interest posted to the balance and still unpaid after this many days bears the overdue margin as well."),
    )

    NUMBERS = (
        "base_rate", "tier_margins", "default_tier", "overdue_margin", "arrangement_fee", "liquidation_fee_rate",
        "client_drawdown_auto_max", "staff_four_eyes_above", "release_initial_level", "whitelist_cooling_off_hours",
        "withdrawal_officer_above", "withdrawal_second_above", "review_months", "unpaid_interest_grace_days",
    )

    class Meta:
        ordering = ["-version"]
        verbose_name = _("servicing policy")
        verbose_name_plural = _("servicing policies")
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="approved"), name="one_servicing_policy_in_force"),
            models.CheckConstraint(condition=Q(withdrawal_second_above__gte=models.F("withdrawal_officer_above")), name="withdrawal_tiers_rise"),
        ]

    def __str__(self) -> str:
        return f"Servicing policy v{self.version} ({self.status})"

    def margin_for(self, tier: str) -> Decimal | None:
        value = (self.tier_margins or {}).get(tier)
        return Decimal(str(value)) if value is not None else None


class FixingStatus(models.TextChoices):
    ENTERED = "entered", _("Entered, awaiting confirmation")
    CONFIRMED = "confirmed", _("Confirmed")
    REJECTED = "rejected", _("Rejected")


class BaseRateFixing(models.Model):
    """A published base-rate fixing (e.g. HKD Prime of a named bank, HKAB's 1-month HIBOR), entered
    by one member of staff and confirmed by another before interest uses it. Never edited."""

    base_rate = models.CharField(_("base rate"), max_length=12, choices=BaseRate.choices)
    rate = models.DecimalField(_("rate (a year)"), **RATE, validators=[MinValueValidator(ZERO)])
    effective_date = models.DateField(_("effective from"))
    source = models.CharField(_("source"), max_length=200)
    status = models.CharField(max_length=10, choices=FixingStatus.choices, default=FixingStatus.ENTERED)
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    entered_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-effective_date", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["base_rate", "effective_date"], condition=Q(status="confirmed"), name="one_confirmed_fixing_per_day"),
            models.CheckConstraint(condition=Q(rate__gte=0, rate__lt=1), name="fixing_rate_sane"),
        ]

    def __str__(self) -> str:
        return f"{self.get_base_rate_display()} {self.rate:.4%} from {self.effective_date}"


class FacilityTerms(models.Model):
    """The servicing terms in a facility's letter: pricing tier and margin, fees, the review date.

    Made when the letter is issued (keyed by application) and attached to the facility when the
    client accepts. Facilities opened before any terms existed get the default tier of the policy in
    force on their first accrual (``interest.terms_ensure``), recorded here like any other.
    """

    application = models.OneToOneField("lending.FacilityApplication", null=True, blank=True, on_delete=models.PROTECT, related_name="servicing_terms")
    facility = models.OneToOneField("lending.Facility", null=True, blank=True, on_delete=models.PROTECT, related_name="servicing_terms")
    policy = models.ForeignKey(ServicingPolicy, on_delete=models.PROTECT, related_name="+")
    base_rate = models.CharField(max_length=12, choices=BaseRate.choices)
    tier = models.CharField(max_length=20)
    margin = models.DecimalField(**RATE)
    overdue_margin = models.DecimalField(**RATE)
    arrangement_fee = models.DecimalField(**HKD, default=ZERO)
    liquidation_fee_rate = models.DecimalField(**RATIO, default=ZERO)
    review_date = models.DateField(null=True, blank=True, db_index=True)
    # Notice to close given by the firm at a review.
    notice_given_at = models.DateTimeField(null=True, blank=True)
    notice_close_by = models.DateField(null=True, blank=True)
    notice_reason = models.TextField(blank=True)
    last_reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = _("facility terms")

    def __str__(self) -> str:
        return f"terms of {self.facility_id or self.application_id} ({self.tier})"


class InterestAccrual(models.Model):
    """A day's interest on one facility: balance at the end of the day × annual rate ÷ 365,
    rounded half up to the cent; plus overdue interest on an unmet margin-call shortfall."""

    # No database foreign key and no index of its own: the daily INSERT … SELECT writes a row per facility
    # of the book, and a foreign key would check (and FOR KEY SHARE lock, dirtying) every facility row each
    # day. Every facility id inserted comes from the join with its terms (whose foreign key is enforced)
    # and its ledger entries, and the append-only ledger's enforced foreign key already keeps such a
    # facility from being deleted. The unique key is (day, facility), not (facility, day): a day's rows arrive
    # together, after every earlier day's, so they land at the right edge of the b-tree (led by the facility, every
    # day's 100,000 inserts were scattered over the whole index, dirtying every leaf, and the accrual grew
    # slower with each day of history). Per-facility reads probe it with the days that can hold what they
    # want (``accrual_days``: the unposted days, or every accrued day), day = ANY(…) AND facility = ANY(…).
    facility = models.ForeignKey("lending.Facility", on_delete=models.PROTECT, related_name="+", db_constraint=False, db_index=False)
    day = models.DateField()
    balance = models.DecimalField(**HKD)
    annual_rate = models.DecimalField(**RATE)
    amount = models.DecimalField(**HKD)
    overdue_principal = models.DecimalField(**HKD, default=ZERO)
    # Interest posted to the balance more than the grace period ago and still unpaid (repayments pay
    # interest first, oldest first); it bears the overdue margin like an unmet shortfall.
    overdue_interest = models.DecimalField(**HKD, default=ZERO)
    overdue_amount = models.DecimalField(**HKD, default=ZERO)
    # Set when the month's interest is posted to the ledger (the posting's value date).
    posted_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["facility", "day"]
        constraints = [models.UniqueConstraint(fields=["day", "facility"], name="one_accrual_per_day_facility")]
        # No other index: the unposted rows are the days after the last posting (interest.accrual_days), a
        # range of the key (a partial index of unposted days was a fourth write per row).

    def __str__(self) -> str:
        return f"{self.facility_id} {self.day} {self.amount}"


class AccrualDay(models.Model):
    """The whole book's accrual for one day has run (the job's watermark and its figures)."""

    day = models.DateField(unique=True)
    facilities = models.PositiveIntegerField(default=0)
    total = models.DecimalField(**HKD, default=ZERO)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"accrual {self.day}: {self.facilities} facilities, HK${self.total}"


class InterestPosting(models.Model):
    """The month's interest posted to the ledger for the whole book (one per month end)."""

    period_end = models.DateField(unique=True)
    facilities = models.PositiveIntegerField(default=0)
    total = models.DecimalField(**HKD, default=ZERO)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-period_end"]

    def __str__(self) -> str:
        return f"posting {self.period_end}: HK${self.total}"


# --- Statements of account -------------------------------------------------------------------------


class ActivityStatementElection(models.Model):
    """A professional investor's written election not to receive activity statements (Cap. 571Q lets a
    PI agree to go without them; monthly statements still come). Kept exactly as made, in the client's
    language; revoking it stamps ``revoked_at`` and a new election is a new row, so the history stays."""

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="activity_statement_elections")
    text = models.TextField()
    language = models.CharField(max_length=10)
    elected_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-elected_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["client"], condition=Q(revoked_at__isnull=True), name="one_open_statement_election")]

    def __str__(self) -> str:
        return f"activity statements waived by {self.client_id} from {self.elected_at:%Y-%m-%d}"



class StatementKind(models.TextChoices):
    MONTHLY = "monthly", _("Monthly statement")
    ACTIVITY = "activity", _("Activity statement")


class Statement(models.Model):
    """A statement of account as issued: its HTML and PDF kept exactly, with their SHA-256. Never edited."""

    facility = models.ForeignKey("lending.Facility", on_delete=models.PROTECT, related_name="statements")
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="statements")
    kind = models.CharField(max_length=10, choices=StatementKind.choices)
    period_start = models.DateField()
    period_end = models.DateField()
    number = models.CharField(max_length=40, unique=True)
    language = models.CharField(max_length=10)
    html = models.TextField()
    pdf = models.BinaryField()
    html_sha256 = models.CharField(max_length=64)
    pdf_sha256 = models.CharField(max_length=64)
    closing_balance = models.DecimalField(**HKD)
    due_by = models.DateField(help_text=_("The latest date the rules allow it to be issued."))
    issued_at = models.DateTimeField(default=timezone.now)
    job = models.ForeignKey("StatementJob", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-period_end", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["facility", "kind", "period_end"], name="one_statement_per_facility_kind_period"),
        ]
        indexes = [models.Index(fields=["client", "-period_end"])]

    def __str__(self) -> str:
        return self.number

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValueError("an issued statement is immutable")
        super().save(*args, **kwargs)


class JobStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")


class StatementJob(models.Model):
    """Issuing one period's statements for the whole book, in batches.

    A batch is claimed by moving ``cursor`` (the last facility id handed out) with a conditional
    UPDATE; each statement is unique per facility, kind and period, so a batch redone after a
    worker died writes only what is missing.
    """

    kind = models.CharField(max_length=10, choices=StatementKind.choices)
    period_start = models.DateField()
    period_end = models.DateField()
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.RUNNING)
    cursor = models.BigIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)
    issued = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["kind", "period_end"], name="one_statement_job_per_period")]

    def __str__(self) -> str:
        return f"{self.kind} statements to {self.period_end} ({self.status})"


class StatementBatch(models.Model):
    """A claimed batch of a job: facility ids (lo, hi], finished or not. A batch whose worker died is
    re-claimed after its lease expires, and its statements that exist already are skipped."""

    job = models.ForeignKey(StatementJob, on_delete=models.CASCADE, related_name="batch_rows")
    lo = models.BigIntegerField()
    hi = models.BigIntegerField()
    claimed_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["job", "lo"]
        constraints = [models.UniqueConstraint(fields=["job", "lo"], name="one_batch_per_range")]

    def __str__(self) -> str:
        return f"batch ({self.lo}, {self.hi}] of job {self.job_id}"


# --- Client requests and staff instructions ------------------------------------------------------------


class RequestKind(models.TextChoices):
    DRAWDOWN = "drawdown", _("Drawdown")
    REPAYMENT = "repayment", _("Repayment notice")
    TOP_UP = "top_up", _("Collateral top-up")
    RELEASE = "release", _("Collateral release")


class RequestOrigin(models.TextChoices):
    CLIENT = "client", _("Client request")
    STAFF = "staff", _("Recorded by staff")


class RequestState(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    AWAITING_SECOND = "awaiting_second", _("Awaiting a second approval")
    EXECUTED = "executed", _("Executed")
    REFUSED = "refused", _("Refused")
    CANCELLED = "cancelled", _("Cancelled")


class ServicingRequest(ConcurrentTransitionMixin, models.Model):
    """A drawdown, repayment, collateral top-up or release asked for by the client (facility page or
    API) or recorded by staff. requested → executed | refused | cancelled; above the policy amounts
    requested → awaiting_second → executed | refused (a second, different person)."""

    facility = models.ForeignKey("lending.Facility", on_delete=models.PROTECT, related_name="servicing_requests")
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=12, choices=RequestKind.choices)
    origin = models.CharField(max_length=8, choices=RequestOrigin.choices)
    state = FSMField(default=RequestState.REQUESTED, choices=RequestState.choices, protected=True, db_index=True)
    amount = models.DecimalField(**HKD, null=True, blank=True)
    # Top-up and release: what moves.
    collateral_kind = models.CharField(max_length=20, blank=True)
    asset = models.CharField(max_length=8, blank=True)
    quantity = models.DecimalField(max_digits=24, decimal_places=8, null=True, blank=True)
    haircut_class = models.CharField(max_length=8, blank=True)
    market_value = models.DecimalField(**HKD, null=True, blank=True)
    description = models.CharField(max_length=200, blank=True)
    custody_reference = models.CharField(max_length=100, blank=True)
    position_id = models.BigIntegerField(null=True, blank=True)
    address = models.ForeignKey("WithdrawalAddress", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    utilisation_after = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    value_hkd = models.DecimalField(**HKD, null=True, blank=True)
    note = models.TextField(blank=True)
    needs_officer = models.BooleanField(default=True)
    needs_second = models.BooleanField(default=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    stepup_at = models.DateTimeField(null=True, blank=True, help_text=_("When the client's fresh MFA step-up was checked."))
    first_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    first_at = models.DateTimeField(null=True, blank=True)
    second_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    second_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    received_reference = models.CharField(max_length=100, blank=True)
    ledger_entry_id = models.BigIntegerField(null=True, blank=True)
    broadcast_reference = models.CharField(max_length=140, blank=True)
    broadcast_at = models.DateTimeField(null=True, blank=True)
    refused_reason = models.TextField(blank=True)  # in English, as written (audit, API); shown through ``refusal``
    # The portal's own refusals as a code and its parameters (lending.servicing.reasons), rendered in the reader's
    # language; empty for a reason a member of staff typed.
    refused_code = models.CharField(max_length=64, blank=True)
    refused_params = models.JSONField(default=dict, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    FIELDS = ("kind", "origin", "state", "amount", "asset", "quantity", "needs_officer", "needs_second", "utilisation_after", "refused_reason", "refused_code", "refused_params")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["state", "kind"]), models.Index(fields=["facility", "-id"])]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        return f"REQ-{self.pk:06d}" if self.pk else "REQ-new"

    @transition(field=state, source=RequestState.REQUESTED, target=RequestState.AWAITING_SECOND)
    def first_approve(self, *, by, at):
        self.first_by, self.first_at = by, at

    @transition(field=state, source=[RequestState.REQUESTED, RequestState.AWAITING_SECOND], target=RequestState.EXECUTED)
    def execute(self, *, at):
        self.executed_at = self.closed_at = at

    @transition(field=state, source=[RequestState.REQUESTED, RequestState.AWAITING_SECOND], target=RequestState.REFUSED)
    def refuse(self, *, reason, at, code: str = "", params: dict | None = None):
        self.refused_reason, self.closed_at = reason, at
        self.refused_code, self.refused_params = code, params or {}

    @property
    def refusal(self):
        """Why it was refused, in the reader's language (``str()`` renders it in the active one)."""
        from .reasons import Refusal

        return Refusal(self.refused_code, self.refused_params, self.refused_reason)

    @property
    def refusal_text(self) -> str:
        return str(self.refusal)

    @transition(field=state, source=RequestState.REQUESTED, target=RequestState.CANCELLED)
    def cancel(self, *, at):
        self.closed_at = at


# --- VA withdrawal addresses (circular 26EC5, part 2) ---------------------------------------------------


class AddressState(models.TextChoices):
    ADDED = "added", _("Added — confirm by the email link")
    COOLING_OFF = "cooling_off", _("Cooling off")
    ACTIVE = "active", _("Active")
    REVOKED = "revoked", _("Revoked")


class WithdrawalAddress(ConcurrentTransitionMixin, models.Model):
    """A wallet address the client registered for VA withdrawals: added → cooling_off (email link
    confirmed) → active (after the policy's cooling-off) | revoked. VA leaves only to an active one."""

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="withdrawal_addresses")
    asset = models.CharField(max_length=8)
    address = models.CharField(max_length=120)
    label = models.CharField(max_length=80, blank=True)
    state = FSMField(default=AddressState.ADDED, choices=AddressState.choices, protected=True, db_index=True)
    token_hash = models.CharField(max_length=64, blank=True)
    added_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    active_from = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    cooling_off_hours = models.PositiveIntegerField(default=24)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["client", "asset", "address"], condition=~Q(state="revoked"), name="one_live_address_per_client_asset"),
        ]

    def __str__(self) -> str:
        return f"{self.asset} {self.address[:10]}… ({self.state})"

    @transition(field=state, source=AddressState.ADDED, target=AddressState.COOLING_OFF)
    def confirm(self, *, at, hours):
        self.confirmed_at, self.active_from, self.cooling_off_hours, self.token_hash = at, at + timedelta(hours=hours), hours, ""

    @transition(field=state, source=AddressState.COOLING_OFF, target=AddressState.ACTIVE)
    def activate(self, *, at):
        self.activated_at = at

    @transition(field=state, source=[AddressState.ADDED, AddressState.COOLING_OFF, AddressState.ACTIVE], target=AddressState.REVOKED)
    def revoke(self, *, at):
        self.revoked_at = at


class LimitChangeState(models.TextChoices):
    PROPOSED = "proposed", _("Awaiting a credit manager")
    APPLIED = "applied", pgettext_lazy("limit change", "Applied")
    REJECTED = "rejected", _("Rejected")


class LimitChange(models.Model):
    """A change of a facility's limit at a review: applied at once within the officer's authority (or a
    decrease), otherwise a different credit manager approves it (maker-checker)."""

    facility = models.ForeignKey("lending.Facility", on_delete=models.PROTECT, related_name="+")
    old_limit = models.DecimalField(**HKD)
    new_limit = models.DecimalField(**HKD)
    reason = models.TextField()
    state = models.CharField(max_length=10, choices=LimitChangeState.choices, default=LimitChangeState.PROPOSED)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.facility_id}: {self.old_limit} → {self.new_limit} ({self.state})"
