"""Thin Celery tasks for the risk engine: each calls one service and is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": 1, "retry_backoff_max": 60, "max_retries": 5}


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90, **RETRY)
def revalue_book_task(trigger: str = "beat") -> int | None:
    """Whole-book revaluation. Idempotent: a second run at the same prices changes nothing."""
    from .revaluation import revalue_book

    run = revalue_book(trigger=trigger)
    return run.pk if run else None


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90, **RETRY)
def book_summary_take() -> int | None:
    """The risk board's whole-book figures, once a minute. Idempotent: it replaces the one summary row."""
    from .services import book_summary_take as take

    summary = take()
    return summary.pk if summary else None


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180, **RETRY)
def margin_calls_notify(run_id: int | None = None) -> int:
    """Tell clients, officers and credit managers about new, escalated and settled calls (claims each call first)."""
    from .services import margin_calls_notify as notify

    return notify(run_id=run_id)


@shared_task(acks_late=True, soft_time_limit=300, time_limit=360, **RETRY)
def warnings_notify(run_id: int | None = None) -> int:
    """Early warnings of one revaluation run (each crossing claimed once, then fanned out in bulk)."""
    from .warnings import warnings_notify as notify

    return notify(run_id=run_id)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90, **RETRY)
def margin_calls_escalate_due() -> int:
    from .services import margin_calls_escalate_due as escalate

    return escalate()


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90, **RETRY)
def open_calls_refresh() -> int:
    """Every minute: every open call's shortfall at current prices; calls cured by a repayment or top-up are met."""
    from .revaluation import open_calls_refresh as refresh

    refreshed, met = refresh()
    if met:
        margin_calls_notify.delay_on_commit(None)
    return refreshed


@shared_task(acks_late=True, soft_time_limit=30, time_limit=60, **RETRY)
def reference_prices_refresh() -> None:
    """Every minute: recompute references, let expired overrides lapse, raise or clear alarms."""
    from .services import reference_prices_refresh as refresh

    refresh()


@shared_task(acks_late=True, soft_time_limit=600, time_limit=900, **RETRY)
def snapshots_take() -> int:
    """End of day (HKT): the valuation snapshot per facility and collateral type (ON CONFLICT DO NOTHING)."""
    from .services import snapshots_take as take

    return take()


@shared_task(acks_late=True, soft_time_limit=600, time_limit=900, **RETRY)
def coefficients_reconcile() -> int:
    """Nightly: recompute every facility's coefficients from lending's positions (GROUP BY)."""
    from django.db import transaction
    from django.utils import timezone

    from .book import coefficients_refresh

    with transaction.atomic():
        return coefficients_refresh(now=timezone.now())


@shared_task(acks_late=True, soft_time_limit=300, time_limit=600, **RETRY)
def stress_monthly_report() -> int | None:
    """Monthly (and retried daily): the policy's standard stress scenario, stored once per month."""
    from .services import stress_monthly_report as store

    report = store()
    return report.pk if report else None


@shared_task(soft_time_limit=20, time_limit=30)
def demo_feed_tick() -> int:
    """Demo only (scheduled when settings.DEMO): three sources quote BTC/ETH around a random walk."""
    from .services import DEMO_SECONDS_PER_TICK
    from .services import demo_feed_tick as tick

    return tick(seconds=DEMO_SECONDS_PER_TICK)["quotes"]
