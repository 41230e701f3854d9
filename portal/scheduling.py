"""Periodic jobs: declared in code, scheduled from the database, watched by a heartbeat.

- The apps declare their jobs with ``portal.celery.schedule()`` in ``AppConfig.ready()``.
- ``schedules_sync()`` writes them into django-celery-beat's tables (after every
  migrate and when beat starts), so an admin sees each job in the Django admin
  and can pause it; a job the code no longer declares is disabled, never left running.
- Beat runs ``DatabaseScheduler`` below: its state is rows in the portal's own
  database, so it cannot be corrupted the way a local shelve file can, and a
  restarted beat catches up a missed run.
- Every run that beat sent records a heartbeat (Celery task signals, one generic
  mechanism for every job); ``jobs_health()`` compares it with the job's own
  schedule, and ``/healthz`` and the workbench report a job that is overdue.

A job is overdue once it is more than one full interval past its due time
(i.e. twice its interval since it last succeeded). Its due time comes from its
own schedule, counted from its last success or, if it never ran, from when it
was first registered, so a daily 01:10 job on a deployment started at 09:00 is
not overdue until 01:10 two days later.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from celery import schedules
from celery.signals import task_failure, task_prerun, task_success
from celery.utils.time import ffwd
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_celery_beat import schedulers

logger = logging.getLogger(__name__)

HEADER = "periodic_task_name"  # django-celery-beat puts the job's name in every message it sends


def declared_jobs() -> dict[str, dict]:
    from .celery import app

    return dict(app.conf.beat_schedule)


def _schedule_of(entry: dict):
    return schedules.maybe_schedule(entry["schedule"])


@transaction.atomic
def schedules_sync(*, beat_starting: bool = False) -> None:
    """Make django-celery-beat's rows match the declared jobs. Idempotent; keeps an admin's pause.

    When beat starts, a job that has never succeeded is judged from then: a deployment that
    migrated an hour before starting beat is not overdue the moment beat comes up. A job that
    ran keeps its last success as the reference, so a long outage still shows.
    """
    from django_celery_beat.models import PeriodicTask

    from .models import JobHeartbeat

    declared = declared_jobs()
    for name, entry in declared.items():
        fields = schedulers.ModelEntry._unpack_fields(**entry)
        PeriodicTask.objects.update_or_create(name=name, defaults=fields)
        JobHeartbeat.objects.get_or_create(name=name, defaults={"task": entry["task"]})
        JobHeartbeat.objects.filter(name=name).exclude(task=entry["task"]).update(task=entry["task"])
    if beat_starting:
        JobHeartbeat.objects.filter(name__in=declared, last_success_at__isnull=True).update(registered_at=timezone.now())
    stale = PeriodicTask.objects.exclude(name__in=declared).exclude(name__startswith="celery.").filter(enabled=True)
    for task in stale:
        logger.warning("periodic job %s is no longer declared by the code; disabling it", task.name)
        task.enabled = False
        task.description = "Disabled: no longer declared by the code."
        task.save(update_fields=["enabled", "description"])


class DatabaseScheduler(schedulers.DatabaseScheduler):
    """django-celery-beat's database scheduler, synced with the declared jobs when beat starts."""

    def setup_schedule(self):
        schedules_sync(beat_starting=True)
        self.install_default_entries(self.schedule)


# --- heartbeat --------------------------------------------------------------------------


def _job_name(task) -> str | None:
    request = task.request
    name = getattr(request, HEADER, None)
    if not name:
        name = (getattr(request, "headers", None) or {}).get(HEADER)
    return name if name in declared_jobs() else None


def _record(task, **changes) -> None:
    """Heartbeat bookkeeping never fails the job it records."""
    from .models import JobHeartbeat

    name = _job_name(task)
    if name is None:
        return
    try:
        with transaction.atomic():
            if not JobHeartbeat.objects.filter(name=name).update(**changes):
                JobHeartbeat.objects.create(name=name, task=task.name)
                JobHeartbeat.objects.filter(name=name).update(**changes)
    except Exception:
        logger.exception("could not record the heartbeat of periodic job %s", name)


@task_prerun.connect(dispatch_uid="portal.scheduling.prerun")
def _on_prerun(sender=None, **kwargs):
    _record(sender, last_started_at=timezone.now())


@task_success.connect(dispatch_uid="portal.scheduling.success")
def _on_success(sender=None, **kwargs):
    _record(sender, last_success_at=timezone.now(), successes=F("successes") + 1)


@task_failure.connect(dispatch_uid="portal.scheduling.failure")
def _on_failure(sender=None, exception=None, **kwargs):
    error = f"{exception.__class__.__name__}: {exception}"[:500] if exception is not None else ""
    _record(sender, last_failure_at=timezone.now(), last_error=error, failures=F("failures") + 1)


# --- health -------------------------------------------------------------------------------


def next_run_after(schedule, moment: datetime.datetime) -> datetime.datetime:
    """When ``schedule`` is next due after a run at ``moment``."""
    if isinstance(schedule, schedules.crontab):
        start, delta, _now = schedule.remaining_delta(moment, ffwd=ffwd)
        return start + delta
    return moment + schedule.run_every


def describe(schedule) -> str:
    """The schedule in the reader's words (the cron fields as written: minute hour day month weekday)."""
    from django.utils.translation import gettext as _

    if isinstance(schedule, schedules.crontab):
        spec = f"{schedule._orig_minute} {schedule._orig_hour} {schedule._orig_day_of_month} {schedule._orig_month_of_year} {schedule._orig_day_of_week}"
        if str(schedule.tz) == "Asia/Hong_Kong":
            return _("cron %(spec)s, Hong Kong time") % {"spec": spec}
        return _("cron %(spec)s, time zone %(tz)s") % {"spec": spec, "tz": schedule.tz}
    seconds = int(schedule.run_every.total_seconds())
    return _("every %(n)s s") % {"n": seconds} if seconds < 120 else _("every %(n)s min") % {"n": seconds // 60}


@dataclass(frozen=True)
class JobHealth:
    name: str
    task: str
    schedule: str
    enabled: bool
    last_success_at: datetime.datetime | None
    last_failure_at: datetime.datetime | None
    last_error: str
    due_at: datetime.datetime | None
    late_after: datetime.datetime | None
    overdue: bool
    registered: bool

    @property
    def failing(self) -> bool:
        return bool(self.last_failure_at and (self.last_success_at is None or self.last_failure_at > self.last_success_at))

    @property
    def problem(self) -> str | None:
        if not self.registered:
            return f"periodic job {self.name} has no heartbeat record (run manage.py migrate)"
        if not (self.enabled and self.overdue):
            return None
        last = timezone.localtime(self.last_success_at).isoformat(timespec="seconds") if self.last_success_at else "never"
        return (
            f"periodic job {self.name} overdue: last succeeded {last}, due "
            f"{timezone.localtime(self.due_at).isoformat(timespec='seconds')} ({self.schedule})"
        )


def jobs_health(*, now: datetime.datetime | None = None) -> list[JobHealth]:
    """Every declared job with its last runs and whether it is overdue. Two queries."""
    from django_celery_beat.models import PeriodicTask

    from .models import JobHeartbeat

    now = now or timezone.now()
    declared = declared_jobs()
    beats = {b.name: b for b in JobHeartbeat.objects.filter(name__in=declared)}
    enabled = dict(PeriodicTask.objects.filter(name__in=declared).values_list("name", "enabled"))
    result = []
    for name, entry in sorted(declared.items()):
        schedule = _schedule_of(entry)
        beat = beats.get(name)
        due_at = late_after = None
        if beat is not None:
            reference = beat.last_success_at or beat.registered_at
            due_at = next_run_after(schedule, reference)
            late_after = next_run_after(schedule, due_at)
        result.append(
            JobHealth(
                name=name,
                task=entry["task"],
                schedule=describe(schedule),
                enabled=enabled.get(name, True),
                last_success_at=beat.last_success_at if beat else None,
                last_failure_at=beat.last_failure_at if beat else None,
                last_error=beat.last_error if beat else "",
                due_at=due_at,
                late_after=late_after,
                overdue=bool(late_after and now > late_after),
                registered=beat is not None,
            )
        )
    return result
