"""The re-acknowledgement fan-out over 10,000 clients: batches, bounded queries, idempotent reruns."""

from __future__ import annotations

import secrets

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from disclosures import services
from disclosures.models import Acknowledgement, FanoutStatus, ReacknowledgementFanout, Serving
from portal.models import Notification, User
from portal.permissions import Role
from tests.disclosures.conftest import EN, ZH, publish_new

pytestmark = pytest.mark.django_db

CLIENTS = 10_000
BATCH = 1_000


def _clients_who_acknowledged(version, count: int) -> None:
    """Bulk-load ``count`` clients with an acknowledgement of ``version`` (fast set-up, not the service)."""
    users = User.objects.bulk_create(
        [User(email=f"fan{i}@example.com", password="!", preferred_language="zh-hant" if i % 3 == 0 else "en") for i in range(count)],
        batch_size=2000,
    )
    if users[0].pk is None:
        users = list(User.objects.filter(email__startswith="fan").order_by("id"))
    group = Group.objects.get(name=Role.CLIENT.value)
    User.groups.through.objects.bulk_create([User.groups.through(user_id=u.pk, group_id=group.pk) for u in users], batch_size=2000)
    servings = Serving.objects.bulk_create(
        [
            Serving(client=u, version=version, language="en", content_hash=version.hash_en, token=secrets.token_urlsafe(24), channel="web")
            for u in users
        ],
        batch_size=2000,
    )
    if servings[0].pk is None:
        servings = list(Serving.objects.filter(version=version).order_by("id"))
    Acknowledgement.objects.bulk_create(
        [
            Acknowledgement(
                client_id=s.client_id, version=version, language="en", content_hash=version.hash_en, serving=s,
                confirmed_read_and_understood=True, confirmed_invited_to_ask_and_seek_advice=True, channel="web",
            )
            for s in servings
        ],
        batch_size=2000,
    )


def test_fanout_over_10000_clients_runs_in_batches_with_bounded_queries_and_reruns_idempotently(
    admin_user, document, v1, django_capture_on_commit_callbacks
):
    _clients_who_acknowledged(v1, CLIENTS)
    # Publish without running on-commit work: the task is driven by hand below.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        v2 = publish_new(admin_user, document, en=EN + "material", zh=ZH + "重大", material=True)
    assert callbacks, "publishing a material version enqueues the fan-out on commit"
    fanout = ReacknowledgementFanout.objects.get(version=v2)

    per_batch = []
    more = True
    while more:
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=False):
            more = services.fanout_process_batch(fanout_id=fanout.pk, batch_size=BATCH)
        per_batch.append(len(queries))

    fanout = ReacknowledgementFanout.objects.get(pk=fanout.pk)
    assert fanout.status == FanoutStatus.DONE
    assert fanout.batches == CLIENTS // BATCH
    assert fanout.notified == CLIENTS
    assert Notification.objects.filter(kind="disclosures.reacknowledge").count() == CLIENTS
    assert Notification.objects.filter(kind="disclosures.reacknowledge", title__contains="測試風險").count() == len(range(0, CLIENTS, 3))
    # The same small number of queries for every full batch (SQLite splits a bulk INSERT
    # by its 999-parameter limit; PostgreSQL does one): never one per client.
    full_batches = per_batch[: CLIENTS // BATCH]
    assert len(set(full_batches)) == 1, per_batch
    # (+1 since notifications carry their channel deliveries: one bulk INSERT per batch)
    assert max(per_batch) <= (20 if connection.vendor == "sqlite" else 11), per_batch

    # Rerunning (a redelivered task, a second worker) notifies nobody again.
    with django_capture_on_commit_callbacks(execute=False):
        assert services.fanout_run(fanout_id=fanout.pk) is False
        assert services.fanout_process_batch(fanout_id=fanout.pk) is False
    assert Notification.objects.filter(kind="disclosures.reacknowledge").count() == CLIENTS


def test_interrupted_fanout_resumes_where_it_stopped(admin_user, document, v1, django_capture_on_commit_callbacks):
    _clients_who_acknowledged(v1, 250)
    with django_capture_on_commit_callbacks(execute=False):
        v2 = publish_new(admin_user, document, en=EN + "m", zh=ZH + "m", material=True)
        fanout = ReacknowledgementFanout.objects.get(version=v2)
        assert services.fanout_run(fanout_id=fanout.pk, max_batches=2, batch_size=50) is True  # "worker died"
        assert Notification.objects.count() == 100
        assert services.fanout_run(fanout_id=fanout.pk, max_batches=100, batch_size=50) is False
    assert Notification.objects.count() == 250
    assert len(set(Notification.objects.values_list("user_id", flat=True))) == 250


def test_a_batch_claimed_by_another_worker_is_not_processed_twice(admin_user, document, v1, django_capture_on_commit_callbacks):
    _clients_who_acknowledged(v1, 30)
    with django_capture_on_commit_callbacks(execute=False):
        v2 = publish_new(admin_user, document, en=EN + "m", zh=ZH + "m", material=True)
    fanout = ReacknowledgementFanout.objects.get(version=v2)
    stale_view = ReacknowledgementFanout.objects.get(pk=fanout.pk)
    with django_capture_on_commit_callbacks(execute=False):
        services.fanout_process_batch(fanout_id=fanout.pk, batch_size=10)
        # A second worker that read the cursor before the first moved it claims nothing.
        claimed = ReacknowledgementFanout.objects.filter(pk=fanout.pk, cursor=stale_view.cursor).update(cursor=999)
    assert claimed == 0
    assert Notification.objects.count() == 10


def test_clients_who_already_acknowledged_the_new_version_are_not_notified(admin_user, alice, document, v1, django_capture_on_commit_callbacks):
    from tests.disclosures.conftest import acknowledge

    acknowledge(alice, v1)
    with django_capture_on_commit_callbacks(execute=False):
        v2 = publish_new(admin_user, document, en=EN + "m", zh=ZH + "m", material=True)
    acknowledge(alice, v2)
    with django_capture_on_commit_callbacks(execute=False):
        services.fanout_run(fanout_id=ReacknowledgementFanout.objects.get(version=v2).pk)
    assert not Notification.objects.filter(user=alice).exists()


def test_publishing_runs_the_fanout_task_after_commit(admin_user, alice, document, v1, django_capture_on_commit_callbacks):
    from tests.disclosures.conftest import acknowledge

    acknowledge(alice, v1)
    with django_capture_on_commit_callbacks(execute=True):
        v2 = publish_new(admin_user, document, en=EN + "m", zh=ZH + "m", material=True)
    assert ReacknowledgementFanout.objects.get(version=v2).status == FanoutStatus.DONE
    assert Notification.objects.filter(user=alice, kind="disclosures.reacknowledge").count() == 1
