"""A real Celery worker on Redis against PostgreSQL: tasks run after commit, and at most once in effect."""

from __future__ import annotations

import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun, task_prerun
from django.core import mail
from django.db import connections, transaction

from portal.celery import app
from portal.models import Notification
from portal.notifications import notify
from portal.tasks import notification_deliveries_send
from tests.helpers import need_postgres, need_redis

pytestmark = [pytest.mark.realworker, pytest.mark.django_db(transaction=True)]


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the worker")
        time.sleep(0.05)


@pytest.fixture
def worker_runs():
    """Start a worker thread on the Redis broker; yields the list of task runs it records."""
    need_postgres()
    broker_url = need_redis()
    app.conf.broker_url = broker_url
    app.conf.task_always_eager = False
    runs: list[dict] = []

    def on_start(task=None, task_id=None, args=None, **kwargs):
        runs.append({"event": "start", "task": task.name, "id": task_id, "args": tuple(args or ())})

    def on_done(task=None, task_id=None, args=None, retval=None, **kwargs):
        runs.append({"event": "done", "task": task.name, "id": task_id, "args": tuple(args or ()), "retval": retval})
        connections.close_all()  # the worker thread's own connections; lets the test DB be flushed/dropped

    task_prerun.connect(on_start, weak=False)
    task_postrun.connect(on_done, weak=False)
    with app.connection_for_write() as conn:  # nothing left over from an earlier run
        conn.default_channel.queue_purge(app.conf.task_default_queue)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            yield runs
    finally:
        task_prerun.disconnect(on_start)
        task_postrun.disconnect(on_done)
        app.conf.task_always_eager = True


def _done(runs) -> list[dict]:
    return [r for r in runs if r["event"] == "done"]


def test_a_task_enqueued_in_a_transaction_runs_only_after_commit(worker_runs, alice):
    with transaction.atomic():
        note = notify(user=alice, kind="test", title="After commit", body="Sent by the worker")
        # Had it been published now, the worker would already have picked it up.
        time.sleep(1.5)
        assert worker_runs == []
        assert mail.outbox == []
    wait_for(lambda: _done(worker_runs))
    (run,) = _done(worker_runs)
    delivery = note.deliveries.get()
    assert (run["task"], run["args"], run["retval"]) == ("portal.tasks.notification_deliveries_send", ([delivery.id],), {"delivered": 1})
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "[VA Margin Portal] After commit"
    assert Notification.objects.get(pk=note.pk).emailed_at is not None


def test_a_task_enqueued_in_a_rolled_back_transaction_never_runs(worker_runs, alice):
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        notify(user=alice, kind="test", title="Never")
        1 / 0  # noqa: B018
    time.sleep(1.5)
    assert worker_runs == []
    assert mail.outbox == []
    assert not Notification.objects.filter(title="Never").exists()


def test_a_redelivered_task_has_no_second_effect(worker_runs, alice):
    from portal.models import NotificationDelivery

    note = notify(user=alice, kind="test", title="Exactly once", email=False)
    delivery = NotificationDelivery.objects.create(notification=note, channel="email")
    task_id = str(uuid.uuid4())
    # The same message twice, as the broker redelivers it when a worker dies before acking.
    notification_deliveries_send.apply_async(([delivery.id],), task_id=task_id)
    wait_for(lambda: len(_done(worker_runs)) == 1)
    emailed_at = Notification.objects.get(pk=note.pk).emailed_at
    assert emailed_at is not None
    notification_deliveries_send.apply_async(([delivery.id],), task_id=task_id)
    wait_for(lambda: len(_done(worker_runs)) == 2)
    assert [r["retval"] for r in _done(worker_runs)] == [{"delivered": 1}, {"skipped": 1}]
    assert len(mail.outbox) == 1
    assert Notification.objects.get(pk=note.pk).emailed_at == emailed_at


def test_the_task_is_configured_for_safe_redelivery():
    from portal.notifications import backoff_seconds
    from portal.tasks import notification_delivery_send

    for task in (notification_deliveries_send, notification_delivery_send):
        assert task.acks_late is True
        assert task.soft_time_limit < task.time_limit
    # Retries are scheduled per delivery at its own backoff (the claim refuses an early one).
    assert [backoff_seconds(n) for n in (1, 2, 3)] == [30, 60, 120]
