"""Close-out and recovery records: the recovery policy, liquidation plans and their lines, executions
recorded by the dealing desk, plan amendments (four-eyes), and the debt left after all collateral is sold.

* ``LiquidationPlan`` — proposed → approved → executing → completed | amended (four-eyes); a plan whose
  close-out proposal is sent back (or waived instead) is withdrawn. An approved amendment closes the plan
  as amended and continues with a new version holding what is left to sell.
* ``Execution`` — one report from the desk against a plan line: a fill (instrument, quantity, price, time,
  venue reference), a failed sale or a market halt. Only fills move money and custody.
* ``Debt`` — open → in_collections → repaid | written_off (two people) → recovered.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from lending.models import MakerCheckerPolicy

HKD = {"max_digits": 18, "decimal_places": 2}
RATIO = {"max_digits": 7, "decimal_places": 4}
QTY = {"max_digits": 24, "decimal_places": 8}
ZERO = Decimal("0")


class SecuritiesOrder(models.TextChoices):
    HAIRCUT = "haircut", _("Most liquid first (lowest haircut, then largest value)")
    MARKET_VALUE = "market_value", _("Largest holding first")


LIQUIDATION_STEPS = ("BTC", "ETH", "securities")


class RecoveryPolicy(MakerCheckerPolicy):
    """The close-out and collections numbers: versioned, proposed by one member of staff, approved by a credit manager."""

    target_utilisation = models.DecimalField(
        _("target utilisation after a close-out"), **RATIO,
        help_text=_("A liquidation plan sells enough to bring utilisation back to this level (below the watch level)."),
    )
    liquidation_order = models.JSONField(_("order of sale"), help_text=_('BTC, ETH and securities, each once: e.g. ["BTC", "ETH", "securities"].'))
    securities_order = models.CharField(_("order among securities"), max_length=16, choices=SecuritiesOrder.choices, default=SecuritiesOrder.HAIRCUT)
    va_sale_increment = models.DecimalField(_("smallest VA quantity sold"), **QTY, default=Decimal("0.0001"))
    debt_due_business_days = models.PositiveSmallIntegerField(_("a debt after sale is due after (HK business days)"), default=2)
    collections_after_days = models.PositiveSmallIntegerField(_("to collections at (days past due)"), default=7)
    dunning_days = models.JSONField(_("dunning notices at (days past due)"), help_text=_("e.g. [1, 7, 14, 30, 60, 90]"))

    NUMBERS = ("target_utilisation", "liquidation_order", "securities_order", "va_sale_increment", "debt_due_business_days",
               "collections_after_days", "dunning_days")

    class Meta:
        ordering = ["-version"]
        verbose_name = _("recovery policy")
        verbose_name_plural = _("recovery policies")
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="approved"), name="one_recovery_policy_in_force"),
            models.CheckConstraint(condition=Q(target_utilisation__gt=0, target_utilisation__lt=1), name="recovery_target_is_a_ratio"),
        ]

    def __str__(self) -> str:
        return f"Recovery policy v{self.version} ({self.status})"


# --- Liquidation plans -------------------------------------------------------------------------------


class PlanState(models.TextChoices):
    PROPOSED = "proposed", _("Proposed (awaiting the close-out decision)")
    APPROVED = "approved", _("Approved (to the dealing desk)")
    EXECUTING = "executing", _("Executing")
    COMPLETED = "completed", _("Completed")
    AMENDED = "amended", _("Amended (replaced by a new version)")
    WITHDRAWN = "withdrawn", _("Withdrawn")


LIVE_PLAN_STATES = (PlanState.PROPOSED, PlanState.APPROVED, PlanState.EXECUTING)


class LiquidationPlan(ConcurrentTransitionMixin, models.Model):
    """What to sell, in the policy's order and whole board lots, to bring a closed-out facility back to the target."""

    call = models.ForeignKey("risk.MarginCall", on_delete=models.PROTECT, related_name="+")
    facility = models.ForeignKey("lending.Facility", on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    version = models.PositiveIntegerField(default=1)
    supersedes = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by")
    state = FSMField(default=PlanState.PROPOSED, choices=PlanState.choices, protected=True, db_index=True)
    policy = models.ForeignKey(RecoveryPolicy, on_delete=models.PROTECT, related_name="+")
    target_utilisation = models.DecimalField(**RATIO)
    prices = models.JSONField(default=dict)  # {code: price} the plan was computed at
    drawn_at_plan = models.DecimalField(**HKD)
    lending_value_at_plan = models.DecimalField(**HKD)
    utilisation_at_plan = models.DecimalField(max_digits=12, decimal_places=4)
    expected_proceeds = models.DecimalField(**HKD, default=ZERO)
    expected_fees = models.DecimalField(**HKD, default=ZERO)
    expected_drawn_after = models.DecimalField(**HKD, default=ZERO)
    expected_lending_value_after = models.DecimalField(**HKD, default=ZERO)
    expected_utilisation_after = models.DecimalField(max_digits=12, decimal_places=4, default=ZERO)
    reaches_target = models.BooleanField(default=True)
    expected_shortfall = models.DecimalField(**HKD, default=ZERO, help_text=_("Left owing after every collateral is sold, at the plan's prices."))
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(default=timezone.now)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    FIELDS = ("state", "version", "target_utilisation", "drawn_at_plan", "lending_value_at_plan", "utilisation_at_plan",
              "expected_proceeds", "expected_fees", "expected_drawn_after", "expected_utilisation_after", "reaches_target",
              "expected_shortfall", "proposed_by", "approved_by", "note")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["call"], condition=Q(state__in=["proposed", "approved", "executing"]), name="one_live_plan_per_call"),
            models.UniqueConstraint(fields=["call", "version"], name="one_plan_version_per_call"),
        ]
        indexes = [models.Index(fields=["state", "-id"])]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        return f"LP-{self.pk:06d}" if self.pk else "LP-new"

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_PLAN_STATES

    @transition(field=state, source=PlanState.PROPOSED, target=PlanState.APPROVED)
    def approve(self, *, by, at):
        self.approved_by, self.approved_at = by, at

    @transition(field=state, source=PlanState.PROPOSED, target=PlanState.WITHDRAWN)
    def withdraw(self, *, at, note):
        self.finished_at, self.note = at, note

    @transition(field=state, source=PlanState.APPROVED, target=PlanState.EXECUTING)
    def start(self, *, at):
        self.started_at = at

    @transition(field=state, source=[PlanState.APPROVED, PlanState.EXECUTING], target=PlanState.COMPLETED)
    def complete(self, *, at):
        self.finished_at = at

    @transition(field=state, source=[PlanState.APPROVED, PlanState.EXECUTING], target=PlanState.AMENDED)
    def amend(self, *, at, note):
        self.finished_at, self.note = at, note


class LineStatus(models.TextChoices):
    PENDING = "pending", _("To sell")
    PARTIAL = "partial", _("Partly sold")
    FILLED = "filled", _("Sold")
    FAILED = "failed", _("Sale failed")
    HALTED = "halted", _("Market halted")
    CANCELLED = "cancelled", _("Cancelled by an amendment")


class LiquidationLine(models.Model):
    plan = models.ForeignKey(LiquidationPlan, on_delete=models.PROTECT, related_name="lines")
    sequence = models.PositiveSmallIntegerField()
    position = models.ForeignKey("lending.CollateralPosition", on_delete=models.PROTECT, related_name="+")
    instrument = models.ForeignKey("collateral.Instrument", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=12)
    kind = models.CharField(max_length=20)
    lot = models.DecimalField(**QTY)  # a board lot of a security, the policy's sale increment for VA
    held_at_plan = models.DecimalField(**QTY)
    planned_quantity = models.DecimalField(**QTY)
    filled_quantity = models.DecimalField(**QTY, default=ZERO)
    price_at_plan = models.DecimalField(max_digits=20, decimal_places=4)
    haircut = models.DecimalField(**RATIO)
    expected_proceeds = models.DecimalField(**HKD)
    proceeds = models.DecimalField(**HKD, default=ZERO)
    status = models.CharField(max_length=10, choices=LineStatus.choices, default=LineStatus.PENDING)

    class Meta:
        ordering = ["plan", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "sequence"], name="one_line_per_plan_sequence"),
            models.CheckConstraint(condition=Q(filled_quantity__lte=models.F("planned_quantity")), name="line_filled_within_planned"),
            models.CheckConstraint(condition=Q(planned_quantity__gt=0), name="line_planned_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.plan_id}#{self.sequence} {self.code} {self.planned_quantity}"

    @property
    def remaining(self) -> Decimal:
        return self.planned_quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return self.status not in (LineStatus.FILLED, LineStatus.CANCELLED)


class ExecutionStatus(models.TextChoices):
    FILLED = "filled", _("Filled")
    FAILED = "failed", _("Sale failed")
    HALTED = "halted", _("Market halted")


class Execution(models.Model):
    """One report from the dealing desk against a plan line (immutable)."""

    plan = models.ForeignKey(LiquidationPlan, on_delete=models.PROTECT, related_name="executions")
    line = models.ForeignKey(LiquidationLine, on_delete=models.PROTECT, related_name="executions")
    instrument = models.ForeignKey("collateral.Instrument", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=12)
    status = models.CharField(max_length=8, choices=ExecutionStatus.choices)
    quantity = models.DecimalField(**QTY, default=ZERO)
    price = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    gross = models.DecimalField(**HKD, default=ZERO)
    fee = models.DecimalField(**HKD, default=ZERO)
    applied = models.DecimalField(**HKD, default=ZERO, help_text=_("Proceeds applied to the drawn balance."))
    surplus = models.DecimalField(**HKD, default=ZERO, help_text=_("Proceeds beyond what was owed, returned to the client's account."))
    executed_at = models.DateTimeField()
    venue_reference = models.CharField(max_length=100, blank=True)
    note = models.TextField(blank=True)
    sale_entry = models.ForeignKey("lending.FacilityTransaction", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    fee_entry = models.ForeignKey("lending.FacilityTransaction", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    FIELDS = ("status", "code", "quantity", "price", "gross", "fee", "applied", "surplus", "executed_at", "venue_reference", "note")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "venue_reference"], condition=Q(status="filled"), name="one_fill_per_venue_reference"),
            models.CheckConstraint(condition=~Q(status="filled") | Q(quantity__gt=0, price__gt=0), name="fill_has_quantity_and_price"),
        ]

    def __str__(self) -> str:
        return f"{self.status} {self.quantity} {self.code}"


class AmendmentState(models.TextChoices):
    PROPOSED = "proposed", _("Awaiting a second person")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")


class PlanAmendment(ConcurrentTransitionMixin, models.Model):
    """A change to what is left to sell, with a reason: one person proposes, a credit manager approves."""

    plan = models.ForeignKey(LiquidationPlan, on_delete=models.PROTECT, related_name="amendments")
    state = FSMField(default=AmendmentState.PROPOSED, choices=AmendmentState.choices, protected=True)
    reason = models.TextField()
    # [{"line": id, "quantity": "…"}]: the quantity still to sell on each open line (0 drops it).
    quantities = models.JSONField()
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    new_plan = models.OneToOneField(LiquidationPlan, null=True, blank=True, on_delete=models.PROTECT, related_name="amended_from")

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["plan"], condition=Q(state="proposed"), name="one_pending_amendment_per_plan")]

    def __str__(self) -> str:
        return f"amendment {self.pk} of {self.plan_id}"

    @transition(field=state, source=AmendmentState.PROPOSED, target=AmendmentState.APPROVED)
    def approve(self, *, by, at, note):
        self.decided_by, self.decided_at, self.decision_note = by, at, note

    @transition(field=state, source=AmendmentState.PROPOSED, target=AmendmentState.REJECTED)
    def reject(self, *, by, at, note):
        self.decided_by, self.decided_at, self.decision_note = by, at, note


# --- Debt after sale -------------------------------------------------------------------------------------


class DebtState(models.TextChoices):
    OPEN = "open", _("Open")
    IN_COLLECTIONS = "in_collections", _("In collections")
    REPAID = "repaid", _("Repaid")
    WRITTEN_OFF = "written_off", _("Written off")
    RECOVERED = "recovered", _("Recovered after write-off")


LIVE_DEBT_STATES = (DebtState.OPEN, DebtState.IN_COLLECTIONS)


class Debt(ConcurrentTransitionMixin, models.Model):
    """The shortfall left on a facility after all its collateral was sold. The amount owed is the facility's
    drawn balance (the ledger is the truth); overdue interest accrues on it past ``due_on``."""

    facility = models.OneToOneField("lending.Facility", on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    plan = models.ForeignKey(LiquidationPlan, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    state = FSMField(default=DebtState.OPEN, choices=DebtState.choices, protected=True, db_index=True)
    principal_at_open = models.DecimalField(**HKD)
    opened_at = models.DateTimeField(default=timezone.now)
    due_on = models.DateField()
    collections_at = models.DateTimeField(null=True, blank=True)
    repaid_at = models.DateTimeField(null=True, blank=True)
    dunning_step = models.PositiveSmallIntegerField(default=0, help_text=_("The last dunning notice sent (days past due)."))
    # The write-off: a credit manager proposes with reasons, a second person approves.
    write_off_reason = models.TextField(blank=True)
    write_off_proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    write_off_proposed_at = models.DateTimeField(null=True, blank=True)
    written_off_amount = models.DecimalField(**HKD, default=ZERO)
    written_off_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    written_off_at = models.DateTimeField(null=True, blank=True)
    write_off_note = models.TextField(blank=True)
    write_off_entry = models.ForeignKey("lending.FacilityTransaction", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    recovered_total = models.DecimalField(**HKD, default=ZERO)
    recovered_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    FIELDS = ("state", "principal_at_open", "due_on", "dunning_step", "write_off_reason", "write_off_proposed_by", "written_off_amount",
              "written_off_by", "write_off_note", "recovered_total")

    class Meta:
        ordering = ["due_on", "id"]
        indexes = [models.Index(fields=["state", "due_on"])]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        return f"DBT-{self.pk:06d}" if self.pk else "DBT-new"

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_DEBT_STATES

    @transition(field=state, source=DebtState.OPEN, target=DebtState.IN_COLLECTIONS)
    def to_collections(self, *, at):
        self.collections_at = at

    @transition(field=state, source=[DebtState.OPEN, DebtState.IN_COLLECTIONS], target=DebtState.REPAID)
    def repaid(self, *, at):
        self.repaid_at = at

    @transition(field=state, source=[DebtState.OPEN, DebtState.IN_COLLECTIONS], target=DebtState.WRITTEN_OFF)
    def write_off(self, *, by, at, amount, note):
        self.written_off_by, self.written_off_at, self.written_off_amount, self.write_off_note = by, at, amount, note

    @transition(field=state, source=DebtState.WRITTEN_OFF, target=DebtState.RECOVERED)
    def recovered(self, *, at):
        self.recovered_at = at


class DunningNotice(models.Model):
    """A reminder sent to the client at a step of the policy's schedule (once per debt and step)."""

    debt = models.ForeignKey(Debt, on_delete=models.PROTECT, related_name="notices")
    step = models.PositiveSmallIntegerField()
    days_past_due = models.PositiveIntegerField()
    amount = models.DecimalField(**HKD)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-sent_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["debt", "step"], name="one_dunning_notice_per_step")]

    def __str__(self) -> str:
        return f"{self.debt_id} day {self.step}"


class Recovery(models.Model):
    """Cash received on a debt after it was written off (on the ledger as a recovery entry)."""

    debt = models.ForeignKey(Debt, on_delete=models.PROTECT, related_name="recoveries")
    amount = models.DecimalField(**HKD)
    reference = models.CharField(max_length=100)
    note = models.TextField(blank=True)
    final = models.BooleanField(default=False)
    entry = models.ForeignKey("lending.FacilityTransaction", on_delete=models.PROTECT, related_name="+")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = _("recoveries")
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="recovery_amount_positive")]

    def __str__(self) -> str:
        return f"recovery {self.amount} on {self.debt_id}"
