"""Settings read from the environment, checked in a fresh interpreter (settings are read once per process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _conn_max_age(**env) -> int:
    code = "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['CONN_MAX_AGE'])"
    environ = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DB_CONN_MAX_AGE")}
    environ |= {"DJANGO_SETTINGS_MODULE": "portal.settings", "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
                "SECRET_KEY": "x" * 60, "ALLOWED_HOSTS": "portal.example"} | env
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, check=True)  # noqa: S603 - this interpreter, a constant program
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("env", "expected"), [({"DEBUG": "0"}, 60), ({"DEBUG": "1"}, 0), ({"DEBUG": "1", "DB_CONN_MAX_AGE": "30"}, 30)])
def test_persistent_database_connections_in_production_none_under_the_development_server(env, expected):
    """The development server runs each request in a thread whose connection stays open after it: found
    by fuzzing the API on PostgreSQL ("sorry, too many clients already" after a burst of requests)."""
    assert _conn_max_age(**env) == expected
