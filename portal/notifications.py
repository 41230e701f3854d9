"""The one service for telling a user something: in the portal, by email, and through the broker's
SMS/push gateway (a signed webhook).

Callers pass lazily translated text (``gettext_lazy``) with format arguments. Each notification is
rendered in the recipient's preferred language when it is sent (the stored ``title``/``body``: the
record of what was sent), and keeps the untranslated source and arguments so the inbox renders it in
the reader's current language.

Every notification is kept in the portal inbox. Email and the webhook are optional channels, chosen
per category (``NotificationPreference``); margin calls go to every channel the user has. Each
notification × external channel is one ``NotificationDelivery`` row, claimed with a conditional
UPDATE before anything is sent, so a redelivered or duplicated task sends nothing twice; every
outcome (delivered, retrying, failed) is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext, pgettext
from django.utils.translation import gettext_lazy as _

from .models import (
    ALWAYS_ALL_CHANNELS,
    OPTIONAL_CHANNELS,
    ChannelKind,
    DeliveryState,
    Notification,
    NotificationCategory,
    NotificationChannel,
    NotificationDelivery,
    NotificationPreference,
)

logger = logging.getLogger(__name__)

# kind prefix → category, for callers that do not name one. The longest matching prefix wins.
_KIND_CATEGORIES = {
    "risk.margin_call": NotificationCategory.MARGIN_CALL,
    "risk.warning": NotificationCategory.WARNING,
    "lending.confirmation": NotificationCategory.CONFIRMATION,
    "collateral.confirmation": NotificationCategory.CONFIRMATION,
    "servicing.statement": NotificationCategory.STATEMENT,
    "servicing.request": NotificationCategory.CONFIRMATION,
    "recovery.execution": NotificationCategory.CONFIRMATION,
}

# Deliveries enqueued per task message: a fan-out of 100,000 is 500 messages, not 100,000.
DELIVERY_BATCH = 200
# Rows per INSERT in a fan-out: keeps each statement's parameters well under PostgreSQL's 65,535.
INSERT_BATCH = 2000
MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
# A delivery claimed this long ago by a worker that died is claimed again.
CLAIM_LEASE = timedelta(minutes=10)


def category_for_kind(kind: str) -> str:
    best = ""
    for prefix in _KIND_CATEGORIES:
        if (kind == prefix or kind.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return _KIND_CATEGORIES[best] if best else NotificationCategory.ACCOUNT


# --- Text: rendered now for the record, kept as source for reading later ----------------------------


def _source(text):
    """The untranslated form of ``text``: {"g": msgid} / {"p": [context, msgid]} for lazy translations,
    {"s": text} for plain text (shown as it is)."""
    if isinstance(text, Promise):
        func, args, kwargs = text.__reduce__()[1][:3]
        name = getattr(func, "__name__", "")
        if name == "gettext" and len(args) == 1 and not kwargs:
            return {"g": str(args[0])}
        if name == "pgettext" and len(args) == 2 and not kwargs:
            return {"p": [str(args[0]), str(args[1])]}
    return {"s": str(text)}


def _translated(source) -> str:
    if "g" in source:
        return gettext(source["g"])
    if "p" in source:
        return pgettext(*source["p"])
    return source.get("s", "")


def _stored_params(params: dict | None) -> dict:
    """``params`` as JSON: lazy translations by their source; an object whose text follows the active
    language (e.g. a bilingual document title) as its text in every portal language."""
    stored = {}
    for key, value in (params or {}).items():
        if isinstance(value, Promise):
            stored[key] = {"__text__": _source(value)}
        elif isinstance(value, str | int | bool) or value is None:
            stored[key] = value
        elif isinstance(value, Decimal | float):
            stored[key] = str(value)
        else:
            texts = {}
            for code, _name in settings.LANGUAGES:
                with translation.override(code):
                    texts[code] = str(value)
            stored[key] = {"__by_language__": texts}
    return stored


def _params_for_reading(stored: dict, language: str) -> dict:
    out = {}
    for key, value in (stored or {}).items():
        if isinstance(value, dict) and "__text__" in value:
            out[key] = _translated(value["__text__"])
        elif isinstance(value, dict) and "__by_language__" in value:
            texts = value["__by_language__"]
            out[key] = texts.get(language) or next(iter(texts.values()), "")
        else:
            out[key] = value
    return out


def _render(text, params: dict | None) -> str:
    rendered = str(text)
    return rendered % params if params else rendered


def notification_text(notification: Notification, *, language: str | None = None) -> tuple[str, str]:
    """(title, body) of ``notification`` in ``language`` (default: the active one) from its source and
    arguments; the stored text when there is no source (older rows) or the source no longer formats."""
    if not notification.title_source:
        return notification.title, notification.body
    language = language or translation.get_language() or settings.LANGUAGE_CODE
    with translation.override(language):
        try:
            params = _params_for_reading(notification.params, language)
            title = _render(_translated(notification.title_source), params)[:200]
            body = _render(_translated(notification.body_source), params) if notification.body_source else ""
        except (KeyError, TypeError, ValueError):
            return notification.title, notification.body
    return title, body


# --- Creating notifications ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """One recipient of a fan-out with their own arguments, link and task (``notify_many(users=...)``)."""

    user: object
    params: dict | None = None
    link: str | None = None
    task_key: str | None = None


def _build(*, user, kind, category, title, body, params, link, task_key, title_src, body_src) -> Notification:
    with translation.override(user.preferred_language):
        return Notification(
            user=user, kind=kind, category=category,
            title=_render(title, params)[:200], body=_render(body, params),
            title_source=title_src, body_source=body_src if body else None,
            params=_stored_params(params), link=link, task_key=task_key[:120],
        )


@transaction.atomic
def notify(*, user, kind: str, title, body="", params: dict | None = None, link: str = "", email: bool = True,
           category: str | None = None, task_key: str = "") -> Notification:
    """One notification to ``user``; ``email=False`` keeps it in the portal inbox only."""
    return notify_many(users=[user], kind=kind, title=title, body=body, params=params, link=link, email=email,
                       category=category, task_key=task_key)[0]


@transaction.atomic
def notify_many(*, users, kind: str, title, body="", params: dict | None = None, link: str = "", email: bool = True,
                category: str | None = None, task_key: str = "") -> list[Notification]:
    """``notify`` for many recipients in a fixed number of queries (bulk INSERTs), for fan-outs.

    ``users`` are users, or ``Recipient`` rows carrying each recipient's own ``params``/``link``/``task_key``.
    Each notification is rendered in its recipient's language; ``params`` values may be lazy translations
    or objects whose ``str()`` depends on the active language.
    """
    category = category or category_for_kind(kind)
    title_src, body_src = _source(title), _source(body)
    rows = []
    for item in users:
        r = item if isinstance(item, Recipient) else Recipient(user=item)
        rows.append(_build(
            user=r.user, kind=kind, category=category, title=title, body=body,
            params=r.params if r.params is not None else params, link=r.link if r.link is not None else link,
            task_key=r.task_key if r.task_key is not None else task_key, title_src=title_src, body_src=body_src,
        ))
    created = Notification.objects.bulk_create(rows, batch_size=INSERT_BATCH)
    if email and created:
        _deliveries_create(created, category=category)
    return created


def _deliveries_create(notifications: list[Notification], *, category: str) -> list[NotificationDelivery]:
    """The external deliveries of new notifications of one category: three queries whatever their number."""
    user_ids = {n.user_id for n in notifications}
    # A large fan-out reads the category's opt-outs and the active channels whole (small tables: a row
    # exists only where a user switched something off or registered a gateway address) rather than
    # binding 100,000 ids.
    few = len(user_ids) <= 1000
    always = category in ALWAYS_ALL_CHANNELS
    off: set[tuple[int, str]] = set()
    if not always:
        prefs = NotificationPreference.objects.filter(category=category, enabled=False)
        if few:
            prefs = prefs.filter(user_id__in=user_ids)
        off = set(prefs.values_list("user_id", "channel"))
    channels = NotificationChannel.objects.filter(active=True)
    if few:
        channels = channels.filter(user_id__in=user_ids)
    endpoints: dict[int, list[int]] = {}
    for user_id, channel_id in channels.values_list("user_id", "id"):
        endpoints.setdefault(user_id, []).append(channel_id)
    now = timezone.now()
    rows = []
    for n in notifications:
        if (n.user_id, ChannelKind.EMAIL) not in off:
            rows.append(NotificationDelivery(notification=n, channel=ChannelKind.EMAIL, next_attempt_at=now, created_at=now))
        if (n.user_id, ChannelKind.WEBHOOK) not in off:
            rows.extend(NotificationDelivery(notification=n, channel=ChannelKind.WEBHOOK, endpoint_id=e, next_attempt_at=now, created_at=now)
                        for e in endpoints.get(n.user_id, ()))
    created = NotificationDelivery.objects.bulk_create(rows, batch_size=INSERT_BATCH)
    if created:
        from .tasks import notification_deliveries_send

        ids = [d.id for d in created]
        for start in range(0, len(ids), DELIVERY_BATCH):
            notification_deliveries_send.delay_on_commit(ids[start:start + DELIVERY_BATCH])
    return created


# --- Reading state: read, resolved ----------------------------------------------------------------


@transaction.atomic
def notifications_mark_read(*, user, ids: list[int] | None = None) -> int:
    """Mark the given (or all) unread notifications of ``user`` as read; returns how many."""
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(id__in=ids)
    return qs.update(read_at=timezone.now())


@transaction.atomic
def notifications_resolve(*, user, task_key: str) -> int:
    """The task ``task_key`` is done: its notifications are resolved (and read). Called by the service
    that completes the task, in its transaction. Returns how many were resolved."""
    if not task_key:
        return 0
    now = timezone.now()
    return Notification.objects.filter(user=user, task_key=task_key, resolved_at__isnull=True).update(
        resolved_at=now, read_at=Coalesce(F("read_at"), now)
    )


# --- Preferences and channels -------------------------------------------------------------------------


def _client_error(code, message, field):
    from .errors import PortalError

    return PortalError(code, message, {field: [message]})


@transaction.atomic
def notification_preferences_set(*, user, choices: dict[str, dict[str, bool]]) -> dict:
    """Set ``{category: {channel: enabled}}`` for ``user``. Margin calls cannot be switched off on any
    channel: the whole change is refused and nothing is written. Returns the preferences after."""
    from .audit import audit_log
    from .selectors import notification_preferences

    categories, channels = set(NotificationCategory.values), {c.value for c in OPTIONAL_CHANNELS}
    for category, per_channel in choices.items():
        if category not in categories:
            raise _client_error("validation_error", _("Unknown notification category “%(c)s”.") % {"c": category}, "category")
        if not isinstance(per_channel, dict):
            raise _client_error("validation_error", _("Give each category's channels as on or off."), category)
        for channel, enabled in per_channel.items():
            if channel not in channels:
                raise _client_error("validation_error", _("Unknown channel “%(c)s”.") % {"c": channel}, category)
            if not isinstance(enabled, bool):
                raise _client_error("validation_error", _("Give each channel as on or off."), category)
            if category in ALWAYS_ALL_CHANNELS and not enabled:
                raise _client_error(
                    "margin_calls_always_sent",
                    _("Margin calls always go to every channel you have; they cannot be switched off."), category,
                )
    before = notification_preferences(user=user)
    now = timezone.now()
    for category, per_channel in choices.items():
        for channel, enabled in per_channel.items():
            NotificationPreference.objects.update_or_create(
                user=user, category=category, channel=channel, defaults={"enabled": enabled, "updated_at": now}
            )
    after = notification_preferences(user=user)
    if after != before:
        audit_log(actor=user, action="portal.notification_preferences.changed", object_type="portal.user", object_id=user.pk,
                  before=before, after=after)
    return after


@transaction.atomic
def notification_channel_add(*, user, label: str, address: str, url: str = "") -> NotificationChannel:
    """Register an address on the broker's SMS/push gateway for ``user``."""
    from django.core.exceptions import ValidationError
    from django.core.validators import URLValidator

    from .audit import audit_log

    label, address, url = (label or "").strip(), (address or "").strip(), (url or "").strip()
    if not label:
        raise _client_error("validation_error", _("Give the channel a name, e.g. “SMS to my mobile”."), "label")
    if not address:
        raise _client_error("validation_error", _("Give the phone number or device the gateway should reach."), "address")
    if url:
        try:
            URLValidator(schemes=["https", "http"])(url)
        except ValidationError:
            raise _client_error("validation_error", _("The gateway URL is not a valid web address."), "url") from None
    channel = NotificationChannel.objects.create(user=user, label=label[:80], address=address[:200], url=url[:300])
    audit_log(actor=user, action="portal.notification_channel.added", obj=channel,
              after={"kind": channel.kind, "label": channel.label, "address": channel.address, "url": channel.url})
    return channel


@transaction.atomic
def notification_channel_deactivate(*, user, channel_id: int) -> NotificationChannel:
    """Stop sending to one of ``user``'s own gateway addresses (anyone else's is not found)."""
    from .audit import audit_log
    from .errors import NotFoundError

    channel = NotificationChannel.objects.select_for_update(no_key=True).filter(pk=channel_id, user=user).first()
    if channel is None:
        raise NotFoundError("not_found", _("No such notification channel."))
    if channel.active:
        channel.active, channel.deactivated_at = False, timezone.now()
        channel.save(update_fields=["active", "deactivated_at"])
        audit_log(actor=user, action="portal.notification_channel.deactivated", obj=channel, before={"active": True}, after={"active": False})
    return channel


# --- Sending -----------------------------------------------------------------------------------------


class DeliveryError(Exception):
    """A channel refused or failed a delivery. ``retry`` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool = True, status: int | None = None):
        super().__init__(message)
        self.retry, self.status = retry, status


def backoff_seconds(attempts: int) -> int:
    """Exponential: 30 s, 60 s, 2 min, … capped at an hour, after the ``attempts``-th failure."""
    return min(BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1), BACKOFF_MAX_SECONDS)


def absolute_url(path: str) -> str:
    """An absolute link for anything sent out of the portal (the worker has no request)."""
    if not path or path.startswith(("http://", "https://")):
        return path
    return f"{settings.PORTAL_BASE_URL.rstrip('/')}/{path.lstrip('/')}"


def webhook_signatures(body: bytes) -> str:
    """``sha256=<hex>`` under each configured secret, the current one first (comma-separated): during a
    rotation the gateway accepts either while it moves to the new secret."""
    secrets = [s for s in settings.NOTIFICATION_WEBHOOK_SECRETS if s]
    if not secrets:
        raise DeliveryError("no webhook secret configured (NOTIFICATION_WEBHOOK_SECRETS)", retry=False)
    return ",".join("sha256=" + hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in secrets)


def webhook_verify(*, body: bytes, header: str, secret: str) -> bool:
    """What a gateway does with a delivery: does any signature in ``header`` match ``secret``?"""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, part.strip()) for part in (header or "").split(","))


def webhook_post(url: str, body: bytes, headers: dict, timeout: float) -> int:
    """POST ``body``; returns the HTTP status. Network errors raise ``DeliveryError`` (retried)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - URL validated, http(s) only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise DeliveryError(f"{exc.__class__.__name__}: {exc}"[:300]) from None


def _webhook_payload(delivery: NotificationDelivery) -> bytes:
    n = delivery.notification
    payload = {
        "delivery": delivery.pk, "notification": n.pk, "kind": n.kind, "category": n.category,
        "address": delivery.endpoint.address, "language": n.user.preferred_language,
        "title": n.title, "body": n.body, "link": absolute_url(n.link), "created_at": n.created_at.isoformat(),
        "attempt": delivery.attempts,
    }
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _send_webhook(delivery: NotificationDelivery, transport) -> int:
    url = delivery.endpoint.url or settings.NOTIFICATION_WEBHOOK_URL
    if not url:
        raise DeliveryError("no gateway URL configured (NOTIFICATION_WEBHOOK_URL)", retry=False)
    if not delivery.endpoint.active:
        raise DeliveryError("channel deactivated", retry=False)
    body = _webhook_payload(delivery)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Portal-Signature": webhook_signatures(body),
        # The gateway's idempotency key: a delivery sent again after a lost answer carries the same one.
        "X-Portal-Delivery": str(delivery.pk),
        "User-Agent": "VA-Margin-Portal-Notifications/1",
    }
    status = (transport or webhook_post)(url, body, headers, settings.NOTIFICATION_WEBHOOK_TIMEOUT)
    if 200 <= status < 300:
        return status
    # The gateway says the request itself is wrong: trying again will not help (except rate limits / timeouts).
    retry = status >= 500 or status in (408, 425, 429)
    raise DeliveryError(f"gateway answered HTTP {status}", retry=retry, status=status)


def email_render(notification: Notification) -> tuple[str, str, str]:
    """(subject, text, html) of ``notification``'s email, in its recipient's language, with absolute links."""
    from django.template.loader import render_to_string

    language = notification.user.preferred_language
    with translation.override(language):
        context = {
            "notification": notification, "title": notification.title, "body": notification.body,
            "link": absolute_url(notification.link), "site_url": absolute_url("/"),
            "preferences_url": absolute_url("/notifications/preferences/"), "language": language,
        }
        subject = _("[%(portal)s] %(title)s") % {"portal": gettext("VA Margin Portal"), "title": notification.title}
        text = render_to_string("portal/email/notification.txt", context)
        html = render_to_string("portal/email/notification.html", context)
    return " ".join(str(subject).split()), text, html


def _send_email(delivery: NotificationDelivery) -> None:
    import smtplib

    from django.core.mail import EmailMultiAlternatives

    subject, text, html = email_render(delivery.notification)
    message = EmailMultiAlternatives(subject=subject, body=text, to=[delivery.notification.user.email],
                                     headers={"X-Portal-Delivery": str(delivery.pk)})
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except (smtplib.SMTPException, ConnectionError, TimeoutError, OSError) as exc:
        raise DeliveryError(f"{exc.__class__.__name__}: {exc}"[:300]) from None


def _claim(delivery_id: int, now) -> bool:
    due = Q(state__in=[DeliveryState.PENDING, DeliveryState.RETRYING], next_attempt_at__lte=now)
    abandoned = Q(state=DeliveryState.SENDING, claimed_at__lt=now - CLAIM_LEASE)
    return bool(NotificationDelivery.objects.filter(due | abandoned, pk=delivery_id).update(
        state=DeliveryState.SENDING, claimed_at=now, attempts=F("attempts") + 1))


def delivery_send(*, delivery_id: int, transport=None) -> str:
    """Send one delivery if it is due and nobody else holds it. Returns its state afterwards, or
    ``"skipped"`` when there was nothing to do (already sent, held by another worker, or not due yet).

    ``transport(url, body, headers, timeout) -> status`` replaces the HTTP POST of webhooks (tests, demo).
    """
    from .audit import SYSTEM, audit_log

    now = timezone.now()
    if not _claim(delivery_id, now):
        return "skipped"
    delivery = NotificationDelivery.objects.select_related("notification__user", "endpoint").get(pk=delivery_id)
    status, error = None, None
    try:
        if delivery.channel == ChannelKind.EMAIL:
            _send_email(delivery)
        elif delivery.channel == ChannelKind.WEBHOOK:
            status = _send_webhook(delivery, transport)
        else:
            raise DeliveryError(f"unknown channel {delivery.channel}", retry=False)
    except DeliveryError as exc:
        error = exc
    done = timezone.now()
    with transaction.atomic():
        if error is None:
            delivery.state, delivery.delivered_at, delivery.response_status, delivery.last_error = DeliveryState.DELIVERED, done, status, ""
            if delivery.channel == ChannelKind.EMAIL:
                Notification.objects.filter(pk=delivery.notification_id, emailed_at__isnull=True).update(emailed_at=done)
            action = "portal.notification.delivered"
        else:
            retry = error.retry and delivery.attempts < MAX_ATTEMPTS
            delivery.state = DeliveryState.RETRYING if retry else DeliveryState.FAILED
            delivery.response_status, delivery.last_error = error.status, str(error)[:300]
            if retry:
                delivery.next_attempt_at = done + timedelta(seconds=backoff_seconds(delivery.attempts))
            action = "portal.notification.delivery_retrying" if retry else "portal.notification.delivery_failed"
        delivery.save(update_fields=["state", "delivered_at", "response_status", "last_error", "next_attempt_at"])
        audit_log(actor=SYSTEM, action=action, obj=delivery, after={
            "notification": delivery.notification_id, "kind": delivery.notification.kind, "channel": delivery.channel,
            "endpoint": delivery.endpoint_id, "attempt": delivery.attempts, "state": delivery.state,
            "response_status": delivery.response_status, "error": delivery.last_error,
            "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.state == DeliveryState.RETRYING else None,
        })
    if error is not None:
        logger.warning("notification delivery %s %s: %s", delivery.pk, delivery.state, error)
    return delivery.state


def deliveries_due(*, limit: int = 2000) -> list[int]:
    """Deliveries whose time has come that no task holds: retries due, and pending or abandoned ones whose
    message was lost (a grace period keeps the sweep from racing the message sent at creation)."""
    now = timezone.now()
    q = (Q(state=DeliveryState.RETRYING, next_attempt_at__lte=now)
         | Q(state=DeliveryState.PENDING, next_attempt_at__lte=now - timedelta(minutes=2))
         | Q(state=DeliveryState.SENDING, claimed_at__lt=now - CLAIM_LEASE))
    return list(NotificationDelivery.objects.filter(q).order_by("next_attempt_at").values_list("id", flat=True)[:limit])


def notification_send_email(*, notification_id: int) -> bool:
    """Send the email delivery of one notification; False when there was nothing to send."""
    delivery = NotificationDelivery.objects.filter(notification_id=notification_id, channel=ChannelKind.EMAIL).first()
    if delivery is None:
        return False
    return delivery_send(delivery_id=delivery.pk) == DeliveryState.DELIVERED
