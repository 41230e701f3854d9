"""Compliance registers: capital, the SMF control pack, deviations, complaints, record requests, disposals.

Everything here is a regulated record: it changes only through ``services`` (each change audited in
its transaction), and the stored packs and record archives are immutable once written.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from lending.models import HKD, MakerCheckerPolicy

MULTIPLE = {"max_digits": 6, "decimal_places": 2}


class ControlArea(models.TextChoices):
    """The seven control areas of the SFC Guidelines for Securities Margin Financing Activities."""

    TOTAL_LOANS = "total_loans", _("Total margin loans against capital")
    CREDIT_LIMITS = "credit_limits", _("Client credit limits")
    COLLATERAL_CONCENTRATION = "collateral_concentration", _("Collateral concentration")
    CLIENT_CONCENTRATION = "client_concentration", _("Client concentration")
    HAIRCUTS = "haircuts", _("Haircuts")
    MARGIN_CALLS = "margin_calls", _("Margin calls and forced liquidation")
    STRESS_TESTING = "stress_testing", _("Stress testing")


class CapitalEntry(MakerCheckerPolicy):
    """The firm's liquid capital (Financial Resources Rules) as at a date, as finance reported it.

    A credit manager enters the figure from finance's return (maker); a compliance officer other than
    the maker approves it (checker). The approved entry with the latest ``as_of`` on or before a date is
    the capital of that date; earlier entries stay as ``superseded``, so a past pack can be re-derived.
    """

    as_of = models.DateField(_("as at"))
    liquid_capital = models.DecimalField(_("liquid capital (HKD)"), **HKD, validators=[MinValueValidator(Decimal("0.01"))])
    ceiling_multiple = models.DecimalField(
        _("policy ceiling (× liquid capital)"), **MULTIPLE, default=Decimal("5.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("Total margin loans may not exceed this multiple of liquid capital (SMF Guidelines benchmark: 5×)."),
    )
    source_reference = models.CharField(_("source (e.g. the FRR return)"), max_length=200)

    class Meta:
        ordering = ["-as_of", "-version"]
        verbose_name = _("liquid-capital entry")
        verbose_name_plural = _("liquid-capital entries")
        constraints = [
            models.CheckConstraint(condition=Q(liquid_capital__gt=0), name="capital_positive"),
            models.CheckConstraint(condition=Q(ceiling_multiple__gt=0) & Q(ceiling_multiple__lte=5), name="capital_ceiling_at_most_benchmark"),
        ]

    def __str__(self) -> str:
        return f"Capital v{self.version} {self.as_of} HK${self.liquid_capital:,}"


class ImmutableQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("Stored reports are immutable.")

    def delete(self):
        raise PermissionError("Stored reports are immutable.")


class SmfPack(models.Model):
    """One generated SMF control pack: its figures as canonical JSON, its XLSX (and PDF), each with SHA-256.

    Never updated: regenerating a period stores a new version beside the old one.
    """

    class Kind(models.TextChoices):
        MONTHLY = "monthly", _("Monthly (scheduled)")
        ON_DEMAND = "on_demand", _("On demand")

    kind = models.CharField(max_length=10, choices=Kind.choices)
    period_start = models.DateField()
    as_of = models.DateField(db_index=True)
    version = models.PositiveIntegerField()
    generated_at = models.DateTimeField(default=timezone.now)
    generated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    data = models.JSONField()
    data_sha256 = models.CharField(max_length=64)
    xlsx = models.BinaryField()
    xlsx_sha256 = models.CharField(max_length=64)
    pdf = models.BinaryField(null=True, blank=True)
    pdf_sha256 = models.CharField(max_length=64, blank=True)

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        ordering = ["-as_of", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["as_of", "version"], name="one_pack_version_per_date"),
            # The scheduled job stores one monthly pack per month, however often it runs.
            models.UniqueConstraint(fields=["period_start"], condition=Q(kind="monthly"), name="one_monthly_pack_per_month"),
        ]

    def __str__(self) -> str:
        return f"SMF pack {self.as_of} v{self.version}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Stored reports are immutable.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Stored reports are immutable.")


class DeviationState(models.TextChoices):
    PROPOSED = "proposed", _("Awaiting approval")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    RETIRED = "retired", _("Retired")


class Deviation(ConcurrentTransitionMixin, models.Model):
    """Where the firm departs from an SMF Guidelines benchmark, why, and what controls the risk instead."""

    area = models.CharField(_("control area"), max_length=30, choices=ControlArea.choices)
    benchmark = models.CharField(_("benchmark departed from"), max_length=300)
    departure = models.TextField(_("the departure"))
    justification = models.TextField(_("justification"))
    compensating_control = models.TextField(_("compensating control"))
    review_date = models.DateField(_("next review"))
    state = FSMField(default=DeviationState.PROPOSED, choices=DeviationState.choices, protected=True, db_index=True)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    retired_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    retired_at = models.DateTimeField(null=True, blank=True)
    retire_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-proposed_at", "-id"]

    def __str__(self) -> str:
        return f"DEV-{self.pk} {self.get_area_display()}"

    @property
    def reference(self) -> str:
        return f"DEV-{self.pk}"

    @transition(field=state, source=DeviationState.PROPOSED, target=DeviationState.APPROVED)
    def approve(self, *, by, at, note=""):
        self.decided_by, self.decided_at, self.decision_note = by, at, note

    @transition(field=state, source=DeviationState.PROPOSED, target=DeviationState.REJECTED)
    def reject(self, *, by, at, note=""):
        self.decided_by, self.decided_at, self.decision_note = by, at, note

    @transition(field=state, source=DeviationState.APPROVED, target=DeviationState.RETIRED)
    def retire(self, *, by, at, reason):
        self.retired_by, self.retired_at, self.retire_reason = by, at, reason


class ComplaintChannel(models.TextChoices):
    PORTAL = "portal", _("Client portal")
    EMAIL = "email", _("Email")
    PHONE = "phone", _("Telephone")
    LETTER = "letter", _("Letter")
    IN_PERSON = "in_person", _("In person")
    REGULATOR = "regulator", _("Referred by a regulator")


class ComplaintState(models.TextChoices):
    OPEN = "open", _("Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    ESCALATED = "escalated", _("Escalated")
    CLOSED = "closed", _("Closed")


class ComplaintOutcome(models.TextChoices):
    UPHELD = "upheld", _("Upheld")
    PARTLY_UPHELD = "partly_upheld", _("Partly upheld")
    NOT_UPHELD = "not_upheld", _("Not upheld")
    WITHDRAWN = "withdrawn", _("Withdrawn by the complainant")


class Complaint(ConcurrentTransitionMixin, models.Model):
    """A complaint received by any channel, handled by someone not involved in the matter.

    Deadlines are firm policy in Hong Kong business days from receipt (``reporting.policy``).
    """

    client = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="complaints")
    complainant_name = models.CharField(_("complainant"), max_length=200)
    complainant_contact = models.CharField(_("contact"), max_length=200, blank=True)
    channel = models.CharField(_("channel"), max_length=12, choices=ComplaintChannel.choices)
    received_at = models.DateTimeField(_("received at"))
    subject = models.CharField(_("subject"), max_length=200)
    details = models.TextField(_("details"))
    logged_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    logged_at = models.DateTimeField(default=timezone.now)
    # Staff the complaint is about, or who acted in the matter: never its handler.
    staff_involved = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    state = FSMField(default=ComplaintState.OPEN, choices=ComplaintState.choices, protected=True, db_index=True)
    assigned_to = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    assigned_at = models.DateTimeField(null=True, blank=True)
    acknowledge_due = models.DateTimeField()
    answer_due = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledgement_text = models.TextField(blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    escalation_reason = models.TextField(blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    outcome = models.CharField(_("outcome"), max_length=16, choices=ComplaintOutcome.choices, blank=True)
    outcome_text = models.TextField(_("answer given"), blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"CMP-{self.pk} {self.subject}"

    @property
    def reference(self) -> str:
        return f"CMP-{self.pk}"

    @transition(field=state, source=[ComplaintState.OPEN], target=ComplaintState.ACKNOWLEDGED)
    def acknowledge(self, *, at, text):
        self.acknowledged_at, self.acknowledgement_text = at, text

    @transition(field=state, source=[ComplaintState.OPEN, ComplaintState.ACKNOWLEDGED], target=ComplaintState.ESCALATED)
    def escalate(self, *, at, reason):
        self.escalated_at, self.escalation_reason = at, reason

    @transition(field=state, source=[ComplaintState.ACKNOWLEDGED, ComplaintState.ESCALATED], target=ComplaintState.CLOSED)
    def close(self, *, by, at, outcome, text):
        self.closed_by, self.closed_at, self.outcome, self.outcome_text = by, at, outcome, text


class RecordRequest(models.Model):
    """A data-access request: every record about one client in one ZIP with a SHA-256 manifest."""

    class Basis(models.TextChoices):
        CLIENT = "client", _("The client's data-access request")
        REGULATOR = "regulator", _("A regulator's request")

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    basis = models.CharField(_("basis"), max_length=10, choices=Basis.choices)
    reference = models.CharField(_("request reference"), max_length=100)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    archive = models.BinaryField()
    archive_sha256 = models.CharField(max_length=64)
    manifest_sha256 = models.CharField(max_length=64)
    files = models.PositiveIntegerField(default=0)
    downloads = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"REQ-{self.pk} client {self.client_id}"


class DisposalState(models.TextChoices):
    REQUESTED = "requested", _("Awaiting approval")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")


class DisposalRequest(ConcurrentTransitionMixin, models.Model):
    """A request to dispose of records past their retention period, approved by a second person.

    Approval records the decision only: the portal never deletes a regulated record itself.
    """

    record_type = models.CharField(max_length=60)
    record_ids = models.JSONField()
    reason = models.TextField()
    state = FSMField(default=DisposalState.REQUESTED, choices=DisposalState.choices, protected=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"DSP-{self.pk} {self.record_type} ({len(self.record_ids)})"

    @transition(field=state, source=DisposalState.REQUESTED, target=DisposalState.APPROVED)
    def approve(self, *, by, at, note=""):
        self.decided_by, self.decided_at, self.decision_note = by, at, note

    @transition(field=state, source=DisposalState.REQUESTED, target=DisposalState.REJECTED)
    def reject(self, *, by, at, note=""):
        self.decided_by, self.decided_at, self.decision_note = by, at, note


class GroupBasis(models.TextChoices):
    COMMON_CONTROL = "common_control", _("Common control")
    FAMILY = "family", _("Family")
    CORPORATE_GROUP = "corporate_group", _("Corporate group")
    GUARANTOR = "guarantor", _("Guarantor or security provider")
    OTHER = "other", _("Other economic connection")


class RelatedClientGroup(models.Model):
    """Clients the firm treats as one exposure for concentration (SMF Guidelines: a client and its related
    clients). The group itself counts nothing: only its approved memberships, each dated."""

    name = models.CharField(_("group name"), max_length=200, unique=True)
    basis = models.CharField(_("basis"), max_length=20, choices=GroupBasis.choices)
    description = models.TextField(_("why these clients are one risk"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("related-client group")
        verbose_name_plural = _("related-client groups")

    def __str__(self) -> str:
        return f"GRP-{self.pk} {self.name}"

    @property
    def reference(self) -> str:
        return f"GRP-{self.pk}"


class MembershipState(models.TextChoices):
    PROPOSED = "proposed", _("Awaiting approval")
    ACTIVE = "active", _("In the group")
    REJECTED = "rejected", _("Rejected")
    ENDED = "ended", _("Left the group")


class GroupMembership(ConcurrentTransitionMixin, models.Model):
    """One client in one group from a date: proposed by one person, approved by another (maker-checker);
    leaving is proposed and approved the same way. A membership counts in a report of day D when it was
    approved by the end of D, took effect on or before D, and had not ended (approved) on or before D."""

    group = models.ForeignKey(RelatedClientGroup, on_delete=models.PROTECT, related_name="memberships")
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    relationship = models.CharField(_("relationship"), max_length=200, help_text=_("e.g. director and majority shareholder; spouse; guarantor of the facility"))
    reason = models.TextField(_("evidence and reason"))
    effective_from = models.DateField(_("in the group from"))
    state = FSMField(default=MembershipState.PROPOSED, choices=MembershipState.choices, protected=True, db_index=True)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    end_on = models.DateField(_("left the group on"), null=True, blank=True)
    end_reason = models.TextField(_("why the link ended"), blank=True)
    end_proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    end_proposed_at = models.DateTimeField(null=True, blank=True)
    end_decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    end_decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["group_id", "effective_from", "id"]
        constraints = [
            models.UniqueConstraint(fields=["group", "client"], condition=Q(state__in=["proposed", "active"]), name="one_live_membership_per_client_group"),
        ]

    def __str__(self) -> str:
        return f"GRP-{self.group_id} client {self.client_id} ({self.state})"

    @property
    def end_pending(self) -> bool:
        return self.state == MembershipState.ACTIVE and self.end_proposed_at is not None

    @transition(field=state, source=MembershipState.PROPOSED, target=MembershipState.ACTIVE)
    def approve(self, *, by, at, note=""):
        self.decided_by, self.decided_at, self.decision_note = by, at, note

    @transition(field=state, source=MembershipState.PROPOSED, target=MembershipState.REJECTED)
    def reject(self, *, by, at, note=""):
        self.decided_by, self.decided_at, self.decision_note = by, at, note

    @transition(field=state, source=MembershipState.ACTIVE, target=MembershipState.ENDED)
    def end(self, *, by, at):
        self.end_decided_by, self.end_decided_at = by, at
