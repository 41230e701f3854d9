"""Thin Celery tasks: take ids, call one service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services
from .review import TransientReviewError

RETRYABLE = (TransientReviewError, OperationalError, InterfaceError)
logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,  # review_run is idempotent: every step is claimed with a conditional UPDATE
    autoretry_for=RETRYABLE,
    retry_backoff=0.2,
    retry_backoff_max=30,
    retry_jitter=False,
    max_retries=6,
    soft_time_limit=60,
    time_limit=90,
)
def credit_review(self, application_id: int, run: int) -> bool:
    """Run the review; when it fails for good the application goes to the officer with what was found,
    never left in review."""
    try:
        return services.review_run(application_id=application_id, run=run)
    except RETRYABLE as exc:
        if self.request.retries < self.max_retries:
            raise
        reason = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a bug outside the steps: retrying would fail the same way
        logger.exception("Credit review of application %s run %s failed", application_id, run)
        reason = f"{type(exc).__name__}: {exc}"
    return services.review_give_up(application_id=application_id, run=run, reason=reason)



@shared_task(acks_late=True, soft_time_limit=120, time_limit=180, autoretry_for=(OperationalError, InterfaceError), retry_backoff=1, max_retries=5)
def policies_take_effect() -> int:
    """Policy versions approved for a later day come into force on it. Idempotent: a version in force is not scheduled."""
    return services.policies_take_effect()
