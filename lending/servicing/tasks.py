"""Thin Celery tasks for servicing: each calls one service and is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": 1, "retry_backoff_max": 120, "max_retries": 5}


@shared_task(acks_late=True, soft_time_limit=600, time_limit=900, **RETRY)
def interest_run() -> dict:
    """Accrue every finished day not yet accrued and post every finished month (idempotent)."""
    from .interest import MissingFixing
    from .interest import interest_run as run

    try:
        return run()
    except MissingFixing as exc:  # waits for a confirmed fixing; the next run catches up
        return {"waiting": exc.message}


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300, **RETRY)
def statement_job_run(job_id: int) -> bool:
    """Issue statements in batches; re-enqueue itself while work remains so no run holds a worker long."""
    from .statements import job_run

    more = job_run(job_id=job_id)
    if more:
        statement_job_run.delay(job_id)
    return more


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90, **RETRY)
def statements_run() -> int:
    """Start the statement jobs that are due (last month's monthly statements, recent days' activity statements)."""
    from .statements import statements_due

    jobs = statements_due()
    for job in jobs:
        statement_job_run.delay(job.pk)
    return len(jobs)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90, **RETRY)
def statement_jobs_resume() -> int:
    """Restart jobs whose workers died: any running job with an expired batch lease or no progress for ten minutes."""
    from .statements import stalled_job_ids

    ids = stalled_job_ids()
    for job_id in ids:
        statement_job_run.delay(job_id)
    return len(ids)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90, **RETRY)
def addresses_activate() -> int:
    """Whitelisted addresses whose cooling-off is over become active (idempotent)."""
    from .requests import addresses_activate_due

    return addresses_activate_due()


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90, autoretry_for=(OSError,), retry_backoff=5, retry_backoff_max=600, max_retries=8)
def address_confirmation_email(address_id: int, token: str) -> bool:
    """Email the confirmation link of a new withdrawal address (skipped once the address is confirmed or revoked)."""
    from .requests import address_confirmation_send

    return address_confirmation_send(address_id=address_id, token=token)
