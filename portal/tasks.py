from __future__ import annotations

from celery import shared_task

from . import notifications


@shared_task(acks_late=True, soft_time_limit=300, time_limit=360)
def notification_deliveries_send(delivery_ids: list[int]) -> dict:
    """Send a batch of deliveries. Each is claimed on its own (a redelivered batch sends nothing twice);
    one that fails is scheduled again after its backoff, on its own."""
    outcomes: dict[str, int] = {}
    for delivery_id in delivery_ids:
        state = notifications.delivery_send(delivery_id=delivery_id)
        outcomes[state] = outcomes.get(state, 0) + 1
        if state == "retrying":
            _schedule_retry(delivery_id)
    return outcomes


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def notification_delivery_send(delivery_id: int) -> str:
    state = notifications.delivery_send(delivery_id=delivery_id)
    if state == "retrying":
        _schedule_retry(delivery_id)
    return state


def _schedule_retry(delivery_id: int) -> None:
    from .models import NotificationDelivery

    delivery = NotificationDelivery.objects.filter(pk=delivery_id).values("next_attempt_at").first()
    if delivery:
        # Exponential backoff (notifications.backoff_seconds): the task runs at the delivery's next
        # attempt; the claim refuses it any earlier, and the sweep below picks up a lost message.
        notification_delivery_send.apply_async((delivery_id,), eta=delivery["next_attempt_at"])


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180)
def notification_deliveries_sweep() -> int:
    """Beat: enqueue the deliveries that are due and held by no task (retries, lost messages)."""
    ids = notifications.deliveries_due()
    for start in range(0, len(ids), notifications.DELIVERY_BATCH):
        notification_deliveries_send.delay(ids[start:start + notifications.DELIVERY_BATCH])
    return len(ids)


@shared_task(acks_late=True, soft_time_limit=30, time_limit=60)
def send_notification_email(notification_id: int) -> bool:
    """The email of one notification (messages queued before deliveries were batched)."""
    return notifications.notification_send_email(notification_id=notification_id)
