"""Daily expiry and reminder jobs. Each task takes an id, reloads, calls one idempotent service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from . import services

RETRY = {
    "acks_late": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "max_retries": 5,
    "soft_time_limit": 30,
    "time_limit": 60,
}


@shared_task(**RETRY)
def pi_reminder(attestation_id: int) -> bool:
    return services.attestation_send_reminder(attestation_id=attestation_id)


@shared_task(**RETRY)
def pi_expire(attestation_id: int) -> bool:
    return services.attestation_expire(attestation_id=attestation_id)


@shared_task(**RETRY)
def assessment_reminder(assessment_id: int) -> bool:
    return services.assessment_send_reminder(assessment_id=assessment_id)


@shared_task(**RETRY)
def assessment_expire(assessment_id: int) -> bool:
    return services.assessment_expire(assessment_id=assessment_id)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5, soft_time_limit=120, time_limit=180)
def daily_sweep() -> dict:
    """Find PI statuses and assessments due a reminder (30 days before) or expiry (on the day)
    and hand each to its own task. Running twice a day sends nothing twice: each service claims."""
    due = services.due_for_reminder_or_expiry()
    for pk in due["pi_remind"]:
        pi_reminder.delay(pk)
    for pk in due["pi_expire"]:
        pi_expire.delay(pk)
    for pk in due["sa_remind"]:
        assessment_reminder.delay(pk)
    for pk in due["sa_expire"]:
        assessment_expire.delay(pk)
    return {k: len(v) for k, v in due.items()}
