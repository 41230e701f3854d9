"""Thin Celery tasks for close-out and recovery: each calls one service and is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import IntegrityError, InterfaceError, OperationalError

RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": 1, "retry_backoff_max": 120, "max_retries": 5}


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90, **RETRY)
def plans_prepare() -> int:
    """Escalated calls at the close-out level get a liquidation plan to look at: the calls due are split into
    batches, one task each, so every worker plans (calls already planned are skipped)."""
    from .services import PREPARE_BATCH, plans_due

    ids = plans_due()
    for start in range(0, len(ids), PREPARE_BATCH):
        plans_prepare_batch.delay(ids[start:start + PREPARE_BATCH])
    return len(ids)


@shared_task(acks_late=True, soft_time_limit=300, time_limit=420, autoretry_for=(OperationalError, InterfaceError, IntegrityError),
             retry_backoff=1, retry_backoff_max=60, max_retries=5)
def plans_prepare_batch(call_ids: list[int]) -> int:
    """One batch of plans. A call planned meanwhile (a second run racing this one) makes the batch retry, and
    the retry skips it."""
    from .services import plans_prepare as prepare

    return prepare(call_ids=call_ids)


@shared_task(acks_late=True, soft_time_limit=300, time_limit=420, **RETRY)
def debts_review() -> dict:
    """Repaid debts, moves to collections and dunning notices (each step claimed once)."""
    from .services import debts_review as review

    return review()
