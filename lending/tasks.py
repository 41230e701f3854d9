"""Thin Celery tasks: take ids, call one service."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services
from .review import TransientReviewError


@shared_task(
    acks_late=True,  # review_run is idempotent: every step is claimed with a conditional UPDATE
    autoretry_for=(TransientReviewError, OperationalError, InterfaceError),
    retry_backoff=0.2,
    retry_backoff_max=30,
    retry_jitter=False,
    max_retries=6,
    soft_time_limit=60,
    time_limit=90,
)
def credit_review(application_id: int, run: int) -> bool:
    return services.review_run(application_id=application_id, run=run)

