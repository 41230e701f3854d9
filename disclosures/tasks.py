"""Thin Celery tasks: take ids, call one service, safe to run twice."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import selectors, services


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=10,
    soft_time_limit=240,
    time_limit=300,
)
def reacknowledgement_fanout(fanout_id: int) -> bool:
    """Notify clients in batches; re-enqueue itself while work remains so no run holds a worker for long."""
    more = services.fanout_run(fanout_id=fanout_id)
    if more:
        reacknowledgement_fanout.delay(fanout_id)
    return more


@shared_task(acks_late=True, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=3, soft_time_limit=60, time_limit=90)
def reacknowledgement_fanouts_resume() -> int:
    """Restart fan-outs whose worker died (no progress for ten minutes). Batches already done are not redone."""
    count = 0
    for fanout_id in selectors.stalled_fanout_ids(idle=timedelta(minutes=10)):
        reacknowledgement_fanout.delay(fanout_id)
        count += 1
    return count
