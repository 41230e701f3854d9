"""/healthz answers 200 only when the database and the broker both answer."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connections

from portal.celery import app

pytestmark = pytest.mark.django_db


@pytest.fixture
def broken_broker(monkeypatch):
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    original = app.conf.broker_url
    app.conf.broker_url = dead
    # Celery reads CELERY_BROKER_URL from the environment before its own config.
    monkeypatch.setenv("CELERY_BROKER_URL", dead)
    yield
    app.conf.broker_url = original


@pytest.fixture(autouse=True)
def jobs_just_registered():
    """The periodic jobs as on a fresh deployment (the test database may be minutes old)."""
    from django.utils import timezone

    from portal.models import JobHeartbeat

    JobHeartbeat.objects.update(registered_at=timezone.now(), last_success_at=None)


def test_healthy_when_database_broker_and_jobs_are_fine(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok", "jobs": "ok"}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_503_naming_the_broker_when_it_is_down(client, broken_broker):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert len(body["problems"]) == 1
    assert body["problems"][0].startswith("broker unavailable:")


def test_503_naming_the_database_when_it_is_down(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connections["default"], "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["problems"] == ["database unavailable: OperationalError: connection refused"]


def test_both_problems_are_reported(client, monkeypatch, broken_broker):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connections["default"], "cursor", refuse)
    problems = client.get("/healthz").json()["problems"]
    assert [p.split(":")[0] for p in problems] == ["database unavailable", "broker unavailable"]


def test_healthz_needs_no_sign_in_even_for_staff_without_mfa(client):
    from tests.helpers import make_user

    client.force_login(make_user("admin", email="nomfa@example.com", mfa=False))
    assert client.get("/healthz").status_code == 200
