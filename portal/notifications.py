"""The one service for telling a user something: in-app and by email.

Callers pass lazily translated text (``gettext_lazy``) with format arguments;
it is rendered in the recipient's preferred language, not the caller's.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone, translation

from .models import Notification


def _render(text, params: dict | None) -> str:
    rendered = str(text)
    return rendered % params if params else rendered


@transaction.atomic
def notify(*, user, kind: str, title, body="", params: dict | None = None, link: str = "", email: bool = True) -> Notification:
    with translation.override(user.preferred_language):
        notification = Notification.objects.create(
            user=user,
            kind=kind,
            title=_render(title, params)[:200],
            body=_render(body, params),
            link=link,
        )
    if email:
        from .tasks import send_notification_email

        send_notification_email.delay_on_commit(notification.id)
    return notification


@transaction.atomic
def notifications_mark_read(*, user, ids: list[int] | None = None) -> int:
    """Mark the given (or all) unread notifications of ``user`` as read; returns how many."""
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(id__in=ids)
    return qs.update(read_at=timezone.now())


def notification_send_email(*, notification_id: int) -> bool:
    """Email one notification once. Returns False when it was already sent."""
    from django.conf import settings
    from django.core.mail import send_mail

    # Claim first with a conditional UPDATE so a redelivered task sends nothing.
    claimed = Notification.objects.filter(id=notification_id, emailed_at__isnull=True).update(
        emailed_at=timezone.now()
    )
    if not claimed:
        return False
    notification = Notification.objects.select_related("user").get(id=notification_id)
    body = notification.body
    if notification.link:
        body = f"{body}\n\n{settings.PORTAL_BASE_URL.rstrip('/')}{notification.link}"
    try:
        send_mail(
            subject=f"[VA Margin Portal] {notification.title}",
            message=body,
            from_email=None,
            recipient_list=[notification.user.email],
        )
    except Exception:
        # Release the claim so the retry can send it.
        Notification.objects.filter(id=notification_id).update(emailed_at=None)
        raise
    return True


@transaction.atomic
def notify_many(*, users, kind: str, title, body="", params: dict | None = None, link: str = "", email: bool = True) -> list[Notification]:
    """``notify`` for many recipients in a fixed number of queries (one bulk INSERT), for fan-outs.

    Each notification is still rendered in its recipient's language; ``params``
    values may be objects whose ``str()`` depends on the active language.
    """
    rows = []
    for user in users:
        with translation.override(user.preferred_language):
            rows.append(Notification(user=user, kind=kind, title=_render(title, params)[:200], body=_render(body, params), link=link))
    created = Notification.objects.bulk_create(rows)
    if email:
        from .tasks import send_notification_email

        for notification in created:
            send_notification_email.delay_on_commit(notification.id)
    return created
