"""Reads for the portal shell: audit trail, notifications."""

from __future__ import annotations

from datetime import date

from django.db.models import Q, QuerySet
from django.urls import NoReverseMatch, reverse

from .models import (
    ALWAYS_ALL_CHANNELS,
    OPTIONAL_CHANNELS,
    AuditEvent,
    Notification,
    NotificationCategory,
    NotificationChannel,
    NotificationDelivery,
    NotificationPreference,
)

# Machine housekeeping the system writes many times an hour: price loads from the feeds and the
# whole-book revaluation runs. Hidden from the audit trail unless asked for; a person's price entry
# (an actor) is never noise.
SYSTEM_NOISE_ACTIONS = ("lending.price.loaded", "risk.book.revalued", "risk.quote.entered")

# object_type → (URL name, "id" or "pk"): the page of the record an audit row is about. Apps add theirs.
_RECORD_LINKS: dict[str, str] = {}


def register_record_link(object_type: str, url_name: str) -> None:
    _RECORD_LINKS[object_type] = url_name


def record_link(object_type: str, object_id: str) -> str:
    """The staff page of the record an audit row is about, or "" when it has none."""
    name = _RECORD_LINKS.get(object_type)
    if not name or not str(object_id).isdigit():
        return ""
    try:
        return reverse(name, args=[int(object_id)])
    except NoReverseMatch:
        return ""


def audit_events(
    *,
    actor: str = "",
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    since: date | None = None,
    until: date | None = None,
    include_system: bool = True,
) -> QuerySet[AuditEvent]:
    """The trail newest first. ``action`` matches anywhere in the action ("approved", "margin_call");
    dates are Hong Kong calendar days; ``include_system=False`` hides the feeds' and engine's housekeeping."""
    qs = AuditEvent.objects.all()
    if not include_system:
        qs = qs.exclude(Q(actor__isnull=True) & Q(action__in=SYSTEM_NOISE_ACTIONS))
    if actor:
        qs = qs.filter(actor_label__icontains=actor)
    if action:
        qs = qs.filter(action__icontains=action.strip())
    if object_type:
        qs = qs.filter(object_type=object_type)
    if object_id:
        qs = qs.filter(object_id=object_id)
    if since:
        qs = qs.filter(created_at__date__gte=since)
    if until:
        qs = qs.filter(created_at__date__lte=until)
    return qs.order_by("-id")


def audit_history(*, obj) -> QuerySet[AuditEvent]:
    """Every audit row about one record, newest first."""
    return AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk)).order_by("-id")


def notifications_for(*, user) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user).order_by("-created_at", "-id")


def notifications_open_task(*, user, task_key: str) -> bool:
    """Whether ``user`` still has an unresolved notification asking for ``task_key``."""
    return Notification.objects.filter(user=user, task_key=task_key, resolved_at__isnull=True).exists()


def notification_preferences(*, user) -> dict[str, dict[str, bool]]:
    """{category: {channel: on}} for every category and optional channel (no row: on). One query."""
    stored = {(c, ch): on for c, ch, on in NotificationPreference.objects.filter(user=user).values_list("category", "channel", "enabled")}
    return {
        category: {ch.value: True if category in ALWAYS_ALL_CHANNELS else stored.get((category, ch.value), True) for ch in OPTIONAL_CHANNELS}
        for category in NotificationCategory.values
    }


def notification_preference_rows(*, user) -> list[dict]:
    """The preferences page's table: each category with its label, whether it may be switched off, and
    each optional channel's state. One query."""
    prefs = notification_preferences(user=user)
    return [
        {"category": value, "label": label, "locked": value in ALWAYS_ALL_CHANNELS,
         "channels": [{"channel": ch.value, "label": ch.label, "enabled": prefs[value][ch.value]} for ch in OPTIONAL_CHANNELS]}
        for value, label in NotificationCategory.choices
    ]


def notification_channels(*, user, active_only: bool = False) -> QuerySet[NotificationChannel]:
    qs = NotificationChannel.objects.filter(user=user)
    return qs.filter(active=True) if active_only else qs.order_by("-active", "id")


def notification_deliveries(*, user=None, state: str = "") -> QuerySet[NotificationDelivery]:
    """Deliveries newest first, with their notification and address (for the inbox's delivery status)."""
    qs = NotificationDelivery.objects.select_related("notification", "endpoint")
    if user is not None:
        qs = qs.filter(notification__user=user)
    if state:
        qs = qs.filter(state=state)
    return qs.order_by("-id")
