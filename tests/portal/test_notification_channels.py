"""Pluggable channels: in-app always, email and the signed webhook per category, margin calls everywhere;
each delivery claimed once, retried with backoff, audited."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import translation
from django.utils.translation import gettext_lazy

from portal.models import AuditEvent, DeliveryState, Notification, NotificationDelivery
from portal.notifications import (
    backoff_seconds,
    delivery_send,
    notification_channel_add,
    notification_preferences_set,
    notification_text,
    notifications_resolve,
    notify,
    notify_many,
    webhook_verify,
)
from portal.selectors import notification_preferences
from portal.tasks import notification_deliveries_send
from tests.helpers import make_user

pytestmark = pytest.mark.django_db

SECRET = "test-secret-current"


@pytest.fixture(autouse=True)
def _gateway(settings):
    settings.NOTIFICATION_WEBHOOK_URL = "https://gateway.example/hooks/portal"
    settings.NOTIFICATION_WEBHOOK_SECRETS = [SECRET]


class Gateway:
    """The broker's SMS/push gateway as seen by the portal: records what it got, answers as told."""

    def __init__(self, answers=(200,)):
        self.answers, self.calls = list(answers), []

    def __call__(self, url, body, headers, timeout):
        self.calls.append({"url": url, "body": body, "headers": headers})
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _deliver_all(gateway):
    for d in NotificationDelivery.objects.filter(state__in=["pending", "retrying"]):
        delivery_send(delivery_id=d.pk, transport=gateway)


def _due_now(delivery):
    NotificationDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.next_attempt_at - timedelta(days=1))


def test_webhook_is_signed_over_the_body_and_sent_exactly_once(alice):
    channel = notification_channel_add(user=alice, label="SMS", address="+852 9123 4567")
    note = notify(user=alice, kind="test", title="Hello %(name)s", params={"name": "Alice"}, link="/dashboard/")
    delivery = NotificationDelivery.objects.get(notification=note, channel="webhook")
    assert delivery.endpoint == channel
    gateway = Gateway()
    assert delivery_send(delivery_id=delivery.pk, transport=gateway) == "delivered"
    # A redelivered task (or a duplicate in a batch) sends nothing.
    assert delivery_send(delivery_id=delivery.pk, transport=gateway) == "skipped"
    notification_deliveries_send.run([delivery.pk, delivery.pk])
    assert len(gateway.calls) == 1
    call = gateway.calls[0]
    assert call["url"] == "https://gateway.example/hooks/portal"
    assert webhook_verify(body=call["body"], header=call["headers"]["X-Portal-Signature"], secret=SECRET)
    assert not webhook_verify(body=call["body"] + b" ", header=call["headers"]["X-Portal-Signature"], secret=SECRET)
    assert not webhook_verify(body=call["body"], header=call["headers"]["X-Portal-Signature"], secret="wrong")
    payload = json.loads(call["body"])
    assert payload["address"] == "+852 9123 4567" and payload["title"] == "Hello Alice"
    assert payload["link"].endswith("/dashboard/") and payload["link"].startswith("http")
    assert call["headers"]["X-Portal-Delivery"] == str(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.response_status) == ("delivered", 1, 200)
    assert AuditEvent.objects.filter(action="portal.notification.delivered", object_id=str(delivery.pk)).count() == 1


def test_a_rotated_secret_signs_with_both_during_the_rotation(alice, settings):
    settings.NOTIFICATION_WEBHOOK_SECRETS = ["new-secret", SECRET]
    notification_channel_add(user=alice, label="Push", address="device-1")
    note = notify(user=alice, kind="test", title="Rotating")
    gateway = Gateway()
    delivery_send(delivery_id=NotificationDelivery.objects.get(notification=note, channel="webhook").pk, transport=gateway)
    header = gateway.calls[0]["headers"]["X-Portal-Signature"]
    assert header.count("sha256=") == 2
    assert webhook_verify(body=gateway.calls[0]["body"], header=header, secret="new-secret")
    assert webhook_verify(body=gateway.calls[0]["body"], header=header, secret=SECRET)


def test_a_failing_gateway_is_retried_with_exponential_backoff_then_fails(alice):
    notification_channel_add(user=alice, label="SMS", address="+852 9123 4567")
    note = notify(user=alice, kind="test", title="Flaky")
    delivery = NotificationDelivery.objects.get(notification=note, channel="webhook")
    gateway = Gateway(answers=[503])
    waits = []
    for attempt in range(1, 9):
        before = delivery.next_attempt_at
        state = delivery_send(delivery_id=delivery.pk, transport=gateway)
        delivery.refresh_from_db()
        if state == "retrying":
            waits.append(round((delivery.next_attempt_at - delivery.claimed_at).total_seconds()))
            # Not due yet: nothing is sent early.
            assert delivery_send(delivery_id=delivery.pk, transport=gateway) == "skipped"
            _due_now(delivery)
            delivery.refresh_from_db()
        assert delivery.attempts == attempt, before
    assert state == "failed"
    assert waits == [backoff_seconds(n) for n in range(1, 8)] == [30, 60, 120, 240, 480, 960, 1920]
    assert len(gateway.calls) == 8
    actions = list(AuditEvent.objects.filter(object_type="portal.notificationdelivery", object_id=str(delivery.pk)).values_list("action", flat=True))
    assert actions.count("portal.notification.delivery_retrying") == 7
    assert actions.count("portal.notification.delivery_failed") == 1


def test_a_retry_that_succeeds_is_delivered_once(alice):
    notification_channel_add(user=alice, label="SMS", address="+852 9123 4567")
    note = notify(user=alice, kind="test", title="Second time lucky")
    delivery = NotificationDelivery.objects.get(notification=note, channel="webhook")
    gateway = Gateway(answers=[500, 200])
    assert delivery_send(delivery_id=delivery.pk, transport=gateway) == "retrying"
    delivery.refresh_from_db()
    _due_now(delivery)
    assert delivery_send(delivery_id=delivery.pk, transport=gateway) == "delivered"
    assert delivery_send(delivery_id=delivery.pk, transport=gateway) == "skipped"
    assert len(gateway.calls) == 2
    assert json.loads(gateway.calls[0]["body"])["delivery"] == json.loads(gateway.calls[1]["body"])["delivery"]


def test_a_gateway_refusing_the_request_is_not_retried(alice):
    notification_channel_add(user=alice, label="SMS", address="not-a-number")
    note = notify(user=alice, kind="test", title="Refused")
    delivery = NotificationDelivery.objects.get(notification=note, channel="webhook")
    assert delivery_send(delivery_id=delivery.pk, transport=Gateway(answers=[422])) == "failed"


def test_preferences_choose_channels_per_category(alice, django_capture_on_commit_callbacks):
    notification_channel_add(user=alice, label="SMS", address="+852 9123 4567")
    notification_preferences_set(user=alice, choices={"account": {"email": False}, "warning": {"webhook": False}})
    account = notify(user=alice, kind="onboarding.pi_verified", title="Account news")
    warning = notify(user=alice, kind="risk.warning.level", title="Warning")
    assert account.category == "account" and warning.category == "warning"
    assert set(account.deliveries.values_list("channel", flat=True)) == {"webhook"}
    assert set(warning.deliveries.values_list("channel", flat=True)) == {"email"}
    assert notification_preferences(user=alice)["account"] == {"email": False, "webhook": True}


def test_margin_calls_go_to_every_channel_whatever_was_stored(alice):
    from portal.models import NotificationPreference

    notification_channel_add(user=alice, label="SMS", address="+852 9123 4567")
    notification_channel_add(user=alice, label="Push", address="device-9")
    # Even a stored opt-out (e.g. written before the rule) does not stop a margin call.
    NotificationPreference.objects.create(user=alice, category="margin_call", channel="email", enabled=False)
    call = notify(user=alice, kind="risk.margin_call.opened", title="Margin call")
    assert call.category == "margin_call"
    assert sorted(call.deliveries.values_list("channel", flat=True)) == ["email", "webhook", "webhook"]


def test_switching_margin_calls_off_is_refused_and_changes_nothing(alice):
    from portal.errors import PortalError

    with pytest.raises(PortalError) as refused:
        notification_preferences_set(user=alice, choices={"warning": {"email": False}, "margin_call": {"email": False}})
    assert refused.value.code == "margin_calls_always_sent"
    assert notification_preferences(user=alice)["warning"]["email"] is True


def test_unknown_category_or_channel_is_a_clear_error(alice):
    from portal.errors import PortalError

    for bad in ({"nonsense": {"email": False}}, {"warning": {"fax": False}}, {"warning": {"email": "no"}}):
        with pytest.raises(PortalError):
            notification_preferences_set(user=alice, choices=bad)


def test_fan_out_query_count_does_not_grow_with_recipients(django_assert_num_queries):
    def users(n, start):
        return [make_user("client", email=f"fan{start + i}@example.com") for i in range(n)]

    few, many = users(3, 0), users(30, 100)
    notification_channel_add(user=many[0], label="SMS", address="+852 1")
    counts = []
    for group in (few, many):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            notify_many(users=group, kind="test", title="Fan %(n)s", params={"n": 1})
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]
    assert NotificationDelivery.objects.filter(notification__user__in=many).count() == 31


def test_rendered_at_read_time_in_the_readers_language_keeping_what_was_sent(alice):
    note = notify(user=alice, kind="test", title=gettext_lazy("Notifications"), body=gettext_lazy("Dashboard"), email=False)
    assert (note.title, note.body) == ("Notifications", "Dashboard")
    note.refresh_from_db()
    with translation.override("zh-hant"):
        assert notification_text(note) == ("通知", "主頁")
    assert notification_text(note, language="en") == ("Notifications", "Dashboard")
    assert Notification.objects.get(pk=note.pk).title == "Notifications"  # the record is unchanged


def test_inbox_page_and_api_follow_the_current_language(client, alice):
    notify(user=alice, kind="test", title=gettext_lazy("Notifications"), email=False)
    client.force_login(alice)
    client.post("/language/", {"language": "zh-hant", "next": "/"})
    assert "通知" in client.get("/notifications/").content.decode()
    item = client.get("/api/v1/notifications/").json()["results"][0]
    assert (item["title"], item["sent_title"]) == ("通知", "Notifications")


def test_a_task_notification_is_resolved_by_completing_the_task(alice, charlie):
    note = notify(user=alice, kind="test", title="Do the thing", task_key="test.thing.1", email=False)
    other = notify(user=charlie, kind="test", title="Do the thing", task_key="test.thing.1", email=False)
    assert notifications_resolve(user=alice, task_key="test.thing.1") == 1
    note.refresh_from_db()
    other.refresh_from_db()
    assert note.resolved_at is not None and note.read_at is not None
    assert other.resolved_at is None
    assert notifications_resolve(user=alice, task_key="test.thing.1") == 0


def test_email_has_the_portals_design_text_and_html_in_the_recipients_language(django_capture_on_commit_callbacks, settings):
    settings.PORTAL_BASE_URL = "https://portal.example"
    chinese = make_user("client", email="mei@example.com", language="zh-hant")
    with django_capture_on_commit_callbacks(execute=True):
        notify(user=chinese, kind="test", title=gettext_lazy("Notifications"), link="/dashboard/")
    message = mail.outbox[0]
    assert message.subject == "[虛擬資產保證金融資平台] 通知"
    html = message.alternatives[0][0]
    assert message.alternatives[0][1] == "text/html"
    assert "虛擬資產保證金融資平台" in html and 'href="https://portal.example/dashboard/"' in html
    assert "https://portal.example/notifications/preferences/" in message.body
    assert "127.0.0.1" not in message.body + html


# --- Pages and API: own preferences only -------------------------------------------------------------


def test_preferences_page_saves_and_states_margin_calls_always_go(client, alice):
    client.force_login(alice)
    page = client.get("/notifications/preferences/").content.decode()
    assert 'data-testid="margin-call-always"' in page
    assert 'name="pref:margin_call:email" checked disabled' in page
    response = client.post("/notifications/preferences/", {"category": ["warning", "account"], "pref:warning:webhook": "on",
                                                            "pref:account:email": "on", "pref:account:webhook": "on"})
    assert response.status_code == 302
    assert notification_preferences(user=alice)["warning"] == {"email": False, "webhook": True}


def test_preferences_page_refuses_switching_margin_calls_off(client, alice):
    client.force_login(alice)
    response = client.post("/notifications/preferences/", {"category": ["margin_call"]})
    assert response.status_code == 400
    assert "cannot be switched off" in response.content.decode()
    assert notification_preferences(user=alice)["margin_call"] == {"email": True, "webhook": True}


def test_preferences_api_round_trip_and_refusal(client, alice):
    client.force_login(alice)
    got = client.put("/api/v1/notifications/preferences/", {"statement": {"email": False}}, content_type="application/json")
    assert got.status_code == 200 and got.json()["statement"] == {"email": False, "webhook": True}
    refused = client.put("/api/v1/notifications/preferences/", {"margin_call": {"webhook": False}}, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "margin_calls_always_sent"
    assert client.get("/api/v1/notifications/preferences/").json()["margin_call"] == {"email": True, "webhook": True}


def test_outsider_cannot_see_or_stop_anothers_channel(client, alice, charlie, bob):
    channel = notification_channel_add(user=alice, label="SMS", address="+852 6555 0101")
    for intruder in (charlie, bob):
        client.force_login(intruder)
        assert client.post(f"/notifications/channels/{channel.pk}/deactivate/").status_code == 404
        assert client.post(f"/api/v1/notifications/channels/{channel.pk}/deactivate/").status_code == 404
        assert client.get("/api/v1/notifications/channels/").json() == []
        assert "+852 6555 0101" not in client.get("/notifications/preferences/").content.decode()
    channel.refresh_from_db()
    assert channel.active
    client.force_login(alice)
    assert client.post(f"/api/v1/notifications/channels/{channel.pk}/deactivate/").json()["active"] is False


def test_anonymous_is_sent_to_sign_in(client):
    assert client.get("/notifications/preferences/").status_code == 302
    assert client.get("/api/v1/notifications/preferences/").status_code in (401, 403)
    assert client.post("/api/v1/notifications/channels/", {"label": "x", "address": "y"}).status_code in (401, 403)


def test_adding_a_channel_through_the_api_and_bad_input(client, alice):
    client.force_login(alice)
    made = client.post("/api/v1/notifications/channels/", {"label": "SMS", "address": "+852 9123 4567"}, content_type="application/json")
    assert made.status_code == 201 and made.json()["active"] is True
    bad = client.post("/api/v1/notifications/channels/", {"label": " ", "address": "x"}, content_type="application/json")
    assert bad.status_code == 400
    assert client.get("/api/v1/notifications/channels/").json()[0]["address"] == "+852 9123 4567"


@pytest.mark.parametrize("channels", [1, 6])
def test_preferences_page_query_count_is_pinned(client, alice, django_assert_num_queries, channels):
    for i in range(channels):
        notification_channel_add(user=alice, label=f"SMS {i}", address=f"+852 {i}")
    client.force_login(alice)
    # session, user, groups, unread count (shell) + preferences + channels
    with django_assert_num_queries(6):
        assert client.get("/notifications/preferences/").status_code == 200


def test_preferences_api_query_count_is_pinned(client, alice, django_assert_num_queries):
    client.force_login(alice)
    # session, user, groups, preferences
    with django_assert_num_queries(4):
        assert client.get("/api/v1/notifications/preferences/").status_code == 200


def test_deliveries_due_sweep_finds_retries_and_lost_messages(alice):
    from portal.notifications import deliveries_due

    notification_channel_add(user=alice, label="SMS", address="+852 9")
    note = notify(user=alice, kind="test", title="Lost")
    d = NotificationDelivery.objects.get(notification=note, channel="webhook")
    assert d.pk not in deliveries_due()  # just created: its own task message is on the way
    NotificationDelivery.objects.filter(pk=d.pk).update(next_attempt_at=d.next_attempt_at - timedelta(minutes=5))
    assert d.pk in deliveries_due()
    NotificationDelivery.objects.filter(pk=d.pk).update(state=DeliveryState.DELIVERED)
    assert d.pk not in deliveries_due()


def test_the_demo_gateway_checks_the_signature_like_a_real_one(client, alice, settings):
    from portal import notifications

    settings.DEMO = True
    notification_channel_add(user=alice, label="SMS", address="+852 5550 0123")
    note = notify(user=alice, kind="test", title="Through HTTP")
    delivery = NotificationDelivery.objects.get(notification=note, channel="webhook")

    def through_the_test_client(url, body, headers, timeout):
        return client.post("/demo/gateway/", data=body, content_type="application/json",
                           headers={"X-Portal-Signature": headers["X-Portal-Signature"]}).status_code

    assert notifications.delivery_send(delivery_id=delivery.pk, transport=through_the_test_client) == "delivered"
    assert client.post("/demo/gateway/", data=b'{"address": "+852 5550 0123"}', content_type="application/json",
                       headers={"X-Portal-Signature": "sha256=forged"}).status_code == 401
    assert client.post("/demo/gateway/").status_code == 401
