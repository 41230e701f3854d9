"""The Celery app.

Tasks subclass Celery's DjangoTask (the default task class of a Django-aware
app), so services enqueue with ``task.delay_on_commit(...)`` and nothing is
published for a transaction that rolls back.
"""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic jobs. Each app adds its own entries in its AppConfig.ready() through
# portal.celery.schedule(); beat reads the merged dict at start-up.
app.conf.beat_schedule = {}


def schedule(name: str, task: str, every: float | object, **options) -> None:
    app.conf.beat_schedule[name] = {"task": task, "schedule": every, "options": options}


def _json_logging(**kwargs):
    """Workers and beat log like the web process: one JSON object per line on stderr."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


# Only in JSON mode: connecting the signal at all stops Celery configuring its own logging,
# and the demo (text mode) keeps Celery's plain lines and its --logfile.
def _connect_logging() -> None:
    from django.conf import settings

    if settings.LOG_FORMAT == "json":
        signals.setup_logging.connect(_json_logging, weak=False, dispatch_uid="portal.celery.json_logging")


_connect_logging()
