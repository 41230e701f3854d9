"""Thin Celery tasks for the collateral book: each calls one service and is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": 1, "retry_backoff_max": 60, "max_retries": 5}


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90, **RETRY)
def custody_reconcile_daily() -> int:
    """Daily: a break when no custody statement arrived while client VA is pledged (one open break per day)."""
    from .services import custody_reconcile_daily as reconcile

    return reconcile()


@shared_task(acks_late=True, soft_time_limit=30, time_limit=60, **RETRY)
def demo_securities_feed_tick() -> dict:
    """Demo only: the securities market moves (prices through lending's price service, then revaluation)."""
    from .demo import securities_feed_tick

    return securities_feed_tick()
