"""The risk engine's records: price governance, per-facility coefficients, margin calls, snapshots, stress reports.

The book is valued set-based. Lending value is linear in the two virtual-asset prices, so each
facility keeps three coefficients (``FacilityCoefficients``)::

    LV = a + min(b·P_btc + c·P_eth, a·s/(1−s))

where ``a`` is the securities lending value, ``b`` and ``c`` the haircut-weighted BTC and ETH
quantities, and ``s`` the policy's largest VA share of lending value (securities are the main
support). A revaluation is then a handful of SQL statements over this narrow table joined to
``lending_facility``, writing only the rows whose band changes (see ``revaluation.py``).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from lending.models import MakerCheckerPolicy, PriceField

HKD = {"max_digits": 18, "decimal_places": 2}
RATIO = {"max_digits": 7, "decimal_places": 4}
COEF = {"max_digits": 30, "decimal_places": 12}


class RiskPolicy(MakerCheckerPolicy):
    """The price-governance and stress numbers the lending policy does not hold; versioned, maker-checker.

    Freshness, monitoring levels and the cure period stay in lending's CollateralPolicy (one place each).
    """

    source_deviation_max = models.DecimalField(
        _("largest deviation of a price source from the median"), **RATIO,
        help_text=_("A source further than this from the median of the fresh sources raises an alarm (0.0200 = 2%)."),
    )
    volatility_alarm_level = models.DecimalField(
        _("volatility alarm level (annualised)"), **RATIO,
        help_text=_("30-day realised volatility above this raises an alarm (0.9000 = 90% a year)."),
    )
    stress_btc_shock = models.DecimalField(_("monthly stress: bitcoin shock"), **RATIO)
    stress_eth_shock = models.DecimalField(_("monthly stress: ether shock"), **RATIO)
    stress_securities_shock = models.DecimalField(_("monthly stress: securities shock"), **RATIO)
    quote_band_max = models.DecimalField(
        _("largest move of a quote from the governed price"), **RATIO, default=Decimal("0.2500"),
        help_text=_("A quote further than this from the reference price is refused until an approved override moves the reference (0.2500 = 25%)."),
    )
    override_justification_level = models.DecimalField(
        _("override deviation needing a written justification"), **RATIO, default=Decimal("0.1000"),
        help_text=_("A manual price further than this from the governed price needs a written justification (0.1000 = 10%)."),
    )

    NUMBERS = ("source_deviation_max", "volatility_alarm_level", "stress_btc_shock", "stress_eth_shock", "stress_securities_shock",
               "quote_band_max", "override_justification_level")

    class Meta:
        ordering = ["-version"]
        verbose_name = _("risk policy")
        verbose_name_plural = _("risk policies")
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="approved"), name="one_risk_policy_in_force"),
        ]

    def __str__(self) -> str:
        return f"Risk policy v{self.version} ({self.status})"


# --- Price governance -------------------------------------------------------------------


class SourceKind(models.TextChoices):
    FEED = "feed", _("Market data feed")
    DESK = "desk", _("Dealing desk (entered by staff)")
    FILE = "file", _("Price file")


class PriceSource(models.Model):
    """A feed, venue, desk or file quoting BTC/ETH in HKD. Deactivated, never deleted.

    The reference price is the weighted median of the active sources' fresh quotes.
    """

    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=8, choices=SourceKind.choices, default=SourceKind.FEED)
    weight = models.DecimalField(
        _("weight in the median"), max_digits=6, decimal_places=2, default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("100"))],
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    FIELDS = ("code", "name", "kind", "weight", "active")

    class Meta:
        ordering = ["code"]
        constraints = [models.CheckConstraint(condition=Q(weight__gt=0), name="price_source_weight_positive")]

    def __str__(self) -> str:
        return self.name


class PriceQuote(models.Model):
    """One quote from one source (history: never updated)."""

    source = models.ForeignKey(PriceSource, on_delete=models.PROTECT, related_name="quotes")
    asset = models.CharField(max_length=8)
    price_hkd = PriceField()
    as_of = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-as_of", "-id"]
        indexes = [models.Index(fields=["asset", "source", "-as_of"])]

    def __str__(self) -> str:
        return f"{self.source_id} {self.asset} {self.price_hkd}"


class OverrideStatus(models.TextChoices):
    PROPOSED = "proposed", _("Awaiting a second credit manager")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    CANCELLED = "cancelled", _("Cancelled")


class PriceOverride(ConcurrentTransitionMixin, models.Model):
    """A manual price: one credit manager proposes it (price, reason, expiry), a different one approves it;
    in force from approval until it expires or is cancelled.

    The proposal keeps the governed price it departs from, the deviation and a stress-engine preview of
    its effect on the book, so the approver decides on the same figures.
    """

    asset = models.CharField(max_length=8)
    price_hkd = PriceField()
    status = FSMField(default=OverrideStatus.PROPOSED, choices=OverrideStatus.choices, protected=True, db_index=True)
    reason = models.TextField()
    justification = models.TextField(blank=True)
    governed_price = PriceField(null=True, blank=True)
    deviation = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    preview = models.JSONField(default=dict, blank=True)
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")  # the proposer
    set_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    cancelled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    cancelled_at = models.DateTimeField(null=True, blank=True)

    FIELDS = ("asset", "price_hkd", "status", "reason", "justification", "governed_price", "deviation", "expires_at",
              "set_by", "approved_by", "decision_note", "cancelled_by")

    class Meta:
        ordering = ["-set_at", "-id"]
        indexes = [models.Index(fields=["asset", "expires_at"])]

    def __str__(self) -> str:
        # Hong Kong time, as on every page: loaded from the database the value is UTC.
        return f"{self.asset} override HK${self.price_hkd} until {timezone.localtime(self.expires_at):%Y-%m-%d %H:%M} HKT"

    @property
    def reference(self) -> str:
        return f"OVR-{self.pk:06d}" if self.pk else "OVR-new"

    def in_force(self, now=None) -> bool:
        now = now or timezone.now()
        return (self.status == OverrideStatus.APPROVED and self.cancelled_at is None and self.approved_at is not None
                and self.approved_at <= now < self.expires_at)

    @transition(field=status, source=OverrideStatus.PROPOSED, target=OverrideStatus.APPROVED)
    def approve(self, *, by, at, note):
        self.approved_by, self.approved_at, self.decision_note = by, at, note

    @transition(field=status, source=OverrideStatus.PROPOSED, target=OverrideStatus.REJECTED)
    def reject(self, *, by, at, note):
        self.approved_by, self.approved_at, self.decision_note = by, at, note

    @transition(field=status, source=[OverrideStatus.PROPOSED, OverrideStatus.APPROVED], target=OverrideStatus.CANCELLED)
    def cancel(self, *, by, at):
        self.cancelled_by, self.cancelled_at = by, at


class AlarmKind(models.TextChoices):
    STALE_PRICE = "stale_price", _("Reference price stale (no fresh source)")
    SOURCE_STALE = "source_stale", _("Price source stale")
    SOURCE_DEVIATION = "source_deviation", _("Price source deviates from the median")
    VOLATILITY = "volatility", _("Realised volatility above the policy level")
    OVERRIDE = "override", _("Manual price override in force")
    QUOTE_REFUSED = "quote_refused", _("Quote refused (outside the policy band)")


class PriceAlarm(models.Model):
    """An alarm raised while its condition holds and cleared (kept) when it stops."""

    asset = models.CharField(max_length=8)
    kind = models.CharField(max_length=20, choices=AlarmKind.choices)
    source = models.ForeignKey(PriceSource, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # '' for asset-wide alarms; the source code otherwise (so one open alarm per key).
    key = models.CharField(max_length=80)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    raised_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["key"], condition=Q(cleared_at__isnull=True), name="one_open_alarm_per_key"),
        ]

    def __str__(self) -> str:
        return f"{self.asset} {self.kind}"


class DailyClose(models.Model):
    """The last reference price of each Hong Kong day: the series realised volatility is computed from."""

    asset = models.CharField(max_length=8)
    day = models.DateField()
    price_hkd = PriceField()
    as_of = models.DateTimeField()

    class Meta:
        ordering = ["asset", "-day"]
        constraints = [models.UniqueConstraint(fields=["asset", "day"], name="one_close_per_asset_day")]

    def __str__(self) -> str:
        return f"{self.asset} {self.day} {self.price_hkd}"


class AssetVolatility(models.Model):
    """The latest 30-day realised volatility per asset (annualised)."""

    asset = models.CharField(max_length=8, primary_key=True)
    volatility = models.DecimalField(max_digits=9, decimal_places=4, null=True)
    observations = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.asset} {self.volatility}"


# --- Book valuation -----------------------------------------------------------------------


class FacilityCoefficients(models.Model):
    """Lending value is linear in prices: per facility LV = a + min(b·P_btc + c·P_eth, cap).

    Maintained set-based from lending's CollateralPosition (GROUP BY) whenever positions change.
    """

    facility = models.OneToOneField("lending.Facility", primary_key=True, on_delete=models.CASCADE, related_name="+")
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=True)
    securities_mv = models.DecimalField(**COEF, default=0)
    securities_lv = models.DecimalField(**COEF, default=0)  # a
    btc_qty = models.DecimalField(**COEF, default=0)
    btc_weight = models.DecimalField(**COEF, default=0)  # b = Σ quantity × (1 − haircut)
    eth_qty = models.DecimalField(**COEF, default=0)
    eth_weight = models.DecimalField(**COEF, default=0)  # c
    # The same three as floats, for the revaluation's prefilter only (exact values decide).
    securities_lv_f = models.FloatField(default=0)
    btc_weight_f = models.FloatField(default=0)
    eth_weight_f = models.FloatField(default=0)
    # The facility's own columns the prefilter reads, copied here so a tick scans one narrow table, not the
    # facility ⋈ sums join. The database keeps them equal to the facility's (a trigger on lending_facility,
    # migration 0006; rows are created with them by book.coefficients_refresh); the prefilter only.
    drawn_f = models.FloatField(default=0)
    band = models.CharField(max_length=12, default="healthy")
    warned_level_f = models.FloatField(default=0)
    active = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = _("facility coefficients")

    def __str__(self) -> str:
        return f"coefficients of facility {self.facility_id}"


class RevaluationRun(models.Model):
    """One whole-book revaluation: the prices it used and what it changed."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=20)
    btc_price = models.DecimalField(max_digits=20, decimal_places=2, null=True)
    eth_price = models.DecimalField(max_digits=20, decimal_places=2, null=True)
    policy_version = models.PositiveIntegerField(null=True)
    band_changes = models.PositiveIntegerField(default=0)
    calls_opened = models.PositiveIntegerField(default=0)
    calls_escalated = models.PositiveIntegerField(default=0)
    calls_met = models.PositiveIntegerField(default=0)
    # Early warnings the run queued (facilities that crossed a warning level upwards).
    warnings = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(null=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"revaluation #{self.pk} ({self.trigger})"


class BandChange(models.Model):
    """A facility's move between bands (the record of every transition; written set-based)."""

    # Run and facility are found by the composite indexes that lead with them (Meta), not by an index of their own.
    run = models.ForeignKey(RevaluationRun, null=True, on_delete=models.PROTECT, related_name="+", db_index=False)
    facility = models.ForeignKey("lending.Facility", on_delete=models.PROTECT, related_name="+", db_index=False)
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    from_band = models.CharField(max_length=12)
    to_band = models.CharField(max_length=12)
    drawn_balance = models.DecimalField(**HKD)
    market_value = models.DecimalField(**HKD)
    va_market_value = models.DecimalField(**HKD)
    lending_value = models.DecimalField(**HKD)
    utilisation = models.DecimalField(max_digits=12, decimal_places=4)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["run", "to_band"]), models.Index(fields=["facility", "-at"])]

    def __str__(self) -> str:
        return f"{self.facility_id}: {self.from_band} → {self.to_band}"


class WarningCrossing(models.Model):
    """A facility's utilisation crossing an early-warning level (up: a warning; down: the level re-armed).

    Written set-based by the revaluation engine, only for facilities whose warning level changed;
    ``notify`` marks the crossings that warn the client (upwards, below the margin-call level, no call
    open), ``notified_at`` is set when the warning went out (claimed once, by a conditional UPDATE).
    """

    # Run and facility are found by the composite indexes that lead with them (Meta), not by an index of their own.
    run = models.ForeignKey(RevaluationRun, null=True, on_delete=models.PROTECT, related_name="+", db_index=False)
    facility = models.ForeignKey("lending.Facility", on_delete=models.PROTECT, related_name="+", db_index=False)
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    from_level = models.DecimalField(**RATIO)
    to_level = models.DecimalField(**RATIO)
    utilisation = models.DecimalField(max_digits=12, decimal_places=4)
    band = models.CharField(max_length=12)
    drawn_balance = models.DecimalField(**HKD)
    lending_value = models.DecimalField(**HKD)
    # The facility's coefficients at the crossing: the distance to the call in BTC/ETH terms is computed from them.
    securities_lending_value = models.DecimalField(**COEF)
    btc_weight = models.DecimalField(**COEF)
    eth_weight = models.DecimalField(**COEF)
    btc_price = models.DecimalField(max_digits=20, decimal_places=2, null=True)
    eth_price = models.DecimalField(max_digits=20, decimal_places=2, null=True)
    notify = models.BooleanField(default=False)
    notice_batch = models.CharField(max_length=32, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["run", "notify"]), models.Index(fields=["facility", "-at"]),
                   models.Index(fields=["notice_batch"], condition=~models.Q(notice_batch=""), name="warning_notice_batch")]

    def __str__(self) -> str:
        return f"{self.facility_id}: {self.from_level} → {self.to_level}"


class CollateralType(models.TextChoices):
    SECURITIES = "securities", _("Securities")
    BTC = "BTC", _("Bitcoin")
    ETH = "ETH", _("Ether")
    TOTAL = "total", _("Total (after the VA cap)")


class ValuationSnapshot(models.Model):
    """End-of-day valuation per facility and collateral type: the regulatory record (kept 7 years)."""

    day = models.DateField()
    facility = models.ForeignKey("lending.Facility", on_delete=models.PROTECT, related_name="+", db_index=False)
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    collateral_type = models.CharField(max_length=12, choices=CollateralType.choices)
    quantity = models.DecimalField(**COEF, null=True)
    price_hkd = PriceField(null=True)
    market_value = models.DecimalField(**HKD)
    lending_value = models.DecimalField(**HKD)
    drawn_balance = models.DecimalField(**HKD, null=True)
    utilisation = models.DecimalField(max_digits=12, decimal_places=4, null=True)
    band = models.CharField(max_length=12, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day", "facility", "collateral_type"]
        constraints = [
            models.UniqueConstraint(fields=["day", "facility", "collateral_type"], name="one_snapshot_per_day_facility_type"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.facility_id} {self.collateral_type}"


class CollateralTopUp(models.Model):
    """Collateral added to a facility through the API (the position itself lives in lending)."""

    facility = models.ForeignKey("lending.Facility", on_delete=models.PROTECT, related_name="+")
    position_id = models.BigIntegerField()
    kind = models.CharField(max_length=20)
    asset = models.CharField(max_length=8, blank=True)
    quantity = models.DecimalField(max_digits=24, decimal_places=8, null=True)
    market_value = models.DecimalField(**HKD, null=True)
    reference = models.CharField(max_length=100, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"top-up {self.pk} of facility {self.facility_id}"


# --- Margin calls --------------------------------------------------------------------------


class CallState(models.TextChoices):
    OPEN = "open", _("Open")
    MET = "met", pgettext_lazy("margin call", "Met")
    ESCALATED = "escalated", _("Escalated to a credit manager")
    CLOSED_OUT = "closed_out", _("Closed out")
    WAIVED = "waived", _("Waived")


OPEN_CALL_STATES = (CallState.OPEN, CallState.ESCALATED)


class Resolution(models.TextChoices):
    CLOSE_OUT = "close_out", _("Close out (liquidate collateral)")
    WAIVE = "waive", _("Waive the call")


class MarginCall(ConcurrentTransitionMixin, models.Model):
    """open → met | escalated → closed_out | waived. At most one open call per facility (partial unique index).

    Calls are opened set-based by the revaluation (``INSERT … SELECT … ON CONFLICT DO NOTHING``);
    later transitions go through ``services`` under ``select_for_update``.
    """

    facility = models.ForeignKey("lending.Facility", on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)  # (client, state)
    state = FSMField(default=CallState.OPEN, choices=CallState.choices, protected=True, db_index=True)
    opened_at = models.DateTimeField(default=timezone.now)
    cure_deadline = models.DateTimeField()
    # What it takes to cure: repay this much (or add lending value of shortfall ÷ the margin-call level).
    shortfall = models.DecimalField(**HKD)
    shortfall_at_open = models.DecimalField(**HKD)
    utilisation = models.DecimalField(max_digits=12, decimal_places=4)
    utilisation_at_open = models.DecimalField(max_digits=12, decimal_places=4)
    lending_value = models.DecimalField(**HKD)
    drawn_balance = models.DecimalField(**HKD)
    band = models.CharField(max_length=12)
    run = models.ForeignKey(RevaluationRun, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)
    breaches = models.PositiveIntegerField(default=1, help_text=_("Times the facility crossed back into margin call while this call was open."))
    notified_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    escalation_reason = models.CharField(max_length=20, blank=True)
    # The maker-checker resolution of an escalated call.
    proposed_resolution = models.CharField(max_length=10, choices=Resolution.choices, blank=True)
    proposal_reason = models.TextField(blank=True)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True)
    met_at = models.DateTimeField(null=True, blank=True)
    met_by = models.CharField(max_length=20, blank=True)  # "repayment", "top_up", "market", "officer" (revaluation.MET_BY_*)

    FIELDS = ("state", "shortfall", "utilisation", "cure_deadline", "proposed_resolution", "proposal_reason",
              "proposed_by", "resolved_by", "resolution_note", "met_by", "escalation_reason")

    class Meta:
        ordering = ["opened_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["facility"], condition=Q(state__in=["open", "escalated"]), name="one_open_call_per_facility"),
        ]
        indexes = [
            models.Index(fields=["client", "state"]),
            # The risk board's oldest open calls, read in order (243 ms → 2.4 ms at 100,000 facilities). Created in
            # the database by lending 0011; risk 0007 records it here.
            models.Index(fields=["opened_at", "id"], condition=Q(state__in=["open", "escalated"]), name="risk_open_calls_by_age"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        return f"MC-{self.pk:06d}" if self.pk else "MC-new"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_CALL_STATES

    @transition(field=state, source=[CallState.OPEN, CallState.ESCALATED], target=CallState.MET)
    def meet(self, *, at, how):
        self.met_at, self.met_by = at, how

    @transition(field=state, source=CallState.OPEN, target=CallState.ESCALATED)
    def escalate(self, *, at, reason):
        self.escalated_at, self.escalation_reason = at, reason

    @transition(field=state, source=CallState.ESCALATED, target=CallState.CLOSED_OUT)
    def close_out(self, *, by, at, note):
        self.resolved_by, self.resolved_at, self.resolution_note = by, at, note

    @transition(field=state, source=CallState.ESCALATED, target=CallState.WAIVED)
    def waive(self, *, by, at, note):
        self.resolved_by, self.resolved_at, self.resolution_note = by, at, note


# --- Stress tests ----------------------------------------------------------------------------


class StressReport(models.Model):
    """A stress test kept on record: the monthly report (beat task) or a saved ad-hoc run."""

    class Kind(models.TextChoices):
        MONTHLY = "monthly", _("Monthly report")
        AD_HOC = "ad_hoc", _("Ad-hoc run")

    kind = models.CharField(max_length=10, choices=Kind.choices)
    period = models.CharField(max_length=7, blank=True, help_text="YYYY-MM for monthly reports")
    btc_shock = models.DecimalField(**RATIO)
    eth_shock = models.DecimalField(**RATIO)
    securities_shock = models.DecimalField(**RATIO)
    btc_price = models.DecimalField(max_digits=20, decimal_places=2, null=True)
    eth_price = models.DecimalField(max_digits=20, decimal_places=2, null=True)
    policy_version = models.PositiveIntegerField(null=True)
    result = models.JSONField(default=dict)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["period"], condition=Q(kind="monthly"), name="one_monthly_stress_report"),
        ]

    def __str__(self) -> str:
        return f"Stress {self.kind} {self.period or self.created_at.date().isoformat()}"


ZERO = Decimal("0")


class BookSummary(models.Model):
    """The risk board's whole-book figures (utilisation distribution, bands, totals, exposure by client and asset,
    the facilities nearest their thresholds, collateral concentration), taken after the engine's full revaluation
    each minute. The board reads this one row instead of valuing the book again for every viewer."""

    taken_at = models.DateTimeField(default=timezone.now)
    policy_version = models.PositiveIntegerField(null=True)
    btc_price = models.DecimalField(max_digits=20, decimal_places=2, null=True)
    eth_price = models.DecimalField(max_digits=20, decimal_places=2, null=True)
    data = models.JSONField(default=dict)
    took_ms = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "book summary"

    def __str__(self) -> str:
        return f"Book summary at {timezone.localtime(self.taken_at):%Y-%m-%d %H:%M:%S} HKT"
