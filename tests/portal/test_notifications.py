"""One notification service: in-app in the recipient's language, emailed once."""

from __future__ import annotations

import pytest
from django.core import mail
from django.utils import translation
from django.utils.translation import gettext_lazy

from portal.models import Notification
from portal.notifications import notify
from portal.tasks import send_notification_email
from tests.helpers import make_user

pytestmark = pytest.mark.django_db

# Strings the portal's zh-Hant catalogue already translates.
TITLE = gettext_lazy("Notifications")
BODY = gettext_lazy("Dashboard")


def test_rendered_in_the_recipients_language_not_the_callers(django_capture_on_commit_callbacks):
    chinese = make_user("client", email="wing@example.com", language="zh-hant")
    with translation.override("en"), django_capture_on_commit_callbacks(execute=True):
        note = notify(user=chinese, kind="test", title=TITLE, body=BODY, link="/dashboard/")
    note.refresh_from_db()
    assert (note.title, note.body) == ("通知", "主頁")
    assert mail.outbox[0].subject == "[虛擬資產保證金融資平台] 通知"


def test_english_recipient_reads_english(alice, django_capture_on_commit_callbacks):
    with translation.override("zh-hant"):
        note = notify(user=alice, kind="test", title=TITLE, body=BODY, email=False)
    assert (note.title, note.body) == ("Notifications", "Dashboard")


def test_parameters_are_filled_in(alice):
    note = notify(user=alice, kind="test", title="Facility %(ref)s approved", params={"ref": "F-42"}, email=False)
    assert note.title == "Facility F-42 approved"


def test_the_email_goes_after_commit_with_the_link(alice, django_capture_on_commit_callbacks, settings):
    settings.PORTAL_BASE_URL = "https://portal.example"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        note = notify(user=alice, kind="test", title="Hello", body="Body text", link="/dashboard/")
    assert mail.outbox == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [alice.email]
    assert "https://portal.example/dashboard/" in mail.outbox[0].body
    assert Notification.objects.get(pk=note.pk).emailed_at is not None


def test_a_redelivered_task_sends_one_email(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        note = notify(user=alice, kind="test", title="Once only")
    first = Notification.objects.get(pk=note.pk).emailed_at
    assert send_notification_email.delay(note.pk).get() is False
    assert send_notification_email(note.pk) is False
    assert len(mail.outbox) == 1
    assert Notification.objects.get(pk=note.pk).emailed_at == first


def test_a_failed_send_is_retried_after_its_backoff_and_sent_once(alice, monkeypatch, django_capture_on_commit_callbacks):
    import smtplib
    from datetime import timedelta

    from django.core.mail import EmailMultiAlternatives

    from portal.models import NotificationDelivery
    from portal.notifications import delivery_send

    original = EmailMultiAlternatives.send

    def refuse(self, *args, **kwargs):
        raise smtplib.SMTPServerDisconnected("gone")

    monkeypatch.setattr(EmailMultiAlternatives, "send", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        note = notify(user=alice, kind="test", title="Retry me")
    delivery = NotificationDelivery.objects.get(notification=note)
    assert (delivery.state, delivery.attempts) == ("retrying", 1)
    assert Notification.objects.get(pk=note.pk).emailed_at is None
    # Not due yet: a second task finds nothing to claim.
    assert delivery_send(delivery_id=delivery.pk) == "skipped"
    monkeypatch.setattr(EmailMultiAlternatives, "send", original)
    NotificationDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.next_attempt_at - timedelta(hours=1))
    assert delivery_send(delivery_id=delivery.pk) == "delivered"
    assert delivery_send(delivery_id=delivery.pk) == "skipped"
    assert len(mail.outbox) == 1
    assert Notification.objects.get(pk=note.pk).emailed_at is not None


def test_unread_count_in_the_header_and_marking_read(client, alice):
    for n in range(3):
        notify(user=alice, kind="test", title=f"Note {n}", email=False)
    client.force_login(alice)
    page = client.get("/dashboard/").content.decode()
    assert '<span class="count">3</span>' in page
    response = client.post("/notifications/read/")
    assert response["Location"] == "/notifications/"
    page = client.get("/dashboard/").content.decode()
    assert 'class="count"' not in page
    assert Notification.objects.filter(user=alice, read_at__isnull=True).count() == 0


def test_marking_some_read_through_the_api(client, alice):
    notes = [notify(user=alice, kind="test", title=f"Note {n}", email=False) for n in range(3)]
    client.force_login(alice)
    response = client.post("/api/v1/notifications/read/", {"ids": [notes[0].id]}, content_type="application/json")
    assert response.json() == {"marked": 1}
    assert Notification.objects.filter(user=alice, read_at__isnull=True).count() == 2
    listed = client.get("/api/v1/notifications/").json()
    assert listed["count"] == 3
    assert [n["read_at"] is None for n in listed["results"]] == [True, True, False]


def test_no_email_when_asked_not_to(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notify(user=alice, kind="test", title="In-app only", email=False)
    assert mail.outbox == []
