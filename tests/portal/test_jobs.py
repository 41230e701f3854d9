"""Periodic jobs cannot stop silently: schedules live in the database, every run records a heartbeat,
and /healthz answers 503 naming a job that is overdue."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from celery.schedules import crontab, schedule
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from portal.celery import app
from portal.models import AuditEvent, JobHeartbeat
from portal.scheduling import DatabaseScheduler, jobs_health, next_run_after, schedules_sync

pytestmark = pytest.mark.django_db

HK = datetime.timezone(datetime.timedelta(hours=8))


@pytest.fixture
def beat_schedule():
    """Replace the declared jobs for one test."""
    import disclosures.tasks  # noqa: F401  (registers the tasks used below)
    import onboarding.tasks  # noqa: F401

    original = app.conf.beat_schedule

    def replace(jobs: dict) -> None:
        app.conf.beat_schedule = jobs

    yield replace
    app.conf.beat_schedule = original


@pytest.fixture
def one_job(beat_schedule):
    """A beat schedule of one job every 60 s (the disclosure fan-out resumer, harmless on no data)."""
    beat_schedule({"test-every-minute": {"task": "disclosures.tasks.reacknowledgement_fanouts_resume", "schedule": 60.0, "options": {}}})
    schedules_sync()
    JobHeartbeat.objects.filter(name="test-every-minute").update(registered_at=timezone.now())
    return "test-every-minute"


@pytest.fixture(autouse=True)
def _scheduler_keeps_the_test_connection(monkeypatch):
    """Beat's scheduler closes "old" database connections before each read, which inside a test's
    transaction (autocommit off) closes the test's own connection on PostgreSQL."""
    from django_celery_beat import schedulers

    monkeypatch.setattr(schedulers, "close_old_connections", lambda: None)


def _run_as_beat(name: str):
    entry = app.conf.beat_schedule[name]
    return app.tasks[entry["task"]].apply(headers={"periodic_task_name": name})


def test_declared_jobs_are_synced_into_the_database_scheduler_idempotently():
    declared = set(app.conf.beat_schedule)
    schedules_sync()
    schedules_sync()
    assert set(PeriodicTask.objects.filter(enabled=True).values_list("name", flat=True)) >= declared
    assert PeriodicTask.objects.filter(name__in=declared).count() == len(declared)
    assert set(JobHeartbeat.objects.values_list("name", flat=True)) >= declared
    daily = PeriodicTask.objects.get(name="onboarding-daily-sweep")
    assert (daily.crontab.hour, daily.crontab.minute, str(daily.crontab.timezone)) == ("1", "10", "Asia/Hong_Kong")
    assert PeriodicTask.objects.get(name="risk-revalue-book").interval.every == 60


def test_a_paused_job_stays_paused_when_the_schedule_is_synced_again(admin_user):
    from portal.services import periodic_job_set_enabled

    periodic_job_set_enabled(name="risk-revalue-book", enabled=False, actor=admin_user)
    schedules_sync()
    assert PeriodicTask.objects.get(name="risk-revalue-book").enabled is False
    event = AuditEvent.objects.get(action="periodic_job.paused")
    assert event.actor == admin_user and event.after == {"enabled": False}


def test_a_job_the_code_no_longer_declares_is_disabled(one_job):
    PeriodicTask.objects.create(name="old-job", task="portal.tasks.gone", interval=PeriodicTask.objects.get(name=one_job).interval)
    schedules_sync()
    assert PeriodicTask.objects.get(name="old-job").enabled is False


def test_beat_starts_from_the_database_with_every_declared_job():
    PeriodicTask.objects.all().delete()
    scheduler = DatabaseScheduler(app=app)
    assert set(PeriodicTask.objects.values_list("name", flat=True)) >= set(app.conf.beat_schedule)
    # django-celery-beat loads crontab jobs only within two hours of their hour; interval jobs always.
    assert {"risk-revalue-book", "risk-reference-prices", "disclosures-fanout-resume"} <= set(scheduler.schedule)


def test_healthz_503_names_the_job_when_beat_never_runs_it(client, one_job):
    start = timezone.now()
    with time_machine.travel(start + datetime.timedelta(seconds=119), tick=False):
        assert client.get("/healthz").status_code == 200
    with time_machine.travel(start + datetime.timedelta(seconds=121), tick=False):
        response = client.get("/healthz")
    assert response.status_code == 503
    [problem] = response.json()["problems"]
    assert problem.startswith("periodic job test-every-minute overdue: last succeeded never")


def test_a_run_sent_by_beat_records_a_heartbeat_and_healthz_recovers(client, one_job):
    start = timezone.now()
    with time_machine.travel(start + datetime.timedelta(seconds=300), tick=False):
        assert client.get("/healthz").status_code == 503
        _run_as_beat(one_job)
        beat = JobHeartbeat.objects.get(name=one_job)
        assert beat.last_success_at == timezone.now() and beat.successes == 1
        assert client.get("/healthz").status_code == 200


def test_a_run_not_sent_by_beat_is_no_heartbeat(one_job):
    app.tasks["disclosures.tasks.reacknowledgement_fanouts_resume"].apply()
    assert JobHeartbeat.objects.get(name=one_job).successes == 0


def test_a_failing_job_records_the_failure_and_becomes_overdue(client, one_job, monkeypatch):
    import disclosures.tasks

    def broken(**kwargs):
        raise RuntimeError("fan-out table locked")

    monkeypatch.setattr(disclosures.tasks.selectors, "stalled_fanout_ids", broken)
    start = timezone.now()
    with time_machine.travel(start + datetime.timedelta(seconds=200), tick=False):
        app.tasks["disclosures.tasks.reacknowledgement_fanouts_resume"].apply(headers={"periodic_task_name": one_job}, throw=False)
        [job] = jobs_health()
        assert job.failing and job.overdue
        assert JobHeartbeat.objects.get(name=one_job).failures == 1
        assert client.get("/healthz").status_code == 503


def test_a_paused_job_is_reported_not_failed(client, one_job, admin_user):
    from portal.services import periodic_job_set_enabled

    periodic_job_set_enabled(name=one_job, enabled=False, actor=admin_user)
    with time_machine.travel(timezone.now() + datetime.timedelta(hours=1), tick=False):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["paused_jobs"] == [one_job]


def test_every_declared_job_is_overdue_after_a_day_and_two_without_beat(client):
    JobHeartbeat.objects.update(registered_at=timezone.now(), last_success_at=None)
    with time_machine.travel(timezone.now() + datetime.timedelta(days=2, hours=1), tick=False):
        response = client.get("/healthz")
    assert response.status_code == 503
    named = {p.split()[2] for p in response.json()["problems"]}
    assert named == set(app.conf.beat_schedule)


def test_a_daily_job_on_a_fresh_deployment_is_judged_from_its_own_next_run():
    registered = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=HK)
    daily = crontab(hour=1, minute=10)
    due = next_run_after(daily, registered)
    assert due == datetime.datetime(2026, 3, 3, 1, 10, tzinfo=HK)
    assert next_run_after(daily, due) == datetime.datetime(2026, 3, 4, 1, 10, tzinfo=HK)
    assert next_run_after(schedule(60), registered) == registered + datetime.timedelta(seconds=60)


def test_a_daily_job_is_not_overdue_until_a_whole_day_after_it_was_due(beat_schedule):
    beat_schedule({"daily": {"task": "onboarding.tasks.daily_sweep", "schedule": crontab(hour=1, minute=10), "options": {}}})
    with time_machine.travel(datetime.datetime(2026, 3, 2, 9, 0, tzinfo=HK), tick=False):
        schedules_sync()
    with time_machine.travel(datetime.datetime(2026, 3, 4, 1, 9, tzinfo=HK), tick=False):
        [job] = jobs_health()
        assert not job.overdue and job.due_at == datetime.datetime(2026, 3, 3, 1, 10, tzinfo=HK)
    with time_machine.travel(datetime.datetime(2026, 3, 4, 1, 11, tzinfo=HK), tick=False):
        [job] = jobs_health()
        assert job.overdue


def test_the_workbench_shows_job_health(client, officer, one_job, monkeypatch):
    from portal import navigation, panels

    monkeypatch.setattr(navigation, "STAFF_PANELS", [navigation.Panel("jobs", panels.jobs_panel)])
    client.force_login(officer)
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=5), tick=False):
        html = client.get("/workbench/").content.decode()
    assert 'data-job="test-every-minute"' in html
    assert "1 job is overdue." in html


def test_the_admin_pauses_a_job_with_an_audit_row_and_cannot_add_one(client, admin_user):
    client.force_login(admin_user)
    from tests.portal.conftest import mfa_verified

    mfa_verified(client)
    task = PeriodicTask.objects.get(name="risk-notify-calls")
    url = f"/admin/django_celery_beat/periodictask/{task.pk}/change/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"enabled": ""})
    assert response.status_code == 302
    assert PeriodicTask.objects.get(pk=task.pk).enabled is False
    assert AuditEvent.objects.filter(action="periodic_job.paused", object_id=str(task.pk)).count() == 1
    assert client.get("/admin/django_celery_beat/periodictask/add/").status_code == 403


def test_a_job_never_run_is_judged_from_when_beat_starts_not_from_the_migrate(client, one_job):
    start = timezone.now()
    with time_machine.travel(start + datetime.timedelta(hours=1), tick=False):
        assert client.get("/healthz").status_code == 503  # migrated an hour ago, beat never started
        DatabaseScheduler(app=app)  # beat starts
        assert client.get("/healthz").status_code == 200
    with time_machine.travel(start + datetime.timedelta(hours=1, seconds=121), tick=False):
        assert client.get("/healthz").status_code == 503  # and then never ran it


def test_a_job_that_ran_keeps_its_last_success_when_beat_restarts(client, one_job):
    _run_as_beat(one_job)
    with time_machine.travel(timezone.now() + datetime.timedelta(hours=1), tick=False):
        DatabaseScheduler(app=app)
        assert client.get("/healthz").status_code == 503  # an hour without a run shows
