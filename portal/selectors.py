"""Reads for the portal shell: audit trail, notifications."""

from __future__ import annotations

from datetime import date

from django.db.models import Q, QuerySet
from django.urls import NoReverseMatch, reverse

from .models import AuditEvent, Notification

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
