from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .permissions import PERMISSION_LABELS, STAFF_ROLES, Role


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class Language(models.TextChoices):
    ENGLISH = "en", _("English")
    TRADITIONAL_CHINESE = "zh-hant", _("Traditional Chinese")


class User(AbstractUser):
    """A person who signs in: a client or a member of staff, with email as the login.

    A user's role is one of the groups named in ``portal.permissions.Role``.
    """

    username = None
    email = models.EmailField(_("email address"), unique=True)
    full_name = models.CharField(_("full name"), max_length=200, blank=True)
    preferred_language = models.CharField(
        _("preferred language"), max_length=10, choices=Language.choices, default=Language.ENGLISH
    )
    authority_limit = models.DecimalField(
        _("authority limit (HKD)"),
        max_digits=16,
        decimal_places=2,
        default=Decimal("5000000.00"),
        help_text=_("The largest facility limit this officer may approve alone."),
    )

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        permissions = [(perm.codename, label) for perm, label in PERMISSION_LABELS.items()]

    def __str__(self) -> str:
        return self.full_name or self.email

    @property
    def role_names(self) -> set[str]:
        # Cached on the instance: templates ask several times per page.
        if not hasattr(self, "_role_names"):
            self._role_names = set(self.groups.values_list("name", flat=True))
        return self._role_names

    def has_perm(self, perm, obj=None) -> bool:
        """Django's answer, kept on the instance for checks without an object: a page asks the same permission
        for its menu, its panels and its rows, and each ask walks every authentication backend (Django already
        keeps the permission sets themselves on the instance). ``forget_roles`` drops both."""
        if obj is not None:
            return super().has_perm(perm, obj)
        key = (perm, self.is_active, self.is_superuser)
        memo = self.__dict__.setdefault("_has_perm", {})
        if key not in memo:
            memo[key] = super().has_perm(perm)
        return memo[key]

    def forget_roles(self) -> None:
        """After a change of roles: the next ask reads the roles and permissions again."""
        for name in ("_role_names", "_has_perm", "_perm_cache", "_user_perm_cache", "_group_perm_cache"):
            self.__dict__.pop(name, None)

    @property
    def role_labels(self) -> list[str]:
        """The user's roles in words, in the active language."""
        return [Role(name).label for name in sorted(self.role_names) if name in Role._value2member_map_]

    def has_role(self, role: Role) -> bool:
        return role.value in self.role_names

    @property
    def is_client(self) -> bool:
        return Role.CLIENT.value in self.role_names

    @property
    def is_portal_staff(self) -> bool:
        """A member of staff in the portal's sense (officer, credit manager, compliance, admin)."""
        return bool(self.role_names & {r.value for r in STAFF_ROLES})


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("The audit trail is append-only: rows cannot be updated.")

    def delete(self):
        raise PermissionError("The audit trail is append-only: rows cannot be deleted.")

    # bulk_update goes through update(); bulk_create would skip the hash chain.
    def bulk_create(self, *args, **kwargs):
        raise PermissionError("Write audit rows through portal.audit.audit_log().")


AUDIT_CANONICAL_FIELDS = ("created_at", "actor_id", "actor_label", "action", "object_type", "object_id", "object_repr", "before", "after",
                          "ip_address", "user_agent", "prev_hash")


def audit_canonical(values: dict) -> str:
    """The exact text an audit row's hash covers, from the row's values (``created_at`` as ISO 8601; other keys of
    ``values`` are left out). Changing it breaks every existing chain."""
    return json.dumps({name: values[name] for name in AUDIT_CANONICAL_FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class AuditEvent(models.Model):
    """One regulated change: who did what to which record, before and after.

    Rows are append-only (refused by the ORM here and, on PostgreSQL, by a
    trigger) and hash-chained: each row's hash covers its content and the
    previous row's hash, so ``manage.py audit_verify`` detects any edit.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=254, help_text="Email of the actor, or 'system'.")
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=100)  # the composite index leads with it
    object_id = models.CharField(max_length=64, db_index=True, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["object_type", "object_id", "id"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("The audit trail is append-only: rows cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The audit trail is append-only: rows cannot be deleted.")

    def canonical(self) -> str:
        """The exact text the hash covers (``audit_canonical``)."""
        return audit_canonical({
            "created_at": self.created_at.isoformat(), "actor_id": self.actor_id, "actor_label": self.actor_label, "action": self.action,
            "object_type": self.object_type, "object_id": self.object_id, "object_repr": self.object_repr, "before": self.before,
            "after": self.after, "ip_address": self.ip_address, "user_agent": self.user_agent, "prev_hash": self.prev_hash,
        })

    def compute_hash(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()


class NotificationCategory(models.TextChoices):
    """What a notification is about: the unit a client chooses channels for."""

    MARGIN_CALL = "margin_call", _("Margin calls")
    WARNING = "warning", _("Early warnings before a margin call")
    CONFIRMATION = "confirmation", _("Confirmations of drawdowns, repayments and collateral movements")
    STATEMENT = "statement", _("Statements")
    ACCOUNT = "account", _("Account, applications and documents")


class ChannelKind(models.TextChoices):
    IN_APP = "in_app", _("In the portal")
    EMAIL = "email", _("Email")
    WEBHOOK = "webhook", _("SMS or push (broker gateway)")


# Channels a client can switch per category; the portal inbox always keeps every notification.
OPTIONAL_CHANNELS = (ChannelKind.EMAIL, ChannelKind.WEBHOOK)
# Categories whose notifications go to every channel the user has, whatever the preferences say.
ALWAYS_ALL_CHANNELS = (NotificationCategory.MARGIN_CALL,)


class Notification(models.Model):
    """An in-app notification and the record of what was sent (``title``/``body`` as rendered then).

    ``title_source``/``body_source`` and ``params`` keep the untranslated text and its arguments, so the
    inbox renders it in the reader's current language. Deliveries to other channels are
    ``NotificationDelivery`` rows.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=60)
    category = models.CharField(max_length=20, choices=NotificationCategory.choices, default=NotificationCategory.ACCOUNT)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    title_source = models.JSONField(null=True, blank=True)
    body_source = models.JSONField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True)
    link = models.CharField(max_length=300, blank=True)
    # The task the notification asks for ("lending.application.42.accept"); the service that completes
    # the task resolves it.
    task_key = models.CharField(max_length=120, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "read_at"]),
            models.Index(fields=["user", "task_key"], condition=~models.Q(task_key=""), name="notification_task_key"),
        ]

    def __str__(self) -> str:
        return self.title


class NotificationChannel(models.Model):
    """A user's address on an external channel: the broker's SMS or push gateway (a signed webhook).

    Deactivated, never deleted: deliveries keep pointing at the address they went to.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_channels")
    kind = models.CharField(max_length=20, choices=[(ChannelKind.WEBHOOK.value, ChannelKind.WEBHOOK.label)], default=ChannelKind.WEBHOOK)
    label = models.CharField(_("label"), max_length=80)
    # What the gateway needs to reach the user: a phone number for SMS, a device token for push.
    address = models.CharField(_("phone number or device"), max_length=200)
    # Blank: the broker's gateway (settings.NOTIFICATION_WEBHOOK_URL).
    url = models.URLField(_("gateway URL"), max_length=300, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["user", "active"])]

    def __str__(self) -> str:
        return f"{self.label} ({self.address})"


class NotificationPreference(models.Model):
    """A user's choice for one category on one optional channel. No row: the channel is on."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences")
    category = models.CharField(max_length=20, choices=NotificationCategory.choices)
    channel = models.CharField(max_length=20, choices=ChannelKind.choices)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "category", "channel"], name="uniq_notification_preference")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.category}/{self.channel}={self.enabled}"


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    DELIVERED = "delivered", _("Delivered")
    RETRYING = "retrying", _("Retrying")
    FAILED = "failed", _("Failed")


class NotificationDelivery(models.Model):
    """One notification on one external channel: claimed by a conditional UPDATE, so it is sent once."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=20, choices=ChannelKind.choices)
    endpoint = models.ForeignKey(NotificationChannel, null=True, blank=True, on_delete=models.PROTECT, related_name="deliveries")
    state = models.CharField(max_length=12, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["notification", "channel"], condition=models.Q(endpoint__isnull=True), name="uniq_delivery_channel"),
            models.UniqueConstraint(fields=["notification", "endpoint"], condition=models.Q(endpoint__isnull=False), name="uniq_delivery_endpoint"),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"delivery {self.pk} {self.channel} {self.state}"


class IdempotencyKey(models.Model):
    """A stored response for a POST carrying an Idempotency-Key header.

    A retried request with the same key and body gets the first response back
    instead of creating a second money-moving or regulated record.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=100)
    scope = models.CharField(max_length=100)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "scope", "key"], name="uniq_idempotency_key")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"


class JobHeartbeat(models.Model):
    """When one periodic job (a beat schedule entry) last ran, for /healthz and the workbench.

    Written by the worker after each run that beat sent (``portal.scheduling``);
    ``registered_at`` is when the job was first declared, so a job on a fresh
    deployment is judged from then, not from the epoch.
    """

    name = models.CharField(max_length=200, unique=True)
    task = models.CharField(max_length=200)
    registered_at = models.DateTimeField(default=timezone.now)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    successes = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
