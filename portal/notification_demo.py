"""Demo notification channels: varied preferences, one client with three SMS/push addresses on a
stand-in gateway, and that client's deliveries in every state (delivered, retrying, failed).

The demo has no real SMS/push gateway, so the portal serves a stand-in at ``/demo/gateway/`` (only in
demo mode; ``settings.NOTIFICATION_WEBHOOK_URL`` points there): it checks the signature like a real one
and answers by address — a working number is accepted, a number whose carrier is down gets 503 (the
delivery retries with backoff), a revoked push token gets 410 (failed, not retried). The seeder sends
through the same answers, since no web server runs while seeding.
"""

from __future__ import annotations

from django.conf import settings

from .models import ChannelKind, DeliveryState, NotificationChannel, NotificationDelivery, User

WEBHOOK_CLIENT = "borrower02@demo.vamargin.hk"
ADDRESSES = [
    ("SMS to my mobile", "+852 5550 0123"),
    ("SMS to my office phone", "+852 5550 0199"),  # the stand-in's carrier for this number is down
    ("Push to my old phone", "device:revoked-7f3a"),  # the token was revoked on the device
]
PREFERENCES = {
    "borrower01@demo.vamargin.hk": {"confirmation": {"email": False}},
    WEBHOOK_CLIENT: {"warning": {"email": False}, "account": {"webhook": False}},
    "borrower03@demo.vamargin.hk": {"statement": {"email": False}, "account": {"email": False}},
}


def signed(*, body: bytes, signature: str) -> bool:
    from .notifications import webhook_verify

    return bool(body) and any(webhook_verify(body=body, header=signature, secret=s) for s in settings.NOTIFICATION_WEBHOOK_SECRETS)


def gateway_answer(*, body: bytes, signature: str, address: str) -> int:
    """What the stand-in gateway answers a delivery (HTTP status)."""
    if not signed(body=body, signature=signature):
        return 401
    if address.startswith("device:revoked"):
        return 410
    if address.endswith("0199"):
        return 503
    return 200


def _transport(url, body, headers, timeout):
    import json

    return gateway_answer(body=body, signature=headers.get("X-Portal-Signature", ""), address=json.loads(body)["address"])


def seed(stdout) -> None:
    """Before the facilities move: addresses and preferences, so the warnings and confirmations that
    follow are routed by them."""
    from .notifications import notification_channel_add, notification_preferences_set

    client = User.objects.filter(email=WEBHOOK_CLIENT).first()
    if client is not None and not NotificationChannel.objects.filter(user=client).exists():
        for label, address in ADDRESSES:
            notification_channel_add(user=client, label=label, address=address)
    for email, choices in PREFERENCES.items():
        user = User.objects.filter(email=email).first()
        if user is not None:
            notification_preferences_set(user=user, choices=choices)
    stdout.write(f"  notification preferences varied for {len(PREFERENCES)} clients; {len(ADDRESSES)} SMS/push addresses for {WEBHOOK_CLIENT}")


def seed_deliveries(stdout) -> None:
    """After every app seeded: the early warnings go out now, and the webhook client's gateway
    deliveries are sent (the worker sends the rest, and retries, once it runs)."""
    from lending.risk.warnings import warnings_notify

    from .notifications import delivery_send

    warned = warnings_notify()
    pending = NotificationDelivery.objects.filter(channel=ChannelKind.WEBHOOK, state=DeliveryState.PENDING,
                                                  notification__user__email=WEBHOOK_CLIENT).values_list("id", flat=True)
    states: dict[str, int] = {}
    for delivery_id in list(pending):
        state = delivery_send(delivery_id=delivery_id, transport=_transport)
        states[state] = states.get(state, 0) + 1
    stdout.write(f"  {warned} early warnings sent; gateway deliveries for {WEBHOOK_CLIENT}: "
                 + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
