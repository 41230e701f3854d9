"""Reads for the portal shell: audit trail, notifications."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from django.db.models import Q, QuerySet
from django.urls import NoReverseMatch

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
from .navigation import id_url

# Machine housekeeping the system writes many times an hour: price loads from the feeds, the reference prices
# they move and the whole-book revaluation runs. Hidden from the audit trail unless asked for; a person's price
# entry (an actor) is never noise.
SYSTEM_NOISE_ACTIONS = ("lending.price.loaded", "risk.book.revalued", "risk.quote.entered", "risk.reference_price.changed")

# object_type → (URL name, "id" or "pk"): the page of the record an audit row is about. Apps add theirs.
_RECORD_LINKS: dict[str, str] = {}


def register_record_link(object_type: str, url_name: str) -> None:
    _RECORD_LINKS[object_type] = url_name


def record_link(object_type: str, object_id: str) -> str:
    """The staff page of the record an audit row is about, or "" when it has none."""
    return record_linker()(object_type, object_id)


def record_linker(*, reader=None) -> Callable[[str, str], str]:
    """``record_link`` for a page of rows: each record type's URL reversed once (per page, not per row).
    With ``reader``, a record type whose page the reader may not open (``portal.access.may_open``, asked once
    per type: one view answers for every record of a type) is not linked."""
    from .access import id_url_if_open

    urls: dict[str, Callable[[int], str] | None] = {}

    def link(object_type: str, object_id: str) -> str:
        if not str(object_id).isdigit():
            return ""
        if object_type not in urls:
            name = _RECORD_LINKS.get(object_type)
            try:
                urls[object_type] = (id_url(name) if reader is None else id_url_if_open(reader, name)) if name else None
            except NoReverseMatch:
                urls[object_type] = None
        url = urls[object_type]
        return url(int(object_id)) if url is not None else ""

    return link


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


@dataclass
class KeysetPage:
    """One page of a newest-first list, found by id rather than by counting: the cost of a page
    does not grow with the length of the trail (a COUNT(*) over a million rows would)."""

    object_list: list
    older_than: int | None  # the id to continue from ("Older"), if there is more
    newer_than: int | None  # the id to go back from ("Newer"), unless this is the newest page

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self):
        return len(self.object_list)

    def __getitem__(self, i):
        return self.object_list[i]

    @property
    def has_other_pages(self) -> bool:
        return self.older_than is not None or self.newer_than is not None


def keyset_page(qs: QuerySet, *, before: int | None = None, after: int | None = None, size: int = 50) -> KeysetPage:
    """The page of ``qs`` (ordered newest first by id) just older than ``before``, or just newer than ``after``.
    One query: ``size + 1`` rows tell whether there is more."""
    if after is not None:
        rows = list(qs.filter(id__gt=after).order_by("id")[: size + 1])
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        return KeysetPage(rows, rows[-1].id if rows else None, rows[0].id if rows and more_newer else None)
    if before is not None:
        qs = qs.filter(id__lt=before)
    rows = list(qs[: size + 1])
    older = rows[size - 1].id if len(rows) > size else None
    rows = rows[:size]
    return KeysetPage(rows, older, rows[0].id if rows and before is not None else None)


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
