"""Thin Celery tasks for reporting: each calls one service and is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": 1, "retry_backoff_max": 60, "max_retries": 5}


@shared_task(acks_late=True, soft_time_limit=600, time_limit=900, **RETRY)
def smf_pack_monthly() -> int | None:
    """Daily; stores last month's SMF pack once (a unique constraint makes a second run a no-op)."""
    from .services import smf_pack_monthly as generate

    pack = generate()
    return pack.pk if pack else None


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180, **RETRY)
def complaints_escalate_overdue() -> int:
    """Hourly: complaints past their acknowledgement or answer deadline are escalated (once each)."""
    from .services import complaints_escalate_overdue as escalate

    return escalate()
