"""Concurrency and a real worker: PostgreSQL (and Redis for the worker)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.db import connections

from lending import services
from lending.models import AppState, FacilityApplication, ReviewStep
from portal.errors import ConflictError
from tests.helpers import need_postgres, need_redis

from .conftest import draft


@pytest.mark.django_db(transaction=True)
def test_two_officers_deciding_at_once_exactly_one_lands(facts, policy, prices, alice, officer, officer2):
    need_postgres()
    app = draft(alice)
    services.application_submit(user=alice, application_id=app.pk, confirm_terms=True)  # eager review on commit
    assert FacilityApplication.objects.get(pk=app.pk).state == AppState.AWAITING_DECISION
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def decide(name, fn):
        try:
            barrier.wait()
            fn()
            results[name] = "ok"
        except ConflictError as exc:
            results[name] = exc
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=decide, args=("approve", lambda: services.application_approve(actor=officer, application_id=app.pk, limit="3000000"))),
        threading.Thread(target=decide, args=("decline", lambda: services.application_decline(actor=officer2, application_id=app.pk, reason_codes=["other"]))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    outcomes = sorted(type(v).__name__ if not isinstance(v, str) else v for v in results.values())
    assert outcomes == ["ConflictError", "ok"], results
    loser = next(v for v in results.values() if isinstance(v, ConflictError))
    assert loser.http_status == 409 and loser.code == "decision_conflict"
    final = FacilityApplication.objects.get(pk=app.pk).state
    assert final in (AppState.APPROVED, AppState.DECLINED)


@pytest.fixture
def worker(facts):
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun

    from portal.celery import app

    need_postgres()
    app.conf.broker_url = need_redis()
    app.conf.task_always_eager = False
    done: list = []

    def on_done(task=None, retval=None, args=None, **kwargs):
        done.append((task.name, tuple(args or ()), retval))
        connections.close_all()

    task_postrun.connect(on_done, weak=False)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(app.conf.task_default_queue)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            yield done
    finally:
        task_postrun.disconnect(on_done)
        app.conf.task_always_eager = True


def _wait(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the worker"
        time.sleep(0.05)


@pytest.mark.realworker
@pytest.mark.django_db(transaction=True)
def test_real_worker_reviews_retries_a_fault_and_ignores_a_redelivery(worker, policy, prices, alice, monkeypatch):
    from lending import review
    from lending.review import TransientReviewError
    from lending.tasks import credit_review

    calls = {"n": 0}
    original = review.STEPS["exposure"]

    def flaky(ctx):
        calls["n"] += 1
        if calls["n"] == 1:
            raise TransientReviewError("exposure service briefly down")
        return original(ctx)

    monkeypatch.setitem(review.STEPS, "exposure", flaky)
    app = draft(alice)
    services.application_submit(user=alice, application_id=app.pk, confirm_terms=True)
    _wait(lambda: FacilityApplication.objects.get(pk=app.pk).state == AppState.AWAITING_DECISION)
    exposure = ReviewStep.objects.get(application_id=app.pk, code="exposure")
    assert exposure.attempts == 2 and exposure.outcome == "pass"
    assert calls["n"] == 2
    before = list(ReviewStep.objects.filter(application_id=app.pk).order_by("id").values("id", "attempts", "finished_at"))
    assert len(before) == 7
    # The broker redelivers the same message (a worker died before acking): no second effect.
    runs = len(worker)
    credit_review.apply_async((app.pk, 1), task_id=str(uuid.uuid4()))
    _wait(lambda: len(worker) > runs)
    assert worker[-1][2] is True
    assert list(ReviewStep.objects.filter(application_id=app.pk).order_by("id").values("id", "attempts", "finished_at")) == before
    assert FacilityApplication.objects.get(pk=app.pk).state == AppState.AWAITING_DECISION
