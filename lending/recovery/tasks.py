"""Thin Celery tasks for close-out and recovery: each calls one service and is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": 1, "retry_backoff_max": 120, "max_retries": 5}


@shared_task(acks_late=True, soft_time_limit=300, time_limit=420, **RETRY)
def plans_prepare() -> int:
    """Escalated calls at the close-out level get a liquidation plan to look at (calls already planned are skipped)."""
    from .services import plans_prepare as prepare

    return prepare()


@shared_task(acks_late=True, soft_time_limit=300, time_limit=420, **RETRY)
def debts_review() -> dict:
    """Repaid debts, moves to collections and dunning notices (each step claimed once)."""
    from .services import debts_review as review

    return review()
