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
    object_type = models.CharField(max_length=100, db_index=True)
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
        """The exact text the hash covers. Changing it breaks every existing chain."""
        return json.dumps(
            {
                "created_at": self.created_at.isoformat(),
                "actor_id": self.actor_id,
                "actor_label": self.actor_label,
                "action": self.action,
                "object_type": self.object_type,
                "object_id": self.object_id,
                "object_repr": self.object_repr,
                "before": self.before,
                "after": self.after,
                "ip_address": self.ip_address,
                "user_agent": self.user_agent,
                "prev_hash": self.prev_hash,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def compute_hash(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()


class Notification(models.Model):
    """An in-app notification; the email copy is sent by a task after commit."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=60)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"])]

    def __str__(self) -> str:
        return self.title


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
